"""Reading what SQLAlchemy's inspector leaves out of a PostgreSQL catalog: triggers and
routines (pg_catalog, bound parameters), reported for review."""

from __future__ import annotations

from sqlalchemy import Connection, text

from .scaffold_model import SourceObject

_TRIGGERS = text(
    "SELECT t.tgname, c.relname, pg_get_triggerdef(t.oid) FROM pg_trigger t "
    "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE NOT t.tgisinternal AND n.nspname = :s ORDER BY t.tgname")
# Functions an extension owns are the extension's, not the schema's.
_ROUTINES = text(
    "SELECT p.proname, p.prokind, pg_get_functiondef(p.oid) FROM pg_proc p "
    "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = :s "
    "AND p.prokind IN ('f', 'p') AND NOT EXISTS (SELECT 1 FROM pg_depend d "
    "WHERE d.objid = p.oid AND d.deptype = 'e') ORDER BY p.proname")


def read_objects(connection: Connection, schema: str | None) -> list[SourceObject]:
    """Triggers and routines of `schema`."""
    params = {"s": schema or "public"}
    found = [SourceObject("trigger", str(name), str(definition), table=str(table))
             for name, table, definition in connection.execute(_TRIGGERS, params)]
    found += [SourceObject("procedure" if kind == "p" else "function", str(name),
                           str(definition))
              for name, kind, definition in connection.execute(_ROUTINES, params)]
    return found
