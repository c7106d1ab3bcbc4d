"""The builders' I/O: one session per build, DDL sent as written, rows inserted through SQLAlchemy.

DDL is sent on the DBAPI cursor without parameters, so no driver or SQLAlchemy rewrites it
(`%`, `:name` and `$1` stay as written). Rows go through SQLAlchemy Core `insert()` with
positional bind names (`p0`, `p1`, ...), so table and column names are quoted and escaped by the
dialect, never pasted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, bindparam, column, insert, table
from sqlalchemy.sql.elements import ColumnElement

from tests.migration.conftest import Db

# Settings of the build's own session (never global). MariaDB: strict, but without
# NO_ZERO_DATE / NO_ZERO_IN_DATE so zero dates load; UTC, so TIMESTAMP values are stored as
# given; no foreign-key checks while loading (the staff <-> store cycle), as mysqldump does.
SESSION: dict[str, tuple[str, ...]] = {
    "mariadb": ("SET SESSION sql_mode = 'STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION'",
                "SET SESSION time_zone = '+00:00'",
                "SET SESSION foreign_key_checks = 0"),
    "postgresql": ("SET TimeZone = 'UTC'",),
    "sqlite": (),
}

SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S"
CHUNK = 5000

Wrap = Callable[[ColumnElement[Any]], ColumnElement[Any]]


@dataclass(frozen=True)
class Point:
    """A 2-D point (longitude, latitude): POINT on MariaDB, point on PostgreSQL."""

    x: float
    y: float

    def wkt(self) -> str:
        return f"POINT({self.x!r} {self.y!r})"

    def pg(self) -> str:
        return f"({self.x!r},{self.y!r})"


@contextmanager
def session(db: Db) -> Iterator[Connection]:
    """One connection and one transaction, with the build's session settings applied."""
    with db.engine.begin() as connection:
        for statement in SESSION[db.kind]:
            raw(connection, statement)
        yield connection


def raw(connection: Connection, *statements: str) -> None:
    """Send each statement as written on the DBAPI cursor (no parameters, no rewriting)."""
    cursor = connection.connection.cursor()
    try:
        for statement in statements:
            cursor.execute(statement)
    finally:
        cursor.close()


def adapt(kind: str, value: Any) -> Any:
    """A logical value as the driver of `kind` stores it.

    Tuples are SET values (comma-joined; PostgreSQL arrays); SQLite gets Decimals and
    datetimes as text, as a MySQL -> SQLite dump writes them; booleans are 0/1 but on
    PostgreSQL."""
    if isinstance(value, Point):
        return value.pg() if kind == "postgresql" else value.wkt()
    if isinstance(value, tuple):
        return list(value) if kind == "postgresql" else ",".join(value)
    if isinstance(value, bool):
        return value if kind == "postgresql" else int(value)
    if kind == "sqlite":
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, datetime):
            return value.strftime(SQLITE_DATETIME)
        if isinstance(value, date):
            return value.isoformat()
    return value


def load(connection: Connection, kind: str, name: str, columns: Sequence[str],
         rows: Sequence[Sequence[Any]], wrap: Mapping[str, Wrap] | None = None) -> None:
    """INSERT `rows` into `name` (an executemany per chunk); `wrap` puts a column's bind
    parameter inside an SQL expression (e.g. ST_PointFromText)."""
    if not rows:
        return
    wrap = wrap or {}
    target = table(name, *(column(c) for c in columns))
    values = {c: wrap[c](bindparam(f"p{i}")) if c in wrap else bindparam(f"p{i}")
              for i, c in enumerate(columns)}
    statement = insert(target).values(values)
    for start in range(0, len(rows), CHUNK):
        batch = [{f"p{i}": adapt(kind, v) for i, v in enumerate(row)}
                 for row in rows[start:start + CHUNK]]
        connection.execute(statement, batch)
