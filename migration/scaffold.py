"""`pt scaffold`: a reviewed starting point from a source schema.

From the source's tables, primary keys and foreign keys it writes one transform file per
table, a PostgreSQL target schema, and a pipeline whose `needs:` follow the foreign keys
(parents before children). Foreign keys that a `needs:` could not express — a table referring
to itself, or tables referring to each other in a cycle — become `depends_on:` with DEFER on
the child's transform instead: row-level ordering where table-level ordering is impossible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.engine import URL

from pulsaride.engine.errors import BadInputError

from .transform import fold
from .typemap import postgres_type


@dataclass
class ColumnInfo:
    """A source column."""

    name: str
    declared: str
    nullable: bool
    pg_type: str = ""
    note: str = ""


@dataclass
class ForeignKey:
    """child(columns) -> parent(columns)."""

    child: str
    columns: list[str]
    parent: str
    parent_columns: list[str]


@dataclass
class TableInfo:
    """A source table with what scaffolding needs."""

    name: str
    columns: list[ColumnInfo]
    primary_key: list[str]
    foreign_keys: list[ForeignKey] = field(default_factory=list)

    @property
    def target(self) -> str:
        """The target table name."""
        return fold(self.name)


@dataclass
class Scaffold:
    """What `pt scaffold` writes, as text per file name."""

    files: dict[str, str]
    tables: list[str]
    deferred_edges: list[str]
    notes: list[str]


def read_schema(engine: Engine, tables: Sequence[str] | None,
                schema: str | None) -> list[TableInfo]:
    """Reflect the tables (all, or `tables`) of the source."""
    inspector = inspect(engine)
    names = inspector.get_table_names(schema=schema)
    if tables:
        by_lower = {n.lower(): n for n in names}
        missing = [t for t in tables if t.lower() not in by_lower]
        if missing:
            raise BadInputError(f"no table {', '.join(missing)} in the source "
                                f"(tables: {', '.join(names)})")
        names = [by_lower[t.lower()] for t in tables]
    names = [n for n in names if not n.lower().startswith(("pulsaride_", "sqlite_"))]
    with engine.connect() as connection:
        return [_table(connection, inspector, name, schema) for name in names]


def _table(connection: Connection, inspector: Any, name: str, schema: str | None) -> TableInfo:
    declared = _declared_types(connection, name) if connection.dialect.name == "sqlite" else {}
    columns = []
    for col in inspector.get_columns(name, schema=schema):
        spelled = declared.get(col["name"]) or _compile(col["type"], connection)
        mapped = postgres_type(spelled)
        if connection.dialect.name == "oracle" and spelled.strip().upper() == "DATE":
            mapped = type(mapped)("timestamp(0)", "Oracle DATE holds a time of day")
        columns.append(ColumnInfo(col["name"], spelled, bool(col.get("nullable", True)),
                                  mapped.pg_type, mapped.note))
    key = inspector.get_pk_constraint(name, schema=schema).get("constrained_columns") or []
    keys = [ForeignKey(name, fk["constrained_columns"], fk["referred_table"],
                       fk["referred_columns"])
            for fk in inspector.get_foreign_keys(name, schema=schema)
            if fk.get("referred_table") and fk.get("constrained_columns")]
    return TableInfo(name=name, columns=columns, primary_key=list(key), foreign_keys=keys)


def _declared_types(connection: Connection, table: str) -> dict[str, str]:
    rows = connection.execute(text(f'PRAGMA table_info("{table}")')).all()
    return {row[1]: row[2] for row in rows}


def _compile(type_: Any, connection: Connection) -> str:
    try:
        return str(type_.compile(dialect=connection.dialect))
    except Exception:  # a reflected type the dialect cannot print back
        return str(type_)


# ---- what to write -----------------------------------------------------------------------------


def scaffold(tables: list[TableInfo], source_url: URL, target_url: str,
             pipeline_name: str) -> Scaffold:
    """The transform files, target schema and pipeline for `tables`."""
    known = {t.name for t in tables}
    cyclic = _cyclic_edges(tables)
    files: dict[str, str] = {}
    notes: list[str] = []
    for table in tables:
        files[f"{table.target}.yaml"] = _transform_file(table)
        notes += [f"{table.name}.{c.name}: {c.note}" for c in table.columns if c.note]
        notes += [f"{table.name}({', '.join(fk.columns)}) -> {fk.parent}: a multi-column "
                  "foreign key cannot be a depends_on; orphans will fail their batch"
                  for fk in table.foreign_keys if len(fk.columns) > 1]
        if not table.primary_key:
            notes.append(f"{table.name}: no primary key; set source_key in {table.target}.yaml")
    files["target-schema.sql"] = _schema_file(tables, known, cyclic,
                                              sqlite=target_url.startswith("sqlite"))
    files[pipeline_name] = _pipeline_file(tables, known, cyclic, source_url, target_url)
    deferred = [f"{fk.child}({', '.join(fk.columns)}) -> {fk.parent}" for fk in cyclic]
    return Scaffold(files=files, tables=[t.name for t in tables], deferred_edges=deferred,
                    notes=notes)


def _cyclic_edges(tables: list[TableInfo]) -> list[ForeignKey]:
    """Foreign keys that close a cycle: the parent reaches the child again (or is the child)."""
    graph = {t.name: {fk.parent for fk in t.foreign_keys} for t in tables}
    reach = {name: _reachable(graph, name) for name in graph}
    return [fk for t in tables for fk in t.foreign_keys
            if fk.parent in graph and (fk.parent == fk.child or fk.child in reach[fk.parent])]


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every table `start` refers to, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for parent in graph.get(todo.pop(), ()):
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return seen


def _transform_file(table: TableInfo) -> str:
    alias = "s"
    document: dict[str, Any] = {
        "name": table.target,
        "version": "1.0",
        "source_url": "${PT_SOURCE_URL}",
        "target_url": "${PT_TARGET_URL}",
        "sources": [{"name": table.target, "table": table.name, "alias": alias}],
        "fields": [{"name": fold(c.name), "source": f"{alias}.{c.name}",
                    "target_type": c.pg_type} for c in table.columns],
        "target_table": table.target,
    }
    # Every single-column foreign key gets a depends_on: with needs: ordering the tables, it
    # only catches orphans (parked instead of failing the batch); in a cycle it is the ordering.
    deferred = [fk for fk in table.foreign_keys if len(fk.columns) == 1]
    if deferred:
        document["depends_on"] = [
            {"table": fold(fk.parent), "key": fold(fk.parent_columns[0]),
             "via": f"{alias}.{fk.columns[0]}", "on_missing": "DEFER"} for fk in deferred]
    if table.primary_key:
        document["expect"] = {"sample_pct": 2, "key_columns": [fold(k) for k in
                                                               table.primary_key]}
    header = (f"# {table.name} -> {table.target} (generated by pt scaffold; review it).\n"
              "# Expressions, filters and reject_policy can be added per field; see README.\n")
    return header + yaml.safe_dump(document, sort_keys=False, width=100)


def _schema_file(tables: list[TableInfo], known: set[str], cyclic: list[ForeignKey],
                 sqlite: bool) -> str:
    """CREATE TABLEs, parents before children. A foreign key in a cycle between tables cannot
    be inline on PostgreSQL (its parent does not exist yet): it is added after every table,
    by name, idempotently. SQLite only checks foreign keys when rows are written, and cannot
    add them later: there they stay inline."""
    later = [] if sqlite else [fk for fk in cyclic if fk.parent != fk.child]
    parts = ["-- Target schema generated by pt scaffold from the source's tables; review it.\n"]
    for table in _parents_first(tables, cyclic):
        lines = [f"    {fold(c.name)} {c.pg_type}{'' if c.nullable else ' NOT NULL'}"
                 for c in table.columns]
        if table.primary_key:
            lines.append(f"    PRIMARY KEY ({', '.join(fold(k) for k in table.primary_key)})")
        for fk in table.foreign_keys:
            if fk.parent in known and fk not in later:
                lines.append(f"    FOREIGN KEY ({', '.join(fold(c) for c in fk.columns)}) "
                             f"REFERENCES {fold(fk.parent)} "
                             f"({', '.join(fold(c) for c in fk.parent_columns)})")
        parts.append(f"CREATE TABLE IF NOT EXISTS {table.target} (\n" + ",\n".join(lines)
                     + "\n);\n")
    for fk in later:
        child = fold(fk.child)
        name = f"{child}_{'_'.join(fold(c) for c in fk.columns)}_fkey"
        parts.append(f"-- {fk.child} and {fk.parent} refer to each other: this key comes last.\n"
                     f"ALTER TABLE {child} DROP CONSTRAINT IF EXISTS {name};\n"
                     f"ALTER TABLE {child} ADD CONSTRAINT {name} "
                     f"FOREIGN KEY ({', '.join(fold(c) for c in fk.columns)}) "
                     f"REFERENCES {fold(fk.parent)} "
                     f"({', '.join(fold(c) for c in fk.parent_columns)});\n")
    return "\n".join(parts)


def _parents_first(tables: list[TableInfo], cyclic: list[ForeignKey]) -> list[TableInfo]:
    """`tables` ordered so every parent comes before its children (cycles aside)."""
    by_name = {t.name: t for t in tables}
    placed: dict[str, TableInfo] = {}

    def place(table: TableInfo, visiting: set[str]) -> None:
        if table.name in placed or table.name in visiting:
            return
        visiting.add(table.name)
        for fk in table.foreign_keys:
            if fk.parent in by_name and fk not in cyclic:
                place(by_name[fk.parent], visiting)
        placed[table.name] = table

    for table in tables:
        place(table, set())
    return list(placed.values())


def _pipeline_file(tables: list[TableInfo], known: set[str], cyclic: list[ForeignKey],
                   source_url: URL, target_url: str) -> str:
    deferred = {(fk.child, fk.parent) for fk in cyclic}
    jobs: dict[str, Any] = {
        "create-schema": {"stage": "preflight", "command": "pt migrate schema target-schema.sql",
                          "on_failure": "abort"}}
    for table in tables:
        parents = sorted({fk.parent for fk in table.foreign_keys
                          if fk.parent in known and (table.name, fk.parent) not in deferred})
        job: dict[str, Any] = {"stage": "migrate",
                               "command": f"pt migrate run {table.target}.yaml"}
        if parents:
            job["needs"] = [f"migrate-{fold(p)}" for p in parents]
        jobs[f"migrate-{table.target}"] = job
    migrate_jobs = [f"migrate-{t.target}" for t in tables]
    jobs["report-deferred"] = {"stage": "validate", "command": "pt migrate deferred",
                               "needs": migrate_jobs}
    jobs["cutover-gate"] = {"stage": "cutover", "command": "echo cutover approved",
                            "needs": ["report-deferred"], "when": "manual",
                            "on_failure": "abort"}
    document = {
        "version": "1.0",
        "stages": ["preflight", "migrate", "validate", "cutover"],
        "variables": {
            "PT_SOURCE_URL": source_url.set(password=None).render_as_string(hide_password=False),
            "PT_TARGET_URL": target_url},
        "jobs": jobs,
    }
    header = ("# Migration pipeline generated by pt scaffold from the source schema; review it.\n"
              "# needs: follow the foreign keys (parents first); foreign keys in cycles and\n"
              "# self-references are depends_on: DEFER in the transform files instead.\n"
              "# Passwords come from PT_SRC_PASS / PT_TGT_PASS, never from this file.\n")
    return header + yaml.safe_dump(document, sort_keys=False, width=100)


def write_files(folder: Path, result: Scaffold, force: bool) -> list[Path]:
    """Write the scaffold; refuse to overwrite existing files unless `force`."""
    targets = [folder / name for name in result.files]
    existing = [str(p) for p in targets if p.exists()]
    if existing and not force:
        raise BadInputError(f"refusing to overwrite {', '.join(existing)} (use --force)")
    folder.mkdir(parents=True, exist_ok=True)
    for path in targets:
        partial = path.with_name(path.name + ".partial")
        partial.write_text(result.files[path.name])
        partial.replace(path)
    return targets
