"""A table's keys through SQLAlchemy's inspector: unique constraints, indexes, foreign keys
and checks (shared by the generic reader and the SQLite one)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine.reflection import Inspector

from .scaffold_model import SourceCheck, SourceForeignKey, SourceIndex, SourceTable


def generic_keys(inspector: Inspector, table: SourceTable, schema: str | None) -> None:
    """Unique constraints, indexes, foreign keys and checks of `table`, through the
    inspector."""
    name = table.name
    uniques = _optional(inspector.get_unique_constraints, name, schema)
    table.indexes += [SourceIndex(name=u.get("name"), columns=tuple(u["column_names"]),
                                  unique=True, constraint=True) for u in uniques]
    for index in _optional(inspector.get_indexes, name, schema):
        if index.get("duplicates_constraint"):
            continue
        table.indexes.append(_index(index))
    for fk in inspector.get_foreign_keys(name, schema=schema):
        if not fk.get("referred_table") or not fk.get("constrained_columns"):
            continue
        options = fk.get("options") or {}
        table.foreign_keys.append(SourceForeignKey(
            name=fk.get("name"), columns=tuple(fk["constrained_columns"]),
            parent=fk["referred_table"], parent_columns=tuple(fk["referred_columns"]),
            parent_schema=fk.get("referred_schema") if fk.get("referred_schema") != schema
            else None,
            on_delete=_action(options.get("ondelete")), on_update=_action(options.get("onupdate"))))
    table.checks += [SourceCheck(c.get("name"), str(c["sqltext"]))
                     for c in _optional(inspector.get_check_constraints, name, schema)]


def _index(index: Any) -> SourceIndex:
    columns = [c for c in index.get("column_names") or [] if c is not None]
    options = index.get("dialect_options") or {}
    why = ""
    if len(columns) != len(index.get("column_names") or []) or index.get("expressions"):
        why = "an index on expressions"
    if options.get("postgresql_where") is not None or options.get("sqlite_where") is not None:
        why = "a partial index (WHERE ...)"
    using = str(options.get("postgresql_using") or options.get("mysql_prefix") or "").upper()
    return SourceIndex(name=index.get("name"), columns=tuple(columns),
                       unique=bool(index.get("unique")),
                       kind="" if using in ("", "BTREE") else using, untranslatable=why)


def _action(value: Any) -> str | None:
    return str(value).upper() if value else None


def _optional(method: Any, name: str, schema: str | None) -> list[Any]:
    """What the inspector knows, or nothing when the dialect cannot tell."""
    try:
        return list(method(name, schema=schema))
    except NotImplementedError:
        return []
