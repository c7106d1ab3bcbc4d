"""What a source column really holds, for sources whose declared types promise nothing.

SQLite keeps whatever it is given: an `INTEGER` column may hold 3,000,000,000 or text, an
`NVARCHAR(5)` column 40 characters. A type chosen from the declaration then fails whole
batches. One aggregate query per table reads each column's integer range and longest text,
and `problems` says which target column cannot hold it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, case, func, select

from .compat import target_shape
from .source import SourcePlan
from .transform import Field

_INTEGER_RANGE = {"smallint": 2**15 - 1, "integer": 2**31 - 1, "bigint": 2**63 - 1}


@dataclass(frozen=True)
class Held:
    """The extremes of one source column's values."""

    smallest: int | None  # of the values stored as integers
    largest: int | None
    longest: int | None  # characters, of the values stored as text
    fractional: int  # values stored as real numbers


def held(reader: Connection, plan: SourcePlan, fields: Sequence[Field]) -> dict[str, Held]:
    """What each field's source column holds (fields copied as they are), in one query."""
    columns = {f.name: plan.raw_columns[plan.positions[f.sources[0]]]
               for f in fields if len(f.sources) == 1 and f.expression is None}
    if not columns:
        return {}
    aggregates: list[Any] = []
    for column in columns.values():
        kind = func.typeof(column)
        aggregates += [func.min(case((kind == "integer", column))),
                       func.max(case((kind == "integer", column))),
                       func.max(case((kind == "text", func.length(column)))),
                       func.count(case((kind == "real", 1)))]
    query = select(*aggregates).select_from(plan.from_clause)
    if plan.condition is not None:
        query = query.where(plan.condition)
    row = reader.execute(query).one()
    return {name: Held(*row[4 * i:4 * i + 4]) for i, name in enumerate(columns)}


def problems(values: Held, target_type: str) -> list[str]:
    """Why a column of `target_type` (as the target spells it) cannot hold `values`."""
    target = target_shape(target_type)
    found = []
    limit = _INTEGER_RANGE.get(target.name)
    if limit is not None:
        for extreme in (values.smallest, values.largest):
            if extreme is not None and not -limit - 1 <= extreme <= limit:
                found.append(f"the source holds {extreme}, beyond the range of {target.name}")
        if values.fractional:
            found.append(f"the source holds {values.fractional} value(s) with decimals")
    if target.family == "text" and target.a is not None and values.longest is not None \
            and values.longest > target.a:
        found.append(f"the source holds text of {values.longest} characters, longer than "
                     f"{target.name}({target.a})")
    return found


def wider_type(values: Held, target_type: str) -> str:
    """A type that holds `values`, for the fix of a finding."""
    if target_shape(target_type).family == "text":
        return "text"
    if values.fractional:
        return "numeric"
    extremes = [abs(v) for v in (values.smallest, values.largest) if v is not None]
    return "bigint" if max(extremes, default=0) <= _INTEGER_RANGE["bigint"] else "numeric"
