"""Writing rows into the target: COPY into PostgreSQL (psycopg 3), batched INSERT elsewhere.

Rows are written inside the caller's transaction, so a batch's rows commit together with its
checkpoint. Values pass to the driver as they are; the database converts text to its column
types (ISO dates, decimal strings), as `COPY ... FROM STDIN` would.
"""

from __future__ import annotations

import base64
import io
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import orjson
from psycopg import Connection as PgConnection
from psycopg import sql
from psycopg.copy import Copy, FileWriter
from sqlalchemy import Connection, MetaData, Table, column, insert, table
from sqlalchemy.exc import NoSuchTableError

from pulsaride.engine.errors import BadInputError

# SQLite stores what it is given; give it text for the types its driver does not know.
sqlite3.register_adapter(Decimal, str)
sqlite3.register_adapter(date, date.isoformat)
sqlite3.register_adapter(datetime, lambda moment: moment.isoformat(" "))
sqlite3.register_adapter(time, time.isoformat)


class TargetError(BadInputError):
    """The target does not have what the transform file needs."""


@dataclass(frozen=True)
class TargetTable:
    """A target table and the columns pt writes, in order."""

    name: str
    schema: str | None
    columns: tuple[str, ...]
    primary_key: tuple[str, ...]
    types: dict[str, str]

    @property
    def qualified(self) -> str:
        """schema.name, or name."""
        return f"{self.schema}.{self.name}" if self.schema else self.name


def reflect_target(connection: Connection, qualified: str, wanted: Sequence[str]) -> TargetTable:
    """The target table `qualified`, checked to have every column in `wanted`."""
    schema, _, name = qualified.rpartition(".")
    try:
        reflected = Table(name, MetaData(), autoload_with=connection, schema=schema or None)
    except NoSuchTableError:
        raise TargetError(f"target table {qualified} does not exist; create it first "
                          "(e.g. pt migrate schema target-schema.sql)") from None
    by_lower = {c.name.lower(): c.name for c in reflected.columns}
    missing = [w for w in wanted if w not in reflected.columns and w.lower() not in by_lower]
    if missing:
        raise TargetError(f"target table {qualified} has no column {', '.join(missing)} "
                          f"(it has: {', '.join(c.name for c in reflected.columns)})")
    columns = tuple(w if w in reflected.columns else by_lower[w.lower()] for w in wanted)
    types = {}
    for c in reflected.columns:
        try:
            types[c.name] = str(c.type.compile(dialect=connection.dialect))
        except Exception:  # a type the dialect cannot print back
            types[c.name] = str(c.type)
    return TargetTable(name=name, schema=schema or None, columns=columns,
                       primary_key=tuple(c.name for c in reflected.primary_key), types=types)


def write_rows(connection: Connection, target: TargetTable, columns: Sequence[str],
               rows: Sequence[Sequence[Any]], *, copy_data: bytes | None = None) -> None:
    """Write `rows` (values in `columns` order) into `target`, in the current transaction.

    `copy_data`, for a PostgreSQL target: the same rows already formatted by `CopyText`.
    """
    if not rows:
        return
    if connection.dialect.name == "postgresql":
        _copy(connection, target, columns, rows, copy_data)
    else:
        clause = table(target.name, *(column(c) for c in columns), schema=target.schema)
        connection.execute(insert(clause), [dict(zip(columns, row, strict=True)) for row in rows])


def _copy(connection: Connection, target: TargetTable, columns: Sequence[str],
          rows: Sequence[Sequence[Any]], copy_data: bytes | None) -> None:
    name = sql.Identifier(target.schema, target.name) if target.schema else \
        sql.Identifier(target.name)
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        name, sql.SQL(", ").join(sql.Identifier(c) for c in columns))
    raw = connection.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor, cursor.copy(statement) as copy:
        if copy_data is not None:
            copy.write(copy_data)
            return
        write = copy.write_row
        for row in rows:
            write(row)


class CopyText:
    """Formats rows as `COPY ... FROM STDIN` text data, with the dumpers of a PostgreSQL
    connection (psycopg's, as `Copy.write_row` uses them), without talking to the server:
    a thread can prepare the next batch's data while the connection writes this one.

    Use it from one thread at a time; the connection must stay open.
    """

    def __init__(self, connection: PgConnection[Any]) -> None:
        self._cursor = connection.cursor()

    def format(self, rows: Sequence[Sequence[Any]]) -> bytes:
        """The COPY text data of `rows`."""
        buffer = io.BytesIO()
        with Copy(self._cursor, writer=FileWriter(buffer)) as copy:
            write = copy.write_row
            for row in rows:
                write(row)
        return buffer.getvalue()


# ---- values kept as JSON (deferred rows, dead letters) -------------------------------------


def dumps(values: dict[str, Any]) -> str:
    """JSON of row values; bytes are tagged base64, everything else ISO text or a number."""
    return orjson.dumps(values, default=_default).decode()


def loads(text: str) -> dict[str, Any]:
    """Inverse of `dumps` (dates stay ISO text: the target converts them on write)."""
    values: dict[str, Any] = orjson.loads(text)
    return {k: _untag(v) for k, v in values.items()}


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$base64": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)


def _untag(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"$base64"}:
        return base64.b64decode(value["$base64"])
    return value
