"""Reflecting a table by its exact name, on either side of the migration."""

from __future__ import annotations

import warnings

from sqlalchemy import Connection, MetaData, Table, inspect
from sqlalchemy.exc import NoSuchTableError, SAWarning

from pulsaride.engine.errors import BadInputError

from .names import TableName


class NoSuchTable(BadInputError):
    """No table of that exact name."""


def reflect_table(connection: Connection, name: TableName) -> Table:
    """The table `name`, exactly so named, reflected. A missing one is an error that names
    the tables spelled the same but for case (names are exact: `Genre` is not `genre`)."""
    try:
        with warnings.catch_warnings():
            # Types SQLAlchemy does not know (MariaDB's geometry, PostGIS...) reflect as
            # NullType, which is what pt reads every value as anyway: nothing to warn about.
            warnings.filterwarnings("ignore", "Did not recognize type", SAWarning)
            return Table(name.name, MetaData(), autoload_with=connection, schema=name.schema)
    except NoSuchTableError:
        pass
    others = [n for n in inspect(connection).get_table_names(schema=name.schema)
              if n.lower() == name.name.lower()]
    hint = f" (there is {', '.join(repr(n) for n in others)}: names are exact)" if others \
        else ""
    raise NoSuchTable(f"table {name} does not exist{hint}")
