"""Canonical values: what "the same value" means when a source row meets its target row.

Validation users of other tools complain most about false mismatches from formatting. Values
are brought to one form before comparing or hashing: numbers by value (1.50 == 1.5 == 1.500),
timestamps at the target column's precision (rounded as PostgreSQL rounds), CHAR padding
ignored, '' equal to NULL when the transform treats them so, times in UTC.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
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
    kind: str = ""  # boolean | date | timestamp, when the column's values may come as text/0-1


def rule_for(name: str, target_type: str, empty_is_null: bool) -> ColumnRule:
    """The rule of a target column from its type as the target spells it."""
    match = _PRECISION.search(target_type or "")
    digits = int(next(g for g in match.groups() if g is not None)) if match else 6
    if (target_type or "").strip().upper() in ("DATETIME",):
        digits = 0  # MariaDB DATETIME without fraction
    spelled = (target_type or "").strip().upper()
    kind = "boolean" if spelled.startswith("BOOL") else "timestamp" if spelled.startswith(
        ("TIMESTAMP", "DATETIME")) else "date" if spelled == "DATE" else ""
    return ColumnRule(name=name, fraction_digits=digits,
                      padded=bool(_CHAR.match(target_type or "")), empty_is_null=empty_is_null,
                      kind=kind)


def canonical(value: Any, rule: ColumnRule) -> Any:
    """`value` in canonical form (JSON-ready) under `rule`."""
    if value is None:
        return None
    if rule.kind:
        value = _typed(value, rule.kind)
    if isinstance(value, bool):
        return value
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


def _number(value: int | float | Decimal) -> str:
    if isinstance(value, int):
        return str(value)
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else value
        if not number.is_finite():
            return str(number)
        normal = number.normalize()
    except InvalidOperation:
        return str(value)
    exponent = normal.as_tuple().exponent
    text = format(normal, "f")
    return text if isinstance(exponent, int) and exponent < 0 else text.split(".")[0]


def _moment(value: datetime, digits: int) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    step = 10 ** (6 - digits)
    micro = value.microsecond
    rounded = _round_half_even(micro, step)
    value = value.replace(microsecond=0) + timedelta(microseconds=rounded)
    return value.isoformat(timespec="microseconds")


def _round_half_even(micro: int, step: int) -> int:
    quotient, remainder = divmod(micro, step)
    if remainder * 2 > step or (remainder * 2 == step and quotient % 2 == 1):
        quotient += 1
    return quotient * step


def canonical_row(values: Sequence[Any], rules: Sequence[ColumnRule]) -> list[Any]:
    """Every value of a row in canonical form."""
    return [canonical(v, r) for v, r in zip(values, rules, strict=True)]


def row_hash(canonical_values: Sequence[Any]) -> int:
    """A 64-bit hash of a canonical row (sums of these are order-independent table hashes)."""
    digest = hashlib.blake2b(orjson.dumps(list(canonical_values)), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def key_text(canonical_key: Sequence[Any]) -> str:
    """A canonical key as text (for reports and deterministic sampling)."""
    return orjson.dumps(list(canonical_key)).decode()


def sampled(canonical_key: Sequence[Any], fraction: float, seed: int) -> bool:
    """Deterministic choice of a key for a sample of `fraction` (same on both sides)."""
    digest = hashlib.blake2b(f"{seed}:{key_text(canonical_key)}".encode(),
                             digest_size=8).digest()
    return int.from_bytes(digest, "big") < fraction * (1 << 64)
