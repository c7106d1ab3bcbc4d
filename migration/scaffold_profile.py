"""What the data actually holds, where a declared type does not say enough: one aggregate
query per table (Core `func.min/max/length`, every name quoted by SQLAlchemy).

- SQLite does not enforce declared types: an INTEGER column may hold 3,000,000,000, text,
  or REAL values; a NVARCHAR(5) may hold 40 characters. (`--sqlite-types data`, the default;
  `affinity` trusts the declarations and reads nothing.)
- Oracle NUMBER without precision says nothing of its range (SQLite sources declaring NUMBER
  are read the same way).
- MariaDB/MySQL dates may be zero ('0000-00-00'); their number is reported and decides
  whether a NOT NULL column can stay NOT NULL once they become NULL.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Connection, case, column, func, or_, select, table

from .scaffold_model import ColumnProfile, SourceColumn, SourceSchema, SourceTable

COLUMNS_PER_QUERY = 250  # SQLite returns at most 2000 result columns; 6 aggregates each
_DATES = ("date", "datetime", "timestamp")


def read_profiles(connection: Connection, schema: SourceSchema, *,
                  sqlite_data: bool) -> dict[str, dict[str, ColumnProfile]]:
    """Profiles of the columns whose type depends on their data, by table and column."""
    found: dict[str, dict[str, ColumnProfile]] = {}
    for source in schema.tables:
        wanted = [c for c in source.columns if _wanted(c, schema.dialect, sqlite_data)]
        if wanted:
            found[source.name] = _profile(connection, source, wanted, schema)
    return found


def _wanted(col: SourceColumn, dialect: str, sqlite_data: bool) -> bool:
    declared = col.declared.strip().upper()
    if dialect == "sqlite":
        return sqlite_data  # affinity: the declarations are trusted, NUMBER included
    if dialect == "mysql":
        return declared.split("(")[0].lower() in _DATES
    return declared == "NUMBER"


def _profile(connection: Connection, source: SourceTable, wanted: list[SourceColumn],
             schema: SourceSchema) -> dict[str, ColumnProfile]:
    relation = table(source.name, *(column(c.name) for c in source.columns),
                     schema=schema.schema)
    profiles: dict[str, ColumnProfile] = {}
    for chunk in _chunks(wanted, COLUMNS_PER_QUERY):
        parts = [_aggregates(relation.c[c.name], c, schema.dialect) for c in chunk]
        row = connection.execute(select(*(a for part in parts for a in part))
                                 .select_from(relation)).one()
        values = list(row)
        for col, part in zip(chunk, parts, strict=True):
            mine, values = values[:len(part)], values[len(part):]
            profiles[col.name] = _read(mine, schema.dialect, col)
    return profiles


def _chunks(items: list[SourceColumn], size: int) -> Iterator[list[SourceColumn]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _aggregates(value: ColumnElement[Any], col: SourceColumn,
                dialect: str) -> list[ColumnElement[Any]]:
    if dialect == "sqlite":
        kind = func.typeof(value)
        return [func.count(value),
                func.min(case((kind == "integer", value))),
                func.max(case((kind == "integer", value))),
                func.max(case((kind == "text", func.length(value)))),
                func.sum(case((kind == "real", 1), else_=0)),
                func.sum(case((kind == "text", 1), else_=0)),
                func.sum(case((kind == "blob", 1), else_=0))]
    if dialect == "mysql":
        zero = or_(func.year(value) == 0, func.month(value) == 0, func.dayofmonth(value) == 0)
        return [func.count(value), func.sum(case((zero, 1), else_=0))]
    return [func.count(value), func.min(value), func.max(value),
            func.sum(case((value != func.floor(value), 1), else_=0))]


def _read(values: list[Any], dialect: str, col: SourceColumn) -> ColumnProfile:
    if dialect == "sqlite":
        rows, low, high, length, real, texts, blobs = values
        return ColumnProfile(rows=int(rows or 0), minimum=_whole(low), maximum=_whole(high),
                             max_length=int(length) if length is not None else None,
                             fractional=int(real or 0), texts=int(texts or 0),
                             blobs=int(blobs or 0))
    if dialect == "mysql":
        rows, zeros = values
        return ColumnProfile(rows=int(rows or 0), zero_dates=int(zeros or 0))
    rows, low, high, fractional = values
    return ColumnProfile(rows=int(rows or 0), minimum=_whole(low), maximum=_whole(high),
                         fractional=int(fractional or 0))


def _whole(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int):
        return value
    number = Decimal(str(value))
    return int(number.to_integral_value())
