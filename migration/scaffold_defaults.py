"""Column defaults from the source's SQL to the target's: the current time, literals (checked
against the target type, written by `names.literal`), booleans; anything else is dropped and
listed for review — never pasted into the DDL, which would run it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation

import orjson

from .names import literal
from .scaffold_read_mysql import read_quoted  # MySQL's string escapes

_NOW = re.compile(r"^(current_timestamp|now|localtimestamp|localtime)\s*(\(\s*\d*\s*\))?$",
                  re.IGNORECASE)
_TODAY = re.compile(r"^(current_date|curdate)\s*(\(\s*\))?$", re.IGNORECASE)
_CLOCK = re.compile(r"^(current_time|curtime)\s*(\(\s*\d*\s*\))?$", re.IGNORECASE)
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_BITS = re.compile(r"^b'([01]+)'$", re.IGNORECASE)
_PG_CAST = re.compile(r"^('(?:[^']|'')*')::[A-Za-z_ ][A-Za-z0-9_ \[\]().,\"]*$")
_INTEGER_RANGE = {"smallint": 2**15, "integer": 2**31, "bigint": 2**63}


@dataclass(frozen=True)
class Default:
    """The target's default (SQL text built from checked parts), or why there is none."""

    sql: str | None = None
    dropped: str = ""  # why the source's default was not carried over


def translate(raw: str | None, pg_type: str, *, dialect: str,
              enum: tuple[str, ...] | None = None, is_set: bool = False) -> Default:
    """The target default for a source default `raw` on a column of `pg_type`."""
    if raw is None:
        return Default()
    text = raw.strip()
    while text.startswith("(") and text.endswith(")") and _balanced(text[1:-1]):
        text = text[1:-1].strip()
    if text.upper() == "NULL":
        return Default()
    moment = _moment(text, pg_type)
    if moment is not None:
        return moment
    value = _literal_value(text, dialect)
    if value is None:
        return Default(dropped=f"default {raw} is an expression pt does not translate")
    return _typed(value, pg_type, raw, enum=enum, is_set=is_set)


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def _moment(text: str, pg_type: str) -> Default | None:
    if _NOW.match(text):
        if pg_type.startswith(("timestamp", "date")):
            return Default("CURRENT_TIMESTAMP" if not pg_type.startswith("date") else
                           "CURRENT_DATE")
        return Default(dropped=f"default {text} on a {pg_type} column")
    if _TODAY.match(text):
        return Default("CURRENT_DATE")
    if _CLOCK.match(text):
        return Default("CURRENT_TIME")
    return None


def _literal_value(text: str, dialect: str) -> str | None:
    """The value of a literal default (quoted text, a number, a bit string, a boolean)."""
    cast = _PG_CAST.match(text)
    if cast is not None:
        text = cast.group(1)
    if len(text) >= 2 and text[0] == "'" and text[-1] == "'":
        if dialect == "mysql":
            value, end = read_quoted(text, 1)
            return value if end == len(text) else None
        body = text[1:-1]
        return body.replace("''", "'") if "'" not in body.replace("''", "") else None
    if _NUMBER.match(text):
        return text
    bits = _BITS.match(text)
    if bits is not None:
        return str(int(bits.group(1), 2))
    if text.upper() in ("TRUE", "FALSE"):
        return "1" if text.upper() == "TRUE" else "0"
    return None


def _typed(value: str, pg_type: str, raw: str, *, enum: tuple[str, ...] | None,
           is_set: bool) -> Default:
    """`value` as a default of `pg_type`, when it is one."""
    base = pg_type.split("(", maxsplit=1)[0].strip()
    unfit = Default(dropped=f"default {raw} does not fit {pg_type}")
    if enum is not None:
        return Default(literal(value)) if value in enum else unfit
    if is_set:
        members = [] if value == "" else value.split(",")
        return Default(literal(_array_text(members)) if pg_type.endswith("[]") else
                       literal(value))
    if base in _INTEGER_RANGE:
        return _integer(value, base, unfit)
    if base == "boolean":
        truth = {"0": "false", "1": "true", "true": "true", "false": "false"}
        return Default(truth[value.lower()]) if value.lower() in truth else unfit
    checker = _CHECKS.get(base)
    if checker is not None and not checker(value):
        return unfit
    if base in ("numeric", "real", "double precision"):
        return Default(value)
    if base in ("varchar", "char") and "(" in pg_type:
        length = int(pg_type[pg_type.index("(") + 1:pg_type.index(")")])
        return Default(literal(value)) if len(value) <= length else unfit
    if base == "bytea" and "\\" in value:
        return unfit
    return Default(literal(value))


def _integer(value: str, base: str, unfit: Default) -> Default:
    try:
        number = int(Decimal(value))
    except (InvalidOperation, ValueError):
        return unfit
    limit = _INTEGER_RANGE[base]
    if Decimal(value) != number or not -limit <= number < limit:
        return unfit
    return Default(str(number))


def _is(parse: Callable[[str], object]) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        try:
            parse(value)
        except (ValueError, InvalidOperation, orjson.JSONDecodeError):
            return False
        return True

    return check


_CHECKS = {
    "numeric": _is(Decimal), "real": _is(float), "double precision": _is(float),
    "date": _is(date.fromisoformat), "timestamp": _is(datetime.fromisoformat),
    "timestamptz": _is(datetime.fromisoformat), "time": _is(time.fromisoformat),
    "uuid": _is(uuid.UUID), "jsonb": _is(orjson.loads),
}


def _array_text(members: list[str]) -> str:
    """A PostgreSQL array literal's text: every member double-quoted and escaped."""
    quoted = ['"' + m.replace("\\", "\\\\").replace('"', '\\"') + '"' for m in members]
    return "{" + ",".join(quoted) + "}"
