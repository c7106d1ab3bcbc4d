"""Reading a MariaDB / MySQL catalog (information_schema), every query with bound parameters.

SQLAlchemy's reflection loses what scaffolding needs here: `int(10) unsigned` and
`tinyint(1)` as declared (COLUMN_TYPE), `enum(...)`/`set(...)` members with MySQL's escapes,
auto_increment and `on update current_timestamp()` (EXTRA), column-level check constraints
(MariaDB's JSON columns are LONGTEXT with a json_valid check), FULLTEXT/SPATIAL indexes.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, text

from .scaffold_model import (
    SourceCheck,
    SourceColumn,
    SourceForeignKey,
    SourceIndex,
    SourceObject,
    SourceTable,
)

_TABLES = text(
    "SELECT TABLE_NAME, AUTO_INCREMENT FROM information_schema.TABLES "
    "WHERE TABLE_SCHEMA = :s AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME")
_COLUMNS = text(
    "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, COLUMN_DEFAULT, IS_NULLABLE, EXTRA, "
    "GENERATION_EXPRESSION FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = :s "
    "ORDER BY TABLE_NAME, ORDINAL_POSITION")
_STATISTICS = text(
    "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME, INDEX_TYPE, SUB_PART "
    "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = :s "
    "ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX")
_FOREIGN_KEYS = text(
    "SELECT k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_SCHEMA, "
    "k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME, r.UPDATE_RULE, r.DELETE_RULE "
    "FROM information_schema.KEY_COLUMN_USAGE k "
    "JOIN information_schema.REFERENTIAL_CONSTRAINTS r "
    "ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME "
    "AND r.TABLE_NAME = k.TABLE_NAME "
    "WHERE k.TABLE_SCHEMA = :s AND k.REFERENCED_TABLE_NAME IS NOT NULL "
    "ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION")
# MySQL 8's CHECK_CONSTRAINTS has no TABLE_NAME; TABLE_CONSTRAINTS has it on both.
_CHECKS = text(
    "SELECT t.TABLE_NAME, c.CONSTRAINT_NAME, c.CHECK_CLAUSE "
    "FROM information_schema.TABLE_CONSTRAINTS t JOIN information_schema.CHECK_CONSTRAINTS c "
    "ON c.CONSTRAINT_SCHEMA = t.CONSTRAINT_SCHEMA AND c.CONSTRAINT_NAME = t.CONSTRAINT_NAME "
    "WHERE t.TABLE_SCHEMA = :s AND t.CONSTRAINT_TYPE = 'CHECK' "
    "ORDER BY t.TABLE_NAME, c.CONSTRAINT_NAME")
_VIEWS = text("SELECT TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS "
              "WHERE TABLE_SCHEMA = :s ORDER BY TABLE_NAME")
_TRIGGERS = text(
    "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, "
    "ACTION_STATEMENT FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = :s "
    "ORDER BY TRIGGER_NAME")
_ROUTINES = text(
    "SELECT ROUTINE_NAME, ROUTINE_TYPE, ROUTINE_DEFINITION FROM information_schema.ROUTINES "
    "WHERE ROUTINE_SCHEMA = :s ORDER BY ROUTINE_NAME")


def is_mariadb(connection: Connection) -> bool:
    """MariaDB and MySQL spell column defaults differently in information_schema."""
    version = connection.execute(text("SELECT VERSION()")).scalar()
    return "mariadb" in str(version).lower()


def current_schema(connection: Connection) -> str:
    """The database the connection uses."""
    return str(connection.execute(text("SELECT DATABASE()")).scalar())


def read_tables(connection: Connection, schema: str) -> list[SourceTable]:
    """Every base table of `schema` with its columns, keys, indexes and checks."""
    params = {"s": schema}
    mariadb = is_mariadb(connection)
    columns: dict[str, list[SourceColumn]] = defaultdict(list)
    for row in connection.execute(_COLUMNS, params):
        columns[row[0]].append(_column(row, mariadb))
    tables = {str(name): SourceTable(str(name), columns.get(name, []),
                                     next_identity=int(auto) if auto is not None else None)
              for name, auto in connection.execute(_TABLES, params)}
    _add_indexes(connection, params, tables)
    _add_foreign_keys(connection, params, tables)
    for table_name, name, clause in connection.execute(_CHECKS, params):
        if table_name in tables:
            tables[table_name].checks.append(SourceCheck(str(name), str(clause)))
    return list(tables.values())


def _column(row: Any, mariadb: bool) -> SourceColumn:
    _table, name, declared, default, nullable, extra, generated = row
    extra = str(extra or "")
    lowered = extra.lower()
    on_update = None
    if "on update" in lowered:
        on_update = extra[lowered.index("on update") + len("on update"):].strip()
    return SourceColumn(
        name=str(name), declared=str(declared), nullable=nullable == "YES",
        default=_default(default, extra, mariadb), autoincrement="auto_increment" in lowered,
        on_update=on_update, generated=str(generated) if generated else None,
        enum_values=enum_members(str(declared)))


def _default(default: Any, extra: str, mariadb: bool) -> str | None:
    """The default as SQL text. MariaDB quotes literals and writes NULL for "no default";
    MySQL writes literals bare and flags expressions with DEFAULT_GENERATED."""
    if default is None:
        return None
    value = str(default)
    if mariadb:
        return None if value == "NULL" else value
    if "DEFAULT_GENERATED" in extra or value.upper().startswith("CURRENT_TIMESTAMP"):
        return value
    return "'" + value.replace("'", "''") + "'"


def enum_members(declared: str) -> tuple[str, ...] | None:
    """The members of `enum('a','b''c')` or `set(...)`, MySQL's escapes undone."""
    head = declared.split("(", 1)[0].strip().lower()
    if head not in ("enum", "set") or "(" not in declared:
        return None
    body = declared[declared.index("(") + 1:declared.rindex(")")]
    return tuple(_quoted_values(body))


