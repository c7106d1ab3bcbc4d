"""Helpers of the `pt scaffold` tests: scaffold a real source, apply both schema parts, copy
every table, and read PostgreSQL's catalog back."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import orjson
import yaml

from tests.migration.conftest import Db, pt, pt_migrate, summary


def scaffold(folder: Path, source: Db, *extra: str, target: Db | str | None = None,
             env: dict[str, str] | None = None) -> str:
    """Run pt scaffold into `folder`; its stdout."""
    folder.mkdir(exist_ok=True)
    target_args = [] if target is None else [
        "--target-url", target.url if isinstance(target, Db) else target]
    result = pt("scaffold", "--source-url", source.url, "-o",
                str(folder / "pulsaride-pipeline.yml"), *target_args, *extra, cwd=folder,
                env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def apply(folder: Path, target: Db, *args: str) -> subprocess.CompletedProcess[str]:
    """pt migrate schema ARGS against `target`."""
    return pt("migrate", "schema", *args, "--target-url", target.url, cwd=folder)


def pre_data(folder: Path, target: Db) -> None:
    """Apply target-schema.sql, asserting it worked."""
    result = apply(folder, target, "target-schema.sql")
    assert result.returncode == 0, result.stderr


def post_data(folder: Path, target: Db) -> dict[str, Any]:
    """Apply target-post-data.sql, asserting it worked; its JSON summary."""
    result = apply(folder, target, "--post-data", "target-post-data.sql", "--json")
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = orjson.loads(result.stdout)
    return document


def copy(folder: Path, transform: str, source: Db, target: Db) -> dict[str, Any]:
    """pt migrate run --json of one transform file; its summary."""
    return summary(pt_migrate(folder / transform, source, target, "--json"))


def transforms(folder: Path) -> dict[str, Any]:
    """Every transform file of the scaffold, by target table."""
    found = {}
    for path in sorted(folder.glob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        found[document["target_table"]] = {**document, "file": path.name}
    return found


def load(path: Path) -> Any:
    """A YAML file."""
    return yaml.safe_load(path.read_text())


def column_types(db: Db, table: str, quoted: bool = False) -> dict[str, str]:
    """PostgreSQL's own spelling of each column type of `table` (name as a literal)."""
    name = '"' + table.replace('"', '""') + '"' if quoted else table
    return dict(db.rows(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "WHERE a.attrelid = CAST(:t AS regclass) AND a.attnum > 0 AND NOT a.attisdropped",
        t=name))


def foreign_keys(db: Db) -> dict[str, tuple[str, str, bool, str, str]]:
    """name -> (child, parent, validated, ON DELETE action, ON UPDATE action) as
    pg_constraint codes them (a no action, r restrict, c cascade, n set null, d set default)."""
    return {row[0]: tuple(row[1:]) for row in db.rows(
        "SELECT conname, conrelid::regclass::text, confrelid::regclass::text, convalidated, "
        "confdeltype, confupdtype FROM pg_constraint WHERE contype = 'f'")}


def indexes(db: Db) -> set[tuple[str, str]]:
    """(table, index) of the user's tables."""
    return set(db.rows("SELECT tablename, indexname FROM pg_indexes WHERE schemaname = "
                       "'public' AND tablename NOT LIKE 'pulsaride%'"))
