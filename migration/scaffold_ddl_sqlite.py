"""The SQLite flavour of the target schema (`--target-url sqlite:///...`).

SQLite cannot add constraints to a table later, so they are inline: primary key (an
identity becomes INTEGER PRIMARY KEY, SQLite's rowid), NOT NULL, defaults, unique and check
constraints (enums as text + CHECK; SETs stay their 'a,b' text), and foreign keys with their
actions — except those that close a cycle or refer to their own table: SQLite checks keys
row by row and pt keeps enforcement on, so such a key could refuse rows whose parent comes
later. Post-data is the secondary indexes only. Names are quoted by SQLAlchemy's SQLite
preparer.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import sqlite

from .scaffold_ddl import comment
from .scaffold_plan import ColumnPlan, ForeignKeyPlan, Plan, TablePlan

_PREPARER: Any = sqlite.dialect().identifier_preparer
_TYPES = {"bytea": "BLOB", "jsonb": "TEXT", "text[]": "TEXT", "timestamptz": "TIMESTAMP",
          "uuid": "TEXT", "interval": "TEXT", "geometry": "BLOB", "timetz": "TEXT"}


def quote(name: str) -> str:
    """`name` as SQLite DDL spells it."""
    return str(_PREPARER.quote(name))


def sqlite_type(pg_type: str) -> str:
    """The SQLite declaration of a column planned as `pg_type` (with the affinity that keeps
    its values as they are: JSON text must not turn into numbers, blobs stay blobs)."""
    if pg_type.startswith(("bit(", "varbit")):
        return "TEXT"
    if pg_type.startswith("timestamptz"):
        return "TIMESTAMP"
    return _TYPES.get(pg_type, pg_type)


def pre_data(plan: Plan, heading: str) -> str:
    """target-schema.sql for a SQLite target."""
    parts = [comment(heading), comment("SQLite flavour: constraints and foreign keys are "
                                       "inline (SQLite cannot add them later)."), ""]
    parts += [_create_table(table) for table in plan.tables]
    return "\n".join(parts) + "\n"


def _create_table(table: TablePlan) -> str:
    lines: list[str] = []
    sole_identity = _rowid(table)
    for col in table.columns:
        lines += [f"    {comment(note)}" for note in col.choice.notes]
        lines.append(f"    {_column(col, col.name == sole_identity)},")
    if table.primary_key and sole_identity is None:
        keys = ", ".join(quote(k) for k in table.primary_key)
        lines.append(f"    CONSTRAINT {quote(table.primary_key_name)} PRIMARY KEY ({keys}),")
    for index in table.indexes:
        if index.constraint:
            columns = ", ".join(quote(c) for c in index.columns)
            lines.append(f"    CONSTRAINT {quote(index.name)} UNIQUE ({columns}),")
    lines += [f"    CONSTRAINT {quote(c.name)} CHECK ({c.sql})," for c in table.checks]
    for fk in table.foreign_keys:
        if fk.closes_cycle:
            lines.append(f"    {comment(_omitted(table, fk))}")
        else:
            lines.append(f"    {_foreign_key(fk)},")
    _drop_last_comma(lines)
    head = comment(f"{table.source.name} -> {table.name}")
    return f"{head}\nCREATE TABLE IF NOT EXISTS {quote(table.name)} (\n" + \
        "\n".join(lines) + "\n);\n"


def _rowid(table: TablePlan) -> str | None:
    """The identity column that can be SQLite's INTEGER PRIMARY KEY (the sole key column)."""
    identities = [c.name for c in table.columns if c.choice.identity]
    if len(identities) == 1 and table.primary_key == identities:
        return identities[0]
    return None


def _column(col: ColumnPlan, rowid: bool) -> str:
    if rowid:
        return f"{quote(col.name)} INTEGER PRIMARY KEY"
    text = f"{quote(col.name)} {sqlite_type(col.choice.pg_type)}"
    if not col.choice.nullable:
        text += " NOT NULL"
    if col.default.sql is not None:
        text += f" DEFAULT {col.default.sql}"
    return text


def _foreign_key(fk: ForeignKeyPlan) -> str:
    columns = ", ".join(quote(c) for c in fk.columns)
    parents = ", ".join(quote(c) for c in fk.parent_columns)
    actions = "".join(f" ON {event} {action}" for event, action in
                      (("DELETE", fk.on_delete), ("UPDATE", fk.on_update)) if action)
    return (f"CONSTRAINT {quote(fk.name)} FOREIGN KEY ({columns}) REFERENCES "
            f"{quote(fk.parent)} ({parents}){actions}")


def _omitted(table: TablePlan, fk: ForeignKeyPlan) -> str:
    what = "refers to its own table" if fk.parent == table.name else "closes a cycle"
    return (f"foreign key {fk.name} ({', '.join(fk.columns)}) -> {fk.parent} omitted: it "
            f"{what}, and SQLite checks keys row by row during the copy")


def _drop_last_comma(lines: list[str]) -> None:
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].endswith(",") and not lines[index].lstrip().startswith("--"):
            lines[index] = lines[index][:-1]
            return


def post_data(plan: Plan, heading: str) -> str:
    """target-post-data.sql for a SQLite target: the secondary indexes."""
    parts = [comment(heading), comment("SQLite flavour: secondary indexes (constraints are "
                                       "inline in target-schema.sql)."), ""]
    for table in plan.tables:
        for index in table.indexes:
            if index.constraint:
                continue
            columns = ", ".join(quote(c) for c in index.columns)
            unique = "UNIQUE " if index.unique else ""
            parts.append(f"CREATE {unique}INDEX IF NOT EXISTS {quote(index.name)} ON "
                         f"{quote(table.name)} ({columns});")
    return "\n".join(parts) + "\n"
