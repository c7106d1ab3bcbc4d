"""Reading a source catalog for `pt scaffold`: SQLAlchemy's inspector where it is complete,
each dialect's own catalog (bound-parameter queries only) where it is not.

MariaDB/MySQL: information_schema (scaffold_read_mysql); SQLite: pragma_table_info and
sqlite_master (scaffold_read_sqlite); PostgreSQL: the inspector plus pg_catalog for
identities, triggers and routines (scaffold_read_postgres); anything else (Oracle): the
inspector alone.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, Engine, inspect
from sqlalchemy import Enum as EnumType
from sqlalchemy.engine.reflection import Inspector
from sqlalchemy.exc import SAWarning

from pulsaride.engine.errors import BadInputError

from .names import TableName
from .relations import pg_declared_types
from .scaffold_model import (
    SourceColumn,
    SourceObject,
    SourceSchema,
    SourceTable,
)
from .scaffold_profile import read_profiles
from .scaffold_read_keys import generic_keys


def _not_data(name: str, dialect: str) -> bool:
    """pt's own tables (a database that was a target before) and SQLite's internal ones;
    a user's table called `sqlite_x` in another database, or `pulsaride_x`, is data."""
    from .tables import METADATA  # noqa: PLC0415

    return name in METADATA.tables or (
        dialect == "sqlite" and name.lower().startswith("sqlite_"))


def read_source(engine: Engine, tables: Sequence[str] | None, schema: str | None, *,
                sqlite_data: bool = True) -> SourceSchema:
    """The tables (all, or `tables`) of the source with everything that defines them, the
    other objects of the schema, and the data profiles type choices need."""
    with engine.connect() as connection, warnings.catch_warnings():
        # Types SQLAlchemy does not know are read by their declared text: no warning.
        warnings.filterwarnings("ignore", "Did not recognize type", SAWarning)
        # SQLite keeps any declared type (`smallint(5) unsigned`): read by its text.
        warnings.filterwarnings("ignore", "Could not instantiate type", SAWarning)
        dialect = connection.dialect.name
        found, objects, mariadb = _read(connection, schema)
        chosen = _choose(found, tables, dialect)
        names = {t.name for t in chosen}
        objects = [o for o in objects if o.table is None or o.table in names]
        result = SourceSchema(dialect=dialect, schema=schema, tables=chosen, objects=objects,
                              mariadb=mariadb)
        result.profiles = read_profiles(connection, result, sqlite_data=sqlite_data)
    return result


def _read(connection: Connection, schema: str | None) -> tuple[
        list[SourceTable], list[SourceObject], bool]:
    """Tables, other objects, and whether the source is MariaDB. `schema` None: the
    connection's own (and transform files will not name one)."""
    dialect = connection.dialect.name
    if dialect == "mysql":
        from . import scaffold_read_mysql as mysql  # noqa: PLC0415

        database = schema or mysql.current_schema(connection)
        return (mysql.read_tables(connection, database),
                mysql.read_objects(connection, database), mysql.is_mariadb(connection))
    inspector = inspect(connection)
    names = [n for n in inspector.get_table_names(schema=schema)
             if not _not_data(n, dialect)]
    if dialect == "sqlite":
        from . import scaffold_read_sqlite as lite  # noqa: PLC0415

        return ([lite.read_table(connection, inspector, n) for n in names],
                lite.read_objects(connection), False)
    tables = [generic_table(inspector, n, schema) for n in names]
    objects = generic_views(inspector, schema)
    if dialect == "postgresql":
        from . import scaffold_read_postgres as pg  # noqa: PLC0415

        objects += pg.read_objects(connection, schema or inspector.default_schema_name)
    return tables, objects, False


def _choose(found: list[SourceTable], wanted: Sequence[str] | None,
            dialect: str) -> list[SourceTable]:
    """`wanted` tables by exact name, else by the one name equal but for case."""
    found = [t for t in found if not _not_data(t.name, dialect)]
    if not wanted:
        return found
    by_name = {t.name: t for t in found}
    chosen, missing = [], []
    for name in wanted:
        same = [t for t in found if t.name.lower() == name.lower()]
        table = by_name.get(name) or (same[0] if len(same) == 1 else None)
        if table is None:
            missing.append(name)
        elif table not in chosen:
            chosen.append(table)
    if missing:
        raise BadInputError(f"no table {', '.join(missing)} in the source "
                            f"(tables: {', '.join(t.name for t in found)})")
    return chosen


def generic_table(inspector: Inspector, name: str, schema: str | None) -> SourceTable:
    """A table through the inspector alone."""
    primary = inspector.get_pk_constraint(name, schema=schema).get("constrained_columns") or []
    columns = [_column(inspector, col, primary)
               for col in inspector.get_columns(name, schema=schema)]
    if inspector.dialect.name == "postgresql" and any(c.declared == "NULL" for c in columns):
        spelled = pg_declared_types(inspector.bind, TableName(name, schema))  # type: ignore[arg-type]
        columns = [replace(c, declared=spelled.get(c.name, c.declared)) if c.declared == "NULL"
                   else c for c in columns]
    table = SourceTable(name, columns, primary_key=list(primary))
    generic_keys(inspector, table, schema)
    return table


def _column(inspector: Inspector, col: Any, primary: list[str]) -> SourceColumn:
    type_ = col["type"]
    default = col.get("default")
    identity = bool(col.get("identity")) or (
        isinstance(default, str) and default.lower().startswith("nextval("))
    computed = col.get("computed")
    return SourceColumn(
        name=str(col["name"]), declared=_spelled(type_, inspector),
        nullable=bool(col.get("nullable", True)) and col["name"] not in primary,
        default=None if default is None or identity else str(default),
        autoincrement=identity, generated=str(computed["sqltext"]) if computed else None,
        enum_values=tuple(type_.enums) if isinstance(type_, EnumType) and type_.enums
        else None)


def _spelled(type_: Any, inspector: Inspector) -> str:
    try:
        return str(type_.compile(dialect=inspector.dialect))
    except Exception:  # a reflected type the dialect cannot print back
        return str(type_)


def generic_views(inspector: Inspector, schema: str | None) -> list[SourceObject]:
    """Views and their definitions."""
    views = []
    for name in _names(inspector.get_view_names, schema):
        try:
            definition = str(inspector.get_view_definition(name, schema=schema) or "")
        except NotImplementedError:
            definition = ""
        views.append(SourceObject("view", name, definition))
    return views


def _names(method: Any, schema: str | None) -> list[str]:
    try:
        return list(method(schema=schema))
    except NotImplementedError:
        return []
