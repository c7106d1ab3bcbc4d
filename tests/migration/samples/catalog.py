"""What a database's catalog says it holds, in SampleInfo's terms, for every Db kind.

`foreign_keys(db)` reads the declared foreign keys with their actions (SQLAlchemy's reflection
loses MariaDB's RESTRICT, so each dialect's own catalog is read); `objects(db)` lists views,
triggers, routines and full-text indexes. Both read the current database / schema only.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from tests.migration.conftest import Db
from tests.migration.samples.info import ForeignKey

# Declared actions as SampleInfo spells them: None for NO ACTION (the default).
_ACTIONS = {"a": None, "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT",
            "NO ACTION": None}

_FOREIGN_KEYS = {
    "sqlite": """SELECT m.name, f.id, f.seq, f."from", f."table", f."to", f.on_delete,
                        f.on_update
                   FROM sqlite_master m JOIN pragma_foreign_key_list(m.name) f
                  WHERE m.type = 'table' ORDER BY m.name, f.id, f.seq""",
    "mariadb": """SELECT k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION, k.COLUMN_NAME,
                         k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME, r.DELETE_RULE,
                         r.UPDATE_RULE
                    FROM information_schema.KEY_COLUMN_USAGE k
                    JOIN information_schema.REFERENTIAL_CONSTRAINTS r
                      ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA
                     AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME AND r.TABLE_NAME = k.TABLE_NAME
                   WHERE k.TABLE_SCHEMA = DATABASE()
                   ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION""",
    "postgresql": """SELECT c.conrelid::regclass::text, c.conname, k.pos, a.attname,
                            c.confrelid::regclass::text, fa.attname, c.confdeltype::text,
                            c.confupdtype::text
                       FROM pg_constraint c
                       JOIN pg_namespace n ON n.oid = c.connamespace
                       CROSS JOIN LATERAL unnest(c.conkey, c.confkey)
                            WITH ORDINALITY AS k(num, fnum, pos)
                       JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.num
                       JOIN pg_attribute fa ON fa.attrelid = c.confrelid AND fa.attnum = k.fnum
                      WHERE c.contype = 'f' AND n.nspname = current_schema()
                      ORDER BY 1, 2, 3""",
}


def foreign_keys(db: Db) -> set[ForeignKey]:
    """Every foreign key of the database (PostgreSQL: of the current schema). PostgreSQL
    table names come back as regclass text, so quoted when they need quotes."""
    grouped: dict[tuple[Any, Any], list[Any]] = {}
    with db.engine.connect() as connection:
        for row in connection.execute(text(_FOREIGN_KEYS[db.kind])):
            grouped.setdefault((row[0], row[1]), []).append(row)
    found = set()
    for (table, _), rows in grouped.items():
        first = rows[0]
        found.add(ForeignKey(_unquote(table), tuple(r[3] for r in rows), _unquote(first[4]),
                             tuple(r[5] for r in rows), on_delete=_action(first[6]),
                             on_update=_action(first[7])))
    return found


def _unquote(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name


def _action(value: str) -> str | None:
    return _ACTIONS.get(value, value)


_OBJECTS = {
    "sqlite": {
        "views": "SELECT name FROM sqlite_master WHERE type = 'view'",
        "triggers": "SELECT name FROM sqlite_master WHERE type = 'trigger'",
    },
    "mariadb": {
        "views": "SELECT TABLE_NAME FROM information_schema.VIEWS "
                 "WHERE TABLE_SCHEMA = DATABASE()",
        "triggers": "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS "
                    "WHERE TRIGGER_SCHEMA = DATABASE()",
        "routines": "SELECT ROUTINE_NAME FROM information_schema.ROUTINES "
                    "WHERE ROUTINE_SCHEMA = DATABASE()",
        "fulltext_indexes": "SELECT DISTINCT CONCAT(TABLE_NAME, '.', INDEX_NAME) "
                            "FROM information_schema.STATISTICS "
                            "WHERE TABLE_SCHEMA = DATABASE() AND INDEX_TYPE = 'FULLTEXT'",
    },
    "postgresql": {
        "views": "SELECT viewname FROM pg_views WHERE schemaname = current_schema()",
        "triggers": "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE NOT t.tgisinternal AND n.nspname = current_schema()",
        "routines": "SELECT p.proname FROM pg_proc p "
                    "JOIN pg_namespace n ON n.oid = p.pronamespace "
                    "WHERE n.nspname = current_schema()",
        "fulltext_indexes": "SELECT tablename || '.' || indexname FROM pg_indexes "
                            "WHERE schemaname = current_schema() "
                            "AND indexdef LIKE '%USING gin (to_tsvector%'",
    },
}


def objects(db: Db) -> dict[str, set[str]]:
    """The views, triggers, routines and full-text indexes ("table.index") of `db`."""
    found: dict[str, set[str]] = {k: set() for k in ("views", "triggers", "routines",
                                                      "fulltext_indexes")}
    with db.engine.connect() as connection:
        for what, query in _OBJECTS[db.kind].items():
            found[what] = {r[0] for r in connection.execute(text(query))}
    return found
