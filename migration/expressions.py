"""Field expressions of transform files, compiled from the grammar into Python closures.

`?` (or `?1`) is the field's first source value, `?2` the second, and so on. NULL propagates
through arithmetic and functions as in SQL; a comparison with NULL is not true.
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from typing import Literal as Choice

import orjson

from .grammar import (
    Binary,
    Call,
    Case,
    Column,
    GrammarError,
    InList,
    IsNull,
    Literal,
    Node,
    Param,
    Unary,
    parse,
)

Evaluator = Callable[[Sequence[Any]], Any]


class RowError(ValueError):
    """A value this expression cannot compute for one row (bad number, bad date, x/0)."""


def compile_expression(text: str, params: int) -> Evaluator:
    """A function of the field's source values; GrammarError for bad text or arity."""
    node = parse(text)
    return _compile(node, params)


def _compile(node: Node, params: int) -> Evaluator:
    if isinstance(node, Literal):
        value = node.value
        return lambda _row: value
    if isinstance(node, Param):
        if not 1 <= node.index <= params:
            raise GrammarError(f"?{node.index} refers to source value {node.index}, but the field "
                               f"has {params} source value{'s' if params != 1 else ''}")
        index = node.index - 1
        return lambda row: row[index]
    if isinstance(node, Column):
        name = f"{node.alias}.{node.name}" if node.alias else node.name
        raise GrammarError(f"a field expression refers to its source values with ? or ?N, "
                           f"not by name ({name})")
    if isinstance(node, Call):
        return _call(node, params)
    if isinstance(node, Unary):
        return _unary(node, params)
    if isinstance(node, Binary):
        return _binary(node, params)
    if isinstance(node, IsNull):
        operand = _compile(node.operand, params)
        negated = node.negated
        return lambda row: (operand(row) is None) != negated
    if isinstance(node, InList):
        return _in_list(node, params)
    return _case(node, params)


def _call(node: Call, params: int) -> Evaluator:
    function = FUNCTIONS.get(node.name)
    if function is None:
        known = ", ".join(sorted(FUNCTIONS))
        raise GrammarError(f"unknown function {node.name}() (known: {known})")
    low, high = ARITY[node.name]
    if not low <= len(node.args) <= high:
        expected = str(low) if low == high else f"{low} or more" if high > 9 else f"{low}-{high}"
        raise GrammarError(f"{node.name}() takes {expected} argument(s), not {len(node.args)}")
    args = [_compile(arg, params) for arg in node.args]
    return lambda row: function(*(arg(row) for arg in args))


def _unary(node: Unary, params: int) -> Evaluator:
    operand = _compile(node.operand, params)
    if node.op == "NOT":
        return lambda row: not _truth(operand(row))

    def negate(row: Sequence[Any]) -> Any:
        value = operand(row)
        return None if value is None else -_number(value)

    return negate


_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}
_COMPARISON: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge}


def _binary(node: Binary, params: int) -> Evaluator:
    left, right = _compile(node.left, params), _compile(node.right, params)
    if node.op == "AND":
        return lambda row: _truth(left(row)) and _truth(right(row))
    if node.op == "OR":
        return lambda row: _truth(left(row)) or _truth(right(row))
    if node.op in _COMPARISON:
        compare = _COMPARISON[node.op]

        def comparison(row: Sequence[Any]) -> bool:
            a, b = left(row), right(row)
            if a is None or b is None:
                return False
            a, b = _comparable(a, b)
            try:
                return compare(a, b)
            except TypeError as exc:
                raise RowError(f"cannot compare {a!r} with {b!r}") from exc

        return comparison
    calculate = _ARITHMETIC[node.op]

    def arithmetic(row: Sequence[Any]) -> Any:
        a, b = left(row), right(row)
        if a is None or b is None:
            return None
        a, b = _comparable(_number(a), _number(b))
        try:
            return calculate(a, b)
        except (ZeroDivisionError, InvalidOperation) as exc:
            raise RowError(f"{a} {node.op} {b}: {exc.__class__.__name__}") from None

    return arithmetic


