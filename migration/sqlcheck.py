"""SQL a transform file may hold: one SELECT (`sources[].sql`) or one condition (`joins[].on`).

A transform file is trusted configuration, reviewed like code; still, what it sends to the
source must be a query and nothing else. sqlglot parses the text in the source's dialect: more
than one statement, any statement but a SELECT (or a set operation of SELECTs), a SELECT ...
INTO, or a data-modifying part anywhere inside (PostgreSQL's `WITH d AS (DELETE ...)`) is
refused before anything reaches the database.
"""

from __future__ import annotations

from typing import Any

from pulsaride.engine.errors import BadInputError

# SQLAlchemy dialect name -> sqlglot dialect.
_DIALECTS = {"sqlite": "sqlite", "mysql": "mysql", "mariadb": "mysql",
             "postgresql": "postgres", "oracle": "oracle", "mssql": "tsql"}


class UnsafeSql(BadInputError):
    """SQL in a transform file that is not one query."""


def _sqlglot() -> Any:
    """sqlglot, imported when a transform holds SQL (0.1 s of every pt start otherwise)."""
    import sqlglot  # noqa: PLC0415

    return sqlglot


def check_query(sql: str, dialect: str) -> None:
    """Refuse `sql` unless it is exactly one read-only SELECT."""
    sqlglot = _sqlglot()
    exp = sqlglot.expressions
    queries = (exp.Select, exp.Union, exp.Intersect, exp.Except, exp.Subquery)
    try:
        statements = [s for s in sqlglot.parse(sql, read=_DIALECTS.get(dialect)) if s]
    except sqlglot.errors.SqlglotError as exc:
        raise UnsafeSql(f"is not SQL pt can read: {_first_line(exc)}") from None
    kinds = [type(s).__name__.upper() for s in statements]
    if len(statements) != 1 or not isinstance(statements[0], queries):
        raise UnsafeSql(f"must be exactly one SELECT statement (found: "
                        f"{', '.join(kinds) or 'nothing'})")
    _read_only(statements[0])


def check_condition(condition: str, dialect: str) -> None:
    """Refuse `condition` unless it is one read-only SQL expression."""
    sqlglot = _sqlglot()
    try:
        parsed = sqlglot.condition(condition, dialect=_DIALECTS.get(dialect))
    except sqlglot.errors.SqlglotError as exc:
        raise UnsafeSql(f"must be one SQL condition: {_first_line(exc)}") from None
    _read_only(parsed)


def _read_only(tree: Any) -> None:
    exp = _sqlglot().expressions
    writes = (exp.DML, exp.DDL, exp.Drop, exp.Alter, exp.Command, exp.Into, exp.Set,
              exp.Transaction, exp.Commit, exp.Rollback)
    for node in tree.walk():
        if isinstance(node, writes):
            raise UnsafeSql(f"may only read: it holds {type(node).__name__.upper()}")


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:200]
