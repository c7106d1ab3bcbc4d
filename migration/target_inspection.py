"""Looking into the target: parked rows, and applying a target schema file (split into
statements the way PostgreSQL reads a script)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from pulsaride.engine.errors import BadInputError, PulsarideError
from pulsaride.engine.inputs import SCHEMA_FILE_BYTES, read_bounded

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
    statements = split_statements(read_script(path))
    try:
        with engine.begin() as connection:
            for statement in statements:
                run_statement(connection, statement)
    except SQLAlchemyError as exc:
        original = getattr(exc, "orig", None) or exc
        raise PulsarideError(f"{path}: {str(original).strip().splitlines()[0]}") from None
    return len(statements)


def read_script(path: Path) -> str:
    """The text of a .sql file; BadInputError when it cannot be read."""
    try:
        return read_bounded(path, SCHEMA_FILE_BYTES, "schema file").decode()
    except UnicodeDecodeError:
        raise BadInputError(f"{path}: not UTF-8 text") from None


def run_statement(connection: Connection, statement: str) -> None:
    """Run one statement of a script as it is written: no bind parameters, so neither `:x`
    nor `%` in a literal or a quoted name means anything to SQLAlchemy or the driver."""
    connection.execution_options(no_parameters=True).exec_driver_sql(statement)


def split_statements(script: str) -> list[str]:
    """Statements of a SQL script, split at semicolons outside quotes ('...', E'...',
    "..."), dollar-quoted bodies ($$...$$, $tag$...$tag$) and comments (-- and /* */,
    which are left out)."""
    return _Splitter(script).statements()


_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$")
_WORD = re.compile(r"[A-Za-z0-9_$\u0080-\uffff]")


class _Splitter:
    """One pass over a script; `index` always stands at the start of a token."""

    def __init__(self, script: str) -> None:
        self.script = script
        self.index = 0
        self.current: list[str] = []
        self.found: list[str] = []

    def statements(self) -> list[str]:
        script = self.script
        while self.index < len(script):
            char = script[self.index]
            if char == ";":
                self._end_statement()
                self.index += 1
            elif script.startswith("--", self.index):
                end = script.find("\n", self.index)  # the line break itself stays
                self.index = len(script) if end < 0 else end
            elif script.startswith("/*", self.index):
                self._block_comment()
            elif char in "'\"":
                self._quoted(char, backslashes=char == "'" and self._escape_string())
            elif char == "$" and not self._in_word():
                self._dollar()
            else:
                self.current.append(char)
                self.index += 1
        self._end_statement()
        return [s for s in self.found if s]

    def _end_statement(self) -> None:
        self.found.append("".join(self.current).strip())
        self.current = []

    def _block_comment(self) -> None:
        # PostgreSQL's block comments nest.
        depth, index = 0, self.index
        while index < len(self.script):
            if self.script.startswith("/*", index):
                depth, index = depth + 1, index + 2
            elif self.script.startswith("*/", index):
                depth, index = depth - 1, index + 2
                if depth == 0:
                    break
            else:
                index += 1
        self.index = index
        self.current.append(" ")

    def _in_word(self) -> bool:
        """Whether the character before `index` continues an identifier (`a$b`)."""
        return self.index > 0 and bool(_WORD.match(self.script[self.index - 1]))

    def _escape_string(self) -> bool:
        """Whether the quote at `index` opens an E'...' string (backslash escapes)."""
        if self.index == 0 or self.script[self.index - 1] not in "Ee":
            return False
        return self.index == 1 or not _WORD.match(self.script[self.index - 2])

    def _quoted(self, quote: str, backslashes: bool) -> None:
        script, index = self.script, self.index + 1
        while index < len(script):
            if backslashes and script[index] == "\\":
                index += 2
                continue
            if script[index] == quote:
                if script.startswith(quote, index + 1):  # '' or "": the quote itself
                    index += 2
                    continue
                index += 1
                break
            index += 1
        self._keep(index)

    def _dollar(self) -> None:
        match = _DOLLAR_TAG.match(self.script, self.index)
        if match is None:  # $1 and the like: an ordinary character here
            self._keep(self.index + 1)
            return
        tag = match.group()
        end = self.script.find(tag, match.end())
        self._keep(len(self.script) if end < 0 else end + len(tag))

    def _keep(self, end: int) -> None:
        self.current.append(self.script[self.index:end])
        self.index = end
