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
from sqlalchemy import Connection, insert

from pulsaride.engine.errors import BadInputError

from .names import TableName, match_name
from .relations import NoSuchTable, declared_type, reflect_table

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
    def table(self) -> TableName:
        """The table's exact name."""
        return TableName(self.name, self.schema)

    @property
    def key(self) -> str:
        """What stands for the table in pt's own tables (TableName.key)."""
        return self.table.key()


def reflect_target(connection: Connection, name: TableName, wanted: Sequence[str]) -> TargetTable:
    """The target table `name`, checked to have every column in `wanted` (exact names; a
    hand-written file may differ in case where that is unambiguous)."""
    try:
        reflected = reflect_table(connection, name)
    except NoSuchTable as exc:
        raise TargetError(f"target {exc}; create it first (e.g. pt migrate schema "
                          "target-schema.sql)") from None
    present = [c.name for c in reflected.columns]
    columns = tuple(match_name(w, present) for w in wanted)
    missing = [w for w, c in zip(wanted, columns, strict=True) if c is None]
    if missing:
        raise TargetError(f"target table {name} has no column {', '.join(missing)} "
                          f"(it has: {', '.join(present)})")
    types = {c.name: declared_type(c, connection.dialect) for c in reflected.columns}
    return TargetTable(name=name.name, schema=name.schema,
                       columns=tuple(c for c in columns if c is not None),
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
        connection.execute(insert(target.table.clause(*columns)),
                           [dict(zip(columns, row, strict=True)) for row in rows])


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
