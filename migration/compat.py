"""Whether a target column can hold what a source column holds: type families, ranges,
lengths, precision and scale. Both sides are first spelled as PostgreSQL types (typemap)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .typemap import postgres_type

_SHAPE = re.compile(r"^(?P<name>[a-z ]+?)\s*(?:\((?P<a>\d+)(?:,\s*(?P<b>\d+))?\))?$")
_INTEGER_DIGITS = {"smallint": 4, "integer": 9, "bigint": 18}
_FAMILY = {
    "smallint": "integer", "integer": "integer", "bigint": "integer", "numeric": "numeric",
    "real": "float", "double precision": "float", "varchar": "text", "text": "text",
    "char": "text", "date": "date", "timestamp": "timestamp", "timestamptz": "timestamp",
    "time": "time", "boolean": "boolean", "bytea": "bytea", "jsonb": "json", "uuid": "uuid",
    "interval": "interval",
}


@dataclass(frozen=True)
class Shape:
    """A PostgreSQL type taken apart."""

    name: str
    family: str
    a: int | None = None  # length or precision
    b: int | None = None  # scale


@dataclass(frozen=True)
class Verdict:
    """Whether values of one type fit another, and if not why and how to fix it."""

    severity: str  # "ok" | "warning" | "error"
    problem: str = ""


def shape(pg_type: str) -> Shape:
    """Parse a PostgreSQL type spelling."""
    match = _SHAPE.match(pg_type.strip().lower())
    if match is None:
        return Shape(pg_type, "unknown")
    name = match["name"].strip()
    a = int(match["a"]) if match["a"] else None
    b = int(match["b"]) if match["b"] else None
    return Shape(name, _FAMILY.get(name, "unknown"), a, b)


def target_shape(declared: str) -> Shape:
    """The shape of a target column as its database spells it."""
    return shape(postgres_type(declared).pg_type)


def fits(expected: Shape, actual: Shape) -> Verdict:
    """Whether every value of `expected` fits a column of `actual`."""
    if "unknown" in (expected.family, actual.family):
        return Verdict("warning", "type cannot be checked")
    if expected.family == "integer":
        return _integer_into(expected, actual)
    if expected.family == "numeric":
        return _numeric_into(expected, actual)
    if expected.family == "text":
        return _text_into(expected, actual)
    if expected.family == "timestamp" and actual.family == "date":
        return Verdict("error", "the time of day would be lost")
    if expected.family == "date" and actual.family == "timestamp":
        return Verdict("ok")
    if expected.family == "float" and actual.family == "numeric":
        return Verdict("warning", "floating-point values become exact decimals")
    if expected.family == "boolean" and actual.family == "integer":
        return Verdict("warning", "booleans stored as numbers")
    if expected.family != actual.family:
        return Verdict("error", f"{expected.family} values do not fit a {actual.name} column")
    return Verdict("ok")


def _integer_into(expected: Shape, actual: Shape) -> Verdict:
    digits = _INTEGER_DIGITS.get(expected.name, 18)
    if actual.family == "integer":
        if _INTEGER_DIGITS.get(actual.name, 18) < digits:
            return Verdict("error", f"{expected.name} values may overflow {actual.name}")
        return Verdict("ok")
    if actual.family == "numeric":
        room = None if actual.a is None else actual.a - (actual.b or 0)
        if room is not None and room < digits:
            return Verdict("error", f"{expected.name} values need {digits} digits before the "
                                    f"point; {actual.name}({actual.a},{actual.b or 0}) has {room}")
        return Verdict("ok")
    if actual.family == "text":
        return Verdict("warning", "numbers stored as text")
    if actual.family == "float":
        return Verdict("warning", "large integers lose precision as floating point")
    return Verdict("error", f"integers do not fit a {actual.name} column")


def _numeric_into(expected: Shape, actual: Shape) -> Verdict:
    if actual.family == "numeric":
        if actual.a is None or expected.a is None:
            return Verdict("ok" if actual.a is None else "warning",
                           "" if actual.a is None else "source precision is not bounded")
        scale, target_scale = expected.b or 0, actual.b or 0
        if target_scale < scale:
            return Verdict("error", f"scale {scale} is cut to {target_scale} decimals")
        if actual.a - target_scale < expected.a - scale:
            return Verdict("error", f"numeric({expected.a},{scale}) values may not fit "
                                    f"numeric({actual.a},{target_scale})")
        return Verdict("ok")
    if actual.family == "integer":
        if expected.b:
            return Verdict("error", f"decimals of numeric({expected.a},{expected.b}) would "
                                    "be lost")
        digits = expected.a or 38
        if _INTEGER_DIGITS.get(actual.name, 18) < digits:
            return Verdict("error", f"numeric({digits}) values may overflow {actual.name}")
        return Verdict("ok")
    if actual.family == "float":
        return Verdict("warning", "exact decimals stored as floating point")
    if actual.family == "text":
        return Verdict("warning", "numbers stored as text")
    return Verdict("error", f"numbers do not fit a {actual.name} column")


def _text_into(expected: Shape, actual: Shape) -> Verdict:
    if actual.family != "text":
        return Verdict("error", f"text does not fit a {actual.name} column")
    if actual.name == "text" or actual.a is None:
        return Verdict("ok")
    if expected.name == "text" or expected.a is None:
        return Verdict("warning", f"unbounded text into {actual.name}({actual.a})")
    if actual.a < expected.a:
        return Verdict("error", f"values up to {expected.a} characters may not fit "
                                f"{actual.name}({actual.a})")
    return Verdict("ok")
