"""Reading a SQLite catalog: SQLAlchemy's inspector for keys, indexes and checks, and with
bound parameters pragma_table_info (types exactly as declared) and sqlite_master
(AUTOINCREMENT, views, triggers)."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.engine.reflection import Inspector

from .scaffold_model import SourceColumn, SourceObject, SourceTable
from .scaffold_read_keys import generic_keys
from .source import sqlite_declared_types

_TABLE_SQL = text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t")
_OBJECTS = text("SELECT type, name, tbl_name, sql FROM sqlite_master "
                "WHERE type IN ('view', 'trigger') ORDER BY type, name")
_HAS_SEQUENCE = text("SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                     "AND name = 'sqlite_sequence'")
_SEQUENCE = text("SELECT seq FROM sqlite_sequence WHERE name = :t")
# Quoted text and names of a CREATE TABLE, left out before looking for the keyword.
_QUOTED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`(?:[^`]|``)*`|\[[^\]]*\]")


def read_table(connection: Connection, inspector: Inspector, name: str) -> SourceTable:
    """One table: declared types, defaults, keys, indexes, checks, AUTOINCREMENT."""
    declared = sqlite_declared_types(connection, name)
    primary = inspector.get_pk_constraint(name).get("constrained_columns") or []
    automatic = _autoincrement(connection, name) or _rowid_alias(connection, name, primary,
                                                                 declared)
    columns = []
    for col in inspector.get_columns(name):
        column_name = str(col["name"])
        columns.append(SourceColumn(
            name=column_name, declared=declared.get(column_name, ""),
            nullable=bool(col.get("nullable", True)) and column_name not in primary,
            default=_default(col.get("default")),
            autoincrement=automatic and primary == [column_name],
            generated=_computed(col)))
    table = SourceTable(name, columns, primary_key=list(primary))
    generic_keys(inspector, table, None)
    if automatic:
        table.next_identity = _next_value(connection, name)
    return table


def _default(value: Any) -> str | None:
    return None if value is None else str(value)


def _computed(col: Any) -> str | None:
    computed = col.get("computed")
    return str(computed["sqltext"]) if computed else None


def _autoincrement(connection: Connection, name: str) -> bool:
    """Whether the table was declared with AUTOINCREMENT (its rowid never reused)."""
    sql = connection.execute(_TABLE_SQL, {"t": name}).scalar()
    if not sql:
        return False
    return re.search(r"\bAUTOINCREMENT\b", _QUOTED.sub(" ", str(sql)), re.IGNORECASE) is not None


def _rowid_alias(connection: Connection, name: str, primary: list[str],
                 declared: dict[str, str]) -> bool:
    """Whether the key is an alias of the rowid (a sole column declared exactly INTEGER in
    a table with a rowid): SQLite assigns it when an insert leaves it out, as an identity."""
    if len(primary) != 1 or declared.get(primary[0], "").strip().upper() != "INTEGER":
        return False
    sql = str(connection.execute(_TABLE_SQL, {"t": name}).scalar() or "")
    return re.search(r"\bWITHOUT\s+ROWID\b", _QUOTED.sub(" ", sql), re.IGNORECASE) is None


def _next_value(connection: Connection, name: str) -> int | None:
    if not connection.execute(_HAS_SEQUENCE).scalar():
        return None
    value = connection.execute(_SEQUENCE, {"t": name}).scalar()
    return int(value) + 1 if value is not None else None


def read_objects(connection: Connection) -> list[SourceObject]:
    """Views and triggers, with their SQL."""
    return [SourceObject(str(kind), str(name), str(sql or ""),
                         table=str(table) if kind == "trigger" else None)
            for kind, name, table, sql in connection.execute(_OBJECTS)]