def _in_list(node: InList, params: int) -> Evaluator:
    operand = _compile(node.operand, params)
    options = [_compile(option, params) for option in node.options]
    negated = node.negated

    def contained(row: Sequence[Any]) -> bool:
        value = operand(row)
        if value is None:
            return False
        found = any(_comparable(value, o)[0] == _comparable(value, o)[1]
                    for o in (option(row) for option in options) if o is not None)
        return found != negated

    return contained


def _case(node: Case, params: int) -> Evaluator:
    branches = [(_compile(c, params), _compile(v, params)) for c, v in node.branches]
    default = _compile(node.default, params) if node.default is not None else None

    def choose(row: Sequence[Any]) -> Any:
        for condition, value in branches:
            if _truth(condition(row)):
                return value(row)
        return default(row) if default is not None else None

    return choose


# ---- values ----------------------------------------------------------------------------------


def _truth(value: Any) -> bool:
    return bool(value) if value is not None else False


def _number(value: Any) -> int | float | Decimal:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float | Decimal):
        return value
    if isinstance(value, str):
        return _parse_number(value)
    raise RowError(f"{value!r} is not a number")


def _parse_number(text: str) -> int | Decimal:
    stripped = text.strip()
    try:
        return int(stripped)
    except ValueError:
        pass
    try:
        return Decimal(stripped)
    except InvalidOperation:
        raise RowError(f"{text!r} is not a number") from None


def _comparable(a: Any, b: Any) -> tuple[Any, Any]:
    """Make Decimal and float comparable and combinable (float becomes Decimal)."""
    if isinstance(a, Decimal) and isinstance(b, float):
        return a, Decimal(repr(b))
    if isinstance(a, float) and isinstance(b, Decimal):
        return Decimal(repr(a)), b
    return a, b


# ---- functions -------------------------------------------------------------------------------


def _text(function: Callable[[str], str]) -> Callable[[Any], Any]:
    def apply(value: Any) -> Any:
        return None if value is None else function(str(value))

    return apply


def _coalesce(*values: Any) -> Any:
    """The first value that is neither NULL nor blank."""
    for value in values:
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        return value
    return None


def _nullif(value: Any, other: Any) -> Any:
    return None if value == other else value


def _to_int(value: Any) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number = _number(value)
    if number != int(number):
        raise RowError(f"{value!r} is not a whole number")
    return int(number)


def _to_date(value: Any) -> date | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        raise RowError(f"{value!r} is not an ISO-8601 date") from None


def _to_timestamp(value: Any) -> datetime | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    try:
        return datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise RowError(f"{value!r} is not an ISO-8601 timestamp") from None


_BOOLEANS = {"y": True, "yes": True, "1": True, "true": True, "t": True,
             "n": False, "no": False, "0": False, "false": False, "f": False}


def _to_boolean(value: Any) -> bool | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        return value
    key = str(value).strip().lower()
    if key not in _BOOLEANS:
        raise RowError(f"{value!r} is not a boolean (y/n/1/0/true/false)")
    return _BOOLEANS[key]


def _concat(*values: Any) -> str:
    return "".join("" if v is None else str(v) for v in values)


# ---- conversions of pt scaffold (values as MariaDB/MySQL drivers give them) -------------------

# Values each counting conversion changed in this process (the copy reports them).
CONVERSIONS: Counter[str] = Counter()


def conversion_counts() -> dict[str, int]:
    """How many values each counting conversion has changed so far."""
    return {name: count for name, count in CONVERSIONS.items() if count}


def _zero_date_null(value: Any) -> Any:
    """MySQL's zero and invalid dates ('0000-00-00', '2024-02-30' when allowed) reach Python
    as text, the driver being unable to make a date of them: they become NULL, counted.
    Valid dates given as text are parsed."""
    if not isinstance(value, str):
        return value
    try:
        return datetime.fromisoformat(value) if len(value) > 10 else date.fromisoformat(value)
    except ValueError:
        CONVERSIONS["zero_date_null"] += 1
        return None


