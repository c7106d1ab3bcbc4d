"""A JSON "fingerprint" of one PostgreSQL schema: what a loader (pgloader, pt) created there.

`fingerprint(url_or_engine, schema)` reads the catalog with `search_path` set to `schema`, so
definitions print unqualified and the fingerprints of two schemas (pgloader's, pt's) compare
directly. The document:

    {"schema": str,
     "tables": {table: {"columns": [{"name", "type", "nullable", "default", "identity",
                                     "generated"}],           # in column order
                        "primary_key": {"name", "columns"} | None,
                        "unique": [{"name", "definition"}],
                        "checks": [{"name", "definition"}],
                        "foreign_keys": [{"name", "definition", "validated"}],
                        "indexes": [{"name", "definition", "unique", "constraint"}],
                        "rows": int}},
     "sequences": [{"name", "type", "last_value", "owned_by"}],
     "enums": {type: [labels in order]},
     "domains": {domain: {"type", "checks"}},
     "views": [name], "functions": [signature], "triggers": [{"table", "name", "definition"}]}

`type` is format_type(), `default` pg_get_expr() of the default, `identity` is "" / "always" /
"by default", `definition` pg_get_constraintdef() / pg_get_indexdef() / pg_get_triggerdef()
(these two always qualify the table; the "schema." prefix is removed), `rows` an exact count.
Lists other than columns are sorted by name.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, create_engine, func, select, table, text
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.elements import quoted_name

Document = dict[str, Any]

_IDENTITY = {"": "", "a": "always", "d": "by default"}


def fingerprint(url_or_engine: str | Engine, schema: str = "public") -> Document:
    """The fingerprint of `schema` in the PostgreSQL database at `url_or_engine` (a URL as a
    user writes it, postgresql://..., or an Engine)."""
    engine = _engine(url_or_engine)
    try:
        with engine.connect() as connection:
            prefix = connection.execute(text(
                "SELECT set_config('search_path', quote_ident(:s), false) || '.'"),
                {"s": schema}).scalar_one()
            return {"schema": schema,
                    "tables": {name: _table(connection, schema, name, prefix)
                               for name in _names(connection, _TABLES, schema)},
                    "sequences": _sequences(connection, schema),
                    "enums": _enums(connection, schema),
                    "domains": _domains(connection, schema),
                    "views": _names(connection, _VIEWS, schema),
                    "functions": _names(connection, _FUNCTIONS, schema),
                    "triggers": _triggers(connection, schema, prefix)}
    finally:
        if not isinstance(url_or_engine, Engine):
            engine.dispose()


def _engine(url_or_engine: str | Engine) -> Engine:
    if isinstance(url_or_engine, Engine):
        return url_or_engine
    url = url_or_engine
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return create_engine(url, poolclass=NullPool)


_IN_SCHEMA = "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :s"
_TABLES = f"SELECT c.relname FROM pg_class c {_IN_SCHEMA} AND c.relkind IN ('r', 'p')"
_VIEWS = f"SELECT c.relname FROM pg_class c {_IN_SCHEMA} AND c.relkind IN ('v', 'm')"
_FUNCTIONS = ("SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' "
              "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
              "WHERE n.nspname = :s")
_RELATION = ("(SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
             "WHERE n.nspname = :s AND c.relname = :t)")


def _names(connection: Connection, query: str, schema: str) -> list[str]:
    return sorted(r[0] for r in connection.execute(text(query), {"s": schema}))


def _table(connection: Connection, schema: str, name: str, prefix: str) -> Document:
    params = {"s": schema, "t": name}
    columns = [{"name": r[0], "type": r[1], "nullable": not r[2], "default": r[3],
                "identity": _IDENTITY[r[4]], "generated": r[5]}
               for r in connection.execute(text(
                   "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
                   "pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated "
                   "FROM pg_attribute a LEFT JOIN pg_attrdef d "
                   "ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
                   f"WHERE a.attrelid = {_RELATION} AND a.attnum > 0 AND NOT a.attisdropped "
                   "ORDER BY a.attnum"), params)]
    constraints = connection.execute(text(
        "SELECT con.conname, con.contype, pg_get_constraintdef(con.oid), con.convalidated, "
        "ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(num, pos) "
        "      JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num "
        "      ORDER BY k.pos) "
        f"FROM pg_constraint con WHERE con.conrelid = {_RELATION} ORDER BY con.conname"),
        params).all()
    primary = [{"name": r[0], "columns": list(r[4])} for r in constraints if r[1] == "p"]
    indexes = [{"name": r[0], "definition": _unqualified(r[1], prefix),
                "unique": r[2], "constraint": r[3]}
               for r in connection.execute(text(
                   "SELECT i.relname, pg_get_indexdef(x.indexrelid), x.indisunique, "
                   "EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid) "
                   "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
                   f"WHERE x.indrelid = {_RELATION} ORDER BY i.relname"), params)]
    counted = select(func.count()).select_from(
        table(quoted_name(name, quote=True), schema=quoted_name(schema, quote=True)))
    return {
        "columns": columns,
        "primary_key": primary[0] if primary else None,
        "unique": [{"name": r[0], "definition": r[2]} for r in constraints if r[1] == "u"],
        "checks": [{"name": r[0], "definition": r[2]} for r in constraints if r[1] == "c"],
        "foreign_keys": [{"name": r[0], "definition": r[2], "validated": r[3]}
                         for r in constraints if r[1] == "f"],
        "indexes": indexes,
        "rows": int(connection.execute(counted).scalar_one()),
    }


def _sequences(connection: Connection, schema: str) -> list[Document]:
    rows = connection.execute(text(
        "SELECT s.sequencename, s.data_type::text, s.last_value, "
        "  (SELECT t.relname || '.' || a.attname FROM pg_depend d "
        "     JOIN pg_class t ON t.oid = d.refobjid "
        "     JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid "
        "    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid "
        "      AND d.deptype IN ('a', 'i') LIMIT 1) "
        "FROM pg_sequences s JOIN pg_namespace n ON n.nspname = s.schemaname "
        "JOIN pg_class c ON c.relname = s.sequencename AND c.relnamespace = n.oid "
        "WHERE s.schemaname = :s ORDER BY s.sequencename"), {"s": schema})
    return [{"name": r[0], "type": r[1], "last_value": r[2], "owned_by": r[3]} for r in rows]


def _enums(connection: Connection, schema: str) -> dict[str, list[str]]:
    enums: dict[str, list[str]] = {}
    for name, label in connection.execute(text(
            "SELECT t.typname, e.enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid "
            "JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = :s "
            "ORDER BY t.typname, e.enumsortorder"), {"s": schema}):
        enums.setdefault(name, []).append(label)
    return enums


def _domains(connection: Connection, schema: str) -> dict[str, Document]:
    rows = connection.execute(text(
        "SELECT t.typname, format_type(t.typbasetype, t.typtypmod), "
        "ARRAY(SELECT pg_get_constraintdef(k.oid) FROM pg_constraint k "
        "      WHERE k.contypid = t.oid ORDER BY k.conname) "
        "FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
        "WHERE n.nspname = :s AND t.typtype = 'd' ORDER BY t.typname"), {"s": schema})
    return {r[0]: {"type": r[1], "checks": list(r[2])} for r in rows}


def _triggers(connection: Connection, schema: str, prefix: str) -> list[Document]:
    rows = connection.execute(text(
        "SELECT c.relname, g.tgname, pg_get_triggerdef(g.oid) FROM pg_trigger g "
        f"JOIN pg_class c ON c.oid = g.tgrelid {_IN_SCHEMA} AND NOT g.tgisinternal "
        "ORDER BY c.relname, g.tgname"), {"s": schema})
    return [{"table": r[0], "name": r[1], "definition": _unqualified(r[2], prefix)}
            for r in rows]


def _unqualified(definition: str, prefix: str) -> str:
    """`definition` without the "schema." (`prefix`) that pg_get_indexdef and
    pg_get_triggerdef put before the table name."""
    return definition.replace(f" {prefix}", " ")
