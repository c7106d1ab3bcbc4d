"""Canonical values: what "the same value" means when a source row meets its target row.

Validation users of other tools complain most about false mismatches from formatting. Values
are brought to one form before comparing or hashing: numbers by value (1.50 == 1.5 == 1.500),
timestamps at the target column's precision (rounded as PostgreSQL rounds), CHAR padding
ignored, '' equal to NULL when the transform treats them so, times in UTC.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from types import NoneType
from typing import Any

import orjson

_PRECISION = re.compile(r"TIMESTAMP\s*\((\d)\)|TIMESTAMPTZ\s*\((\d)\)|DATETIME\s*\((\d)\)",
                        re.IGNORECASE)
_CHAR = re.compile(r"^\s*(N?CHAR|CHARACTER|BPCHAR)\b(?!\s*VARYING)", re.IGNORECASE)
MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class ColumnRule:
    """How one column's values are canonicalised."""

    name: str
    fraction_digits: int = 6  # timestamp precision of the target column
    padded: bool = False  # CHAR(n): trailing blanks are padding
    empty_is_null: bool = False
    kind: str = ""  # boolean | date | timestamp | json: values that may come as text or 0/1


def rule_for(name: str, target_type: str, empty_is_null: bool) -> ColumnRule:
    """The rule of a target column from its type as the target spells it."""
    match = _PRECISION.search(target_type or "")
    digits = int(next(g for g in match.groups() if g is not None)) if match else 6
    if (target_type or "").strip().upper() in ("DATETIME",):
        digits = 0  # MariaDB DATETIME without fraction
    spelled = (target_type or "").strip().upper()
    kind = "boolean" if spelled.startswith("BOOL") else "timestamp" if spelled.startswith(
        ("TIMESTAMP", "DATETIME")) else "date" if spelled == "DATE" else \
        "json" if spelled in ("JSON", "JSONB") else ""
    return ColumnRule(name=name, fraction_digits=digits,
                      padded=bool(_CHAR.match(target_type or "")), empty_is_null=empty_is_null,
                      kind=kind)


def canonical(value: Any, rule: ColumnRule) -> Any:
    """`value` in canonical form (JSON-ready) under `rule`."""
    if value is None:
        return None
    if rule.kind == "json":
        return _json(value)
    if rule.kind:
        value = _typed(value, rule.kind)
    if isinstance(value, bool):
        return value
    if isinstance(value, list | tuple):  # an array column (a SET, for one)
        return [canonical(v, rule) for v in value]
    if isinstance(value, int | float | Decimal):
        return _number(value)
    if isinstance(value, datetime):
        return _moment(value, rule.fraction_digits)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, str):
        text = value.rstrip(" ") if rule.padded else value
        if text == "" and rule.empty_is_null:
            return None
        return text
    return str(value)


def _typed(value: Any, kind: str) -> Any:
    """Values a database keeps as text or 0/1 (SQLite) read as what the column declares."""
    if kind == "boolean" and isinstance(value, int | Decimal) and value in (0, 1):
        return bool(value)
    if kind in ("timestamp", "date") and isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return value
        return moment.date() if kind == "date" and len(value.strip()) <= 10 else moment
    return value


def _json(value: Any) -> str:
    """A JSON value (text as the source holds it, or what the driver decoded a json/jsonb
    column into) as one text: keys sorted, whole numbers without a fraction, as jsonb
    normalises them. Text that is not JSON is a JSON string the driver decoded already."""
    if isinstance(value, str | bytes):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            value = value.decode() if isinstance(value, bytes) else value
    return orjson.dumps(_json_numbers(value), option=orjson.OPT_SORT_KEYS).decode()


