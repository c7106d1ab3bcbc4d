"""Reflecting a table by its exact name, on either side of the migration."""

from __future__ import annotations

import warnings
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    inspect,
    text,
)
from sqlalchemy.exc import NoSuchTableError, SAWarning
from sqlalchemy.types import NullType

from pulsaride.engine.errors import BadInputError

from .names import TableName


class NoSuchTable(BadInputError):
    """No table of that exact name."""


def reflect_table(connection: Connection, name: TableName) -> Table:
    """The table `name`, exactly so named, reflected. A missing one is an error that names
    the tables spelled the same but for case (names are exact: `Genre` is not `genre`)."""
    mysql = connection.dialect.name in ("mysql", "mariadb")
    table = _from_information_schema(connection, name) if mysql else _reflected(connection,
                                                                                name)
    if table is not None:
        return table
    others = [n for n in inspect(connection).get_table_names(schema=name.schema)
              if n.lower() == name.name.lower()]
    hint = f" (there is {', '.join(repr(n) for n in others)}: names are exact)" if others \
        else ""
    raise NoSuchTable(f"table {name} does not exist{hint}")


def declared_type(column: Any, dialect: Any) -> str:
    """A reflected column's type as its database spells it: from the catalog where
    reflection could not say (`info["declared"]`), else SQLAlchemy's spelling."""
    base = next(iter(getattr(column, "base_columns", ())), column)  # through aliases
    declared = getattr(base, "info", {}).get("declared")
    if declared is not None:
        return str(declared)
    try:
        return str(column.type.compile(dialect=dialect))
    except Exception:  # a reflected type the dialect cannot print back
        return str(column.type)


def _reflected(connection: Connection, name: TableName) -> Table | None:
    try:
        with warnings.catch_warnings():
            # Types SQLAlchemy does not know (MariaDB's geometry, PostGIS...) reflect as
            # NullType, which is what pt reads every value as anyway: nothing to warn about.
            warnings.filterwarnings("ignore", "Did not recognize type", SAWarning)
            # SQLite keeps any declared type (`smallint(5) unsigned`): read by its text.
            warnings.filterwarnings("ignore", "Could not instantiate type", SAWarning)
            table = Table(name.name, MetaData(), autoload_with=connection, schema=name.schema)
    except NoSuchTableError:
        return None
    unknown = [c for c in table.columns if isinstance(c.type, NullType)]
    if unknown and connection.dialect.name == "postgresql":
        spelled = pg_declared_types(connection, name)
        for column in unknown:
            if column.name in spelled:
                column.info["declared"] = str(spelled[column.name])
    return table


def pg_declared_types(connection: Connection, name: TableName) -> dict[str, str]:
    """Column -> type as PostgreSQL spells it (format_type), for the types SQLAlchemy
    reflects as NullType (point, xml, box, ...)."""
    rows = connection.execute(_PG_TYPES, {"t": name.name, "s": name.schema})
    return {str(column): str(spelled) for column, spelled in rows}


_PG_TYPES = text(
    "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
    "WHERE a.attrelid = (SELECT c.oid FROM pg_class c JOIN pg_namespace n "
    "ON n.oid = c.relnamespace WHERE c.relname = :t "
    "AND n.nspname = COALESCE(:s, current_schema())) AND a.attnum > 0 AND NOT a.attisdropped")


# Both compare names ignoring case (information_schema's collation): rows are kept by exact
# name afterwards.
_MYSQL_COLUMNS = text(
    "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE FROM information_schema.COLUMNS "
    "WHERE TABLE_SCHEMA = COALESCE(:s, DATABASE()) AND TABLE_NAME = :t "
    "ORDER BY ORDINAL_POSITION")
_MYSQL_KEY = text(
    "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS "
    "WHERE TABLE_SCHEMA = COALESCE(:s, DATABASE()) AND TABLE_NAME = :t "
    "AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX")


def _from_information_schema(connection: Connection, name: TableName) -> Table | None:
    """A MariaDB/MySQL table from information_schema: SQLAlchemy's reflection parses SHOW
    CREATE TABLE line by line, which a column name holding a line break or a backtick
    breaks (it then names columns that do not exist). Values are read as the driver gives
    them, so each column carries its declared type as text (`info["declared"]`), not a
    SQLAlchemy type."""
    params = {"s": name.schema, "t": name.name}
    rows = [r for r in connection.execute(_MYSQL_COLUMNS, params) if r[0] == name.name]
    if not rows:
        return None
    key_names = [r[1] for r in connection.execute(_MYSQL_KEY, params) if r[0] == name.name]
    columns = [Column(r[1], NullType(), nullable=r[3] == "YES", autoincrement=False,
                      info={"declared": str(r[2])}) for r in rows]
    key_constraint = [PrimaryKeyConstraint(*key_names)] if key_names else []  # the key's order
    return Table(name.name, MetaData(), *columns, *key_constraint, schema=name.schema)