_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a"}


def _quoted_values(body: str) -> list[str]:
    values: list[str] = []
    index = 0
    while index < len(body):
        if body[index] != "'":
            index += 1
            continue
        value, index = read_quoted(body, index + 1)
        values.append(value)
    return values


def read_quoted(body: str, index: int) -> tuple[str, int]:
    """The text of a MySQL '...' string starting after its quote (escapes undone), and the
    index after its closing quote."""
    chars: list[str] = []
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            chars.append(_ESCAPES.get(body[index + 1], body[index + 1]))
            index += 2
        elif char == "'" and body.startswith("''", index):
            chars.append("'")
            index += 2
        elif char == "'":
            return "".join(chars), index + 1
        else:
            chars.append(char)
            index += 1
    return "".join(chars), index


def _add_indexes(connection: Connection, params: dict[str, str],
                 tables: dict[str, SourceTable]) -> None:
    parts: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for row in connection.execute(_STATISTICS, params):
        parts[(row[0], row[1])].append(row)
    for (table_name, index_name), rows in parts.items():
        table = tables.get(table_name)
        if table is None:
            continue
        columns = tuple(str(r[3]) for r in rows if r[3] is not None)
        if index_name == "PRIMARY":
            table.primary_key = list(columns)
            continue
        kind = str(rows[0][4] or "").upper()
        prefix = [str(r[3]) for r in rows if r[5] is not None]
        why = "" if len(columns) == len(rows) else "an index on expressions"
        unique = rows[0][2] == 0
        if prefix and unique:
            why = f"a unique index on the first characters of {', '.join(prefix)}"
        table.indexes.append(SourceIndex(
            name=str(index_name), columns=columns, unique=unique,
            kind="" if kind in {"BTREE", "HASH"} else kind, untranslatable=why))


def _add_foreign_keys(connection: Connection, params: dict[str, str],
                      tables: dict[str, SourceTable]) -> None:
    keys: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for row in connection.execute(_FOREIGN_KEYS, params):
        keys[(row[0], row[1])].append(row)
    for (table_name, name), rows in keys.items():
        if table_name not in tables:
            continue
        first = rows[0]
        tables[table_name].foreign_keys.append(SourceForeignKey(
            name=str(name), columns=tuple(str(r[2]) for r in rows), parent=str(first[4]),
            parent_columns=tuple(str(r[5]) for r in rows),
            parent_schema=None if first[3] == params["s"] else str(first[3]),
            on_update=str(first[6]), on_delete=str(first[7])))


def read_objects(connection: Connection, schema: str) -> list[SourceObject]:
    """Views, triggers and routines of `schema`."""
    params = {"s": schema}
    found = [SourceObject("view", str(n), str(d or "")) for n, d in
             connection.execute(_VIEWS, params)]
    for name, table, timing, event, body in connection.execute(_TRIGGERS, params):
        found.append(SourceObject("trigger", str(name), f"{timing} {event} FOR EACH ROW {body}",
                                  table=str(table)))
    for name, kind, body in connection.execute(_ROUTINES, params):
        found.append(SourceObject(str(kind).lower(), str(name), str(body or "")))
    return found