def _json_numbers(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_numbers(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _number(value: int | float | Decimal) -> str:
    if isinstance(value, int):
        return str(value)
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else value
        if not number.is_finite():
            return str(number)
        if number.is_zero():
            return "0"  # -0.0 and 0E-2 are 0, as a numeric column holds them
    except InvalidOperation:
        return str(value)
    # Every digit, no exponent; not normalize(), which rounds to 28 significant digits.
    text = format(number, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _float(value: float) -> str:
    """_number(value) for a float, from its shortest repr (no Decimal on the way)."""
    text = repr(value)
    if "e" in text or "n" in text:  # 1e+20, inf, nan
        return _number(value)
    text = text.rstrip("0").rstrip(".")  # a finite repr without exponent has a point
    return "0" if text in ("0", "-0") else text


def _decimal(value: Decimal) -> str:
    """_number(value) for a Decimal, from its text when it has no exponent."""
    text = str(value)
    if "E" in text or not text[-1].isdigit():  # 1E+2, NaN, Infinity
        return _number(value)
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("0", "-0") else text


def _moment(value: datetime, digits: int) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    step = 10 ** (6 - digits)
    if step > 1:
        value = _round_like_postgresql(value, step)
    # = isoformat(timespec="microseconds"), at half the cost (keyword arguments are slow here)
    text = value.isoformat()
    return text if value.microsecond else f"{text}.000000"


_PG_EPOCH = datetime(2000, 1, 1)


def _round_like_postgresql(value: datetime, step: int) -> datetime:
    """`value` at a precision of `step` microseconds, rounded as PostgreSQL rounds a
    timestamp(p): halves away from its epoch 2000-01-01 (up after it, down before it)."""
    since = value - _PG_EPOCH
    micros = (since.days * 86_400 + since.seconds) * 1_000_000 + since.microseconds
    magnitude = (abs(micros) + step // 2) // step * step
    try:
        return _PG_EPOCH + timedelta(microseconds=magnitude if micros >= 0 else -magnitude)
    except OverflowError:  # rounding past datetime.max/min: keep the value as it is
        return value


def canonical_row(values: Sequence[Any], rules: Sequence[ColumnRule]) -> list[Any]:
    """Every value of a row in canonical form."""
    return [canonical(v, r) for v, r in zip(values, rules, strict=True)]


Converter = Callable[[Any], Any]


def converter(rule: ColumnRule) -> Converter:
    """`canonical(value, rule)` as one function of the value, specialised for each type of
    value on first sight (a column's values nearly always have one type): the same results
    for a fraction of the cost, for checks that canonicalise millions of values."""
    by_type: dict[type, Converter] = {}

    def convert(value: Any) -> Any:
        if value is None:
            return None
        kind = type(value)
        function = by_type.get(kind)
        if function is None:
            function = by_type[kind] = _specialised(kind, rule)
        return function(value)

    return convert


def row_converter(rules: Sequence[ColumnRule]) -> Callable[[Sequence[Any]], list[Any]]:
    """`canonical_row(values, rules)` as one function of the values (see `converter`): one
    list of functions per combination of value types (rows of a table have few), so a row
    costs one call per value."""
    width = len(rules)
    plans: dict[tuple[type, ...], list[Converter]] = {}

    def convert(values: Sequence[Any]) -> list[Any]:
        signature = tuple(map(type, values))
        functions = plans.get(signature)
        if functions is None:
            if len(values) != width:
                raise ValueError(f"a row of {len(values)} values for {width} column rules")
            functions = [_none if kind is NoneType else _specialised(kind, rule)
                         for kind, rule in zip(signature, rules)]  # noqa: B905 - checked
            if len(plans) < MAX_PLANS:
                plans[signature] = functions
        return [f(v) for f, v in zip(functions, values)]  # noqa: B905 - as the signature

    return convert


MAX_PLANS = 4096  # combinations of value types kept per table (a few in practice)


def _none(_value: None) -> None:
    return None


def _specialised(kind: type, rule: ColumnRule) -> Converter:
    """What `canonical` does to values of exactly this type under `rule`."""
    if rule.kind == "json":
        return _json
    if kind is str:
        return _text(rule)
    if kind is bool:
        return bool  # bool(b) is b
    if kind is int and rule.kind != "boolean":
        return str
    if kind is float:
        return _float
    if kind is Decimal and rule.kind != "boolean":
        return _decimal
    if kind is datetime:
        digits = rule.fraction_digits
        return lambda v: _moment(v, digits)
    if kind is date:
        return date.isoformat
    if kind is bytes:
        return bytes.hex
    return lambda v: canonical(v, rule)


def _text(rule: ColumnRule) -> Converter:
    """`canonical` of text under `rule`: dates and timestamps kept as ISO text (SQLite) read
    as the column declares, other text unpadded and '' maybe NULL."""
    padded, empty_is_null = rule.padded, rule.empty_is_null

    def plain(value: str) -> str | None:
        text = value.rstrip(" ") if padded else value
        return None if empty_is_null and text == "" else text

    if rule.kind not in ("timestamp", "date"):
        if padded:
            return (lambda v: v.rstrip(" ") or None) if empty_is_null else \
                (lambda v: v.rstrip(" "))
        return (lambda v: v or None) if empty_is_null else str  # str(s) is s
    digits, as_date = rule.fraction_digits, rule.kind == "date"

    def moment(value: str) -> str | None:
        stripped = value.strip()
        try:
            parsed = datetime.fromisoformat(stripped)
        except ValueError:
            return plain(value)
        if as_date and len(stripped) <= 10:
            return parsed.date().isoformat()
        return _moment(parsed, digits)

    return moment


def row_hash(canonical_values: Sequence[Any]) -> int:
    """A 64-bit hash of a canonical row (sums of these are order-independent table hashes)."""
    values = canonical_values if isinstance(canonical_values, list) else list(canonical_values)
    digest = hashlib.blake2b(orjson.dumps(values), digest_size=8).digest()
    return int.from_bytes(digest, "big")


_WHOLE = re.compile(r"^(-?\d+)\.0*$")


def key_value_text(value: Any) -> str:
    """A key value as text that compares equal across drivers (5, 5.0, '5.00', Decimal)."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, Decimal | float) and math.isfinite(value) and value == int(value):
        return str(int(value))
    text = str(value)
    whole = _WHOLE.match(text)
    return whole[1] if whole else text


def key_text(canonical_key: Sequence[Any]) -> str:
    """A canonical key as text (for reports and deterministic sampling)."""
    return orjson.dumps(list(canonical_key)).decode()


def sampled(canonical_key: Sequence[Any], fraction: float, seed: int) -> bool:
    """Deterministic choice of a key for a sample of `fraction` (same on both sides)."""
    digest = hashlib.blake2b(f"{seed}:{key_text(canonical_key)}".encode(),
                             digest_size=8).digest()
    return int.from_bytes(digest, "big") < fraction * (1 << 64)