def _as_utc(value: Any) -> Any:
    """A moment read without its zone (MySQL TIMESTAMP, read in a UTC session) made UTC, so
    a timestamptz column gets the instant whatever the target session's time zone."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _set_array(value: Any) -> Any:
    """A MySQL SET value ('a,b', '' for the empty set) as a list of its members."""
    if value is None:
        return None
    if isinstance(value, set | frozenset):
        return sorted(value)
    text = value.decode() if isinstance(value, bytes) else str(value)
    return [] if text == "" else text.split(",")


def _mysql_wkb(value: Any) -> Any:
    """MariaDB/MySQL keep a geometry as a 4-byte SRID and its WKB: the WKB."""
    if value is None:
        return None
    data = bytes(value)
    if len(data) < 9:
        raise RowError(f"{data.hex()} is not a MySQL geometry")
    return data[4:]


def _mysql_ewkb(value: Any) -> Any:
    """A MariaDB/MySQL geometry as PostGIS's hex EWKB text (its SRID kept)."""
    if value is None:
        return None
    data = bytes(value)
    if len(data) < 9:
        raise RowError(f"{data.hex()} is not a MySQL geometry")
    srid, wkb = data[:4], data[4:]
    order: Choice["little", "big"] = "little" if wkb[0] == 1 else "big"
    kind = int.from_bytes(wkb[1:5], order) | 0x20000000  # the EWKB flag: an SRID follows
    srid_value = int.from_bytes(srid, "little")
    return (wkb[:1] + kind.to_bytes(4, order) + srid_value.to_bytes(4, order) +
            wkb[5:]).hex()


def _bits_int(value: Any) -> Any:
    """A MySQL BIT(n) value (bytes, most significant first) as a number."""
    if isinstance(value, bytes | bytearray):
        return int.from_bytes(value, "big")
    return value


def _mysql_time(value: Any) -> Any:
    """A MySQL TIME (a duration to the driver) as a time of day; outside 00:00..24:00 it is
    a duration, not a time: the row is rejected."""
    if not isinstance(value, timedelta):
        return value
    if not timedelta(0) <= value < timedelta(days=1):
        raise RowError(f"TIME {value} is not a time of day")
    seconds = int(value.total_seconds())
    return time(seconds // 3600, seconds // 60 % 60, seconds % 60, value.microseconds)


def _json_text(value: Any) -> Any:
    """A JSON value the driver decoded (PostgreSQL json/jsonb) as JSON text again."""
    if value is None or isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "upper": _text(str.upper),
    "lower": _text(str.lower),
    "trim": _text(str.strip),
    "normalize_text": _text(lambda s: s.strip().lower()),
    "coalesce": _coalesce,
    "nullif": _nullif,
    "to_int": _to_int,
    "to_long": _to_int,
    "to_date": _to_date,
    "to_timestamp": _to_timestamp,
    "to_boolean": _to_boolean,
    "concat": _concat,
    "zero_date_null": _zero_date_null,
    "as_utc": _as_utc,
    "set_array": _set_array,
    "mysql_wkb": _mysql_wkb,
    "mysql_ewkb": _mysql_ewkb,
    "bits_int": _bits_int,
    "mysql_time": _mysql_time,
    "json_text": _json_text,
}
ARITY = {"upper": (1, 1), "lower": (1, 1), "trim": (1, 1), "normalize_text": (1, 1),
         "coalesce": (1, 99), "nullif": (2, 2), "to_int": (1, 1), "to_long": (1, 1),
         "to_date": (1, 1), "to_timestamp": (1, 1), "to_boolean": (1, 1), "concat": (1, 99),
         "zero_date_null": (1, 1), "as_utc": (1, 1), "set_array": (1, 1), "mysql_wkb": (1, 1),
         "mysql_ewkb": (1, 1), "bits_int": (1, 1), "mysql_time": (1, 1), "json_text": (1, 1)}
