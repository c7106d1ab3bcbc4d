"""Check constraints from the source's SQL to the target's, through pt's own expression
grammar (never pasted): a check parses as a filter (comparisons, AND/OR/NOT, IN, IS NULL,
arithmetic, upper/lower/trim/coalesce/nullif), its columns are renamed to their target
names, and SQLAlchemy writes it for the target with every name quoted and every value a
literal. Anything else is left for review.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, column
from sqlalchemy.dialects import postgresql, sqlite

from .filters import compile_filter
from .grammar import Column, GrammarError
from .names import match_name

_DIALECTS: dict[str, Any] = {
    "postgresql": postgresql.dialect(paramstyle="named"),  # type: ignore[no-untyped-call]
    "sqlite": sqlite.dialect(paramstyle="named"),
}
_BACKTICK = re.compile(r"`((?:[^`]|``)*)`")
_JSON_VALID = re.compile(r'^\s*\(?\s*json_valid\s*\(\s*[`"]?(?P<c>[^`"()]+)[`"]?\s*\)\s*\)?\s*$',
                         re.IGNORECASE)


def json_valid_column(sql: str) -> str | None:
    """The column of a MariaDB `json_valid(col)` check (how it declares JSON columns)."""
    match = _JSON_VALID.match(sql)
    return match["c"] if match else None


def translate_check(sql: str, columns: Mapping[str, str], flavour: str) -> str | None:
    """The check `sql` for the target (`flavour`: postgresql | sqlite), with source column
    names mapped by `columns` (source -> target); None when pt cannot translate it."""
    text = _BACKTICK.sub(lambda m: _double_quoted(m.group(1).replace("``", "`")), sql)
    if text is None or '""' in text:
        return None

    def resolve(node: Column) -> ColumnElement[Any]:
        name = match_name(node.name, columns)
        if name is None:
            raise GrammarError(f"unknown column {node.name}")
        return column(columns[name])

    try:
        condition = compile_filter(text, resolve)
        return str(condition.compile(dialect=_DIALECTS[flavour],
                                     compile_kwargs={"literal_binds": True}))
    except (GrammarError, NotImplementedError, TypeError, ValueError):
        return None


def _double_quoted(name: str) -> str:
    # The grammar reads "name" without escapes: a name holding a double quote is refused.
    return f'"{name}"' if '"' not in name else '""'


def members_check(name: str, members: Sequence[str], flavour: str) -> str:
    """`name IN ('a', 'b', ...)`, written by SQLAlchemy."""
    condition = column(name).in_(list(members))
    return str(condition.compile(dialect=_DIALECTS[flavour],
                                 compile_kwargs={"literal_binds": True}))
