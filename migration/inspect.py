"""Looking into the target: parked rows, and applying a target schema file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.exc import SQLAlchemyError

from pulsaride.engine.errors import BadInputError, PulsarideError

from .names import TableName
from .tables import DEFERRED, ensure_tables

SAMPLE_KEYS = 10


def deferred_summary(engine: Engine, table: str | None = None) -> list[dict[str, Any]]:
    """Deferred rows grouped by (target table, blocking table, key), with sample key values;
    only the rows waiting to go into `table` (its exact name, or schema.name) when given."""
    ensure_tables(engine)
    query = (select(DEFERRED.c.target_table, DEFERRED.c.blocking_table,
                    DEFERRED.c.blocking_key, func.count().label("rows"))
             .group_by(DEFERRED.c.target_table, DEFERRED.c.blocking_table,
                       DEFERRED.c.blocking_key)
             .order_by(DEFERRED.c.target_table, DEFERRED.c.blocking_table,
                       DEFERRED.c.blocking_key))
    groups = []
    with engine.connect() as connection:
        if table is not None:
            query = query.where(DEFERRED.c.target_table.in_(_keys_named(connection, table)))
        for row in connection.execute(query):
            keys = connection.execute(
                select(DEFERRED.c.key_value).distinct()
                .where(DEFERRED.c.target_table == row.target_table,
                       DEFERRED.c.blocking_table == row.blocking_table,
                       DEFERRED.c.blocking_key == row.blocking_key)
                .order_by(DEFERRED.c.key_value).limit(SAMPLE_KEYS)).scalars().all()
            target, blocking = (TableName.from_key(row.target_table),
                                TableName.from_key(row.blocking_table))
            groups.append({"target_table": str(target),
                           "target": {"schema": target.schema, "name": target.name},
                           "blocking_table": str(blocking),
                           "blocking": {"schema": blocking.schema, "name": blocking.name},
                           "blocking_key": row.blocking_key, "rows": row.rows,
                           "sample_keys": list(keys)})
    return groups


def _keys_named(connection: Connection, table: str) -> list[str]:
    """The keys (TableName.key) in pulsaride_deferred of the tables called exactly `table`:
    as pt prints them (schema.name, or the name), else by their name in any schema."""
    present = [TableName.from_key(k) for k in connection.execute(
        select(DEFERRED.c.target_table).distinct()).scalars()]
    exact = [n.key() for n in present if str(n) == table]
    return exact or [n.key() for n in present if n.name == table]


def apply_schema(engine: Engine, path: Path) -> int:
    """Run every statement of a .sql file in one transaction; return how many ran."""
    try:
        script = path.read_text()
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read: {exc.strerror}") from None
    statements = split_statements(script)
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.execute(text(statement))
    except SQLAlchemyError as exc:
        original = getattr(exc, "orig", None) or exc
        raise PulsarideError(f"{path}: {str(original).strip().splitlines()[0]}") from None
    return len(statements)


def split_statements(script: str) -> list[str]:
    """Statements of a SQL script, split at semicolons outside quotes and comments."""
    statements, current, quote, index = [], [], "", 0
    while index < len(script):
        char = script[index]
        if quote:
            current.append(char)
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
            current.append(char)
        elif script.startswith("--", index):
            end = script.find("\n", index)
            index = len(script) if end < 0 else end
            continue
        elif char == ";":
            statements.append("".join(current).strip())
            current = []
        else:
            current.append(char)
        index += 1
    statements.append("".join(current).strip())
    return [s for s in statements if s]
