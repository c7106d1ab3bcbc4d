"""Property: for a random small table copied intact and ONE random corruption of the copy — a
changed value in a random column, a deleted row, or an extra row — `validate_hash` reports
exactly the corrupted key (and, for a changed value, exactly that column), whatever the
number of buckets. With no corruption it reports nothing.

In-process calls into pulsaride.migration.validation with a SQLite source file and a SQLite
target file (the PostgreSQL path of the same code is proven by tests/migration/
test_validate.py); each example builds both files from scratch.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pulsaride.migration.transform import load_transform
from pulsaride.migration.validation import Sides, validate_hash

from .strategies import examples

SETTINGS = settings(max_examples=examples(150), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
# SQLite files on tmpfs: creating pt's tables syncs the disk many times per example.
SCRATCH = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None

KINDS = {"INTEGER": st.integers(-(2**62), 2**62),
         "TEXT": st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8),
         "REAL": st.floats(allow_nan=False, allow_infinity=False, width=32)}


@dataclass
class Table:
    columns: list[tuple[str, str]]  # (name, type), the key `id` first
    rows: list[list[Any]]


@st.composite
def tables(draw: st.DrawFn) -> Table:
    kinds = draw(st.lists(st.sampled_from(sorted(KINDS)), min_size=1, max_size=4))
    columns = [("id", "INTEGER")] + [(f"c{i}", kind) for i, kind in enumerate(kinds)]
    keys = draw(st.lists(st.integers(-1000, 1000), min_size=1, max_size=25, unique=True))
    rows = [[key] + [draw(st.none() | KINDS[kind]) for kind in kinds] for key in keys]
    return Table(columns, rows)


@dataclass
class Corruption:
    kind: str  # change | delete | extra | none
    key: int | None = None
    column: str | None = None
    value: Any = None


@st.composite
def corruptions(draw: st.DrawFn, table: Table) -> Corruption:
    kind = draw(st.sampled_from(["change", "delete", "extra", "none"]))
    if kind == "extra":
        taken = {row[0] for row in table.rows}
        key = draw(st.integers(-2000, 2000).filter(lambda k: k not in taken))
        return Corruption("extra", key, value=[key] + [None] * (len(table.columns) - 1))
    if kind == "none":
        return Corruption("none")
    row = draw(st.sampled_from(table.rows))
    if kind == "delete":
        return Corruption("delete", row[0])
    index = draw(st.integers(1, len(table.columns) - 1))
    name, type_ = table.columns[index]
    old = row[index]
    values = KINDS[type_] if old is None else st.none() | KINDS[type_].filter(
        lambda v: _differs(old, v))
    new = draw(values)
    return Corruption("change", row[0], name, new)


def _differs(old: Any, new: Any) -> bool:
    """Whether the stored value changes (SQLite keeps -0.0 as 0.0, and 1.0 == 1)."""
    if old is None or new is None:
        return (old is None) != (new is None)
    return bool(old != new)


def _write(path: Path, table: Table) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db:
        spelled = ", ".join(f"{n} {t}" for n, t in table.columns)
        db.execute(f"CREATE TABLE items ({spelled}, PRIMARY KEY (id))")
        marks = ", ".join("?" * len(table.columns))
        db.executemany(f"INSERT INTO items VALUES ({marks})", table.rows)
        db.commit()


def _corrupt(path: Path, table: Table, corruption: Corruption) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db:
        if corruption.kind == "change":
            db.execute(f"UPDATE items SET {corruption.column} = ? WHERE id = ?",
                       (corruption.value, corruption.key))
        elif corruption.kind == "delete":
            db.execute("DELETE FROM items WHERE id = ?", (corruption.key,))
        elif corruption.kind == "extra":
            marks = ", ".join("?" * len(table.columns))
            db.execute(f"INSERT INTO items VALUES ({marks})", corruption.value)
        db.commit()


@pytest.mark.slow
@SETTINGS
@given(data=st.data(), buckets=st.integers(1, 64))
def test_hash_finds_exactly_the_corrupted_key(data: st.DataObject, buckets: int) -> None:
    table = data.draw(tables(), label="table")
    corruption = data.draw(corruptions(table), label="corruption")
    event(corruption.kind)
    with tempfile.TemporaryDirectory(prefix="pt-hash-", dir=SCRATCH) as work:
        folder = Path(work)
        source, target = folder / "source.db", folder / "target.db"
        _write(source, table)
        _write(target, table)
        _corrupt(target, table, corruption)
        path = folder / "items.yaml"
        path.write_text(yaml.safe_dump({
            "name": "items", "source_url": f"sqlite:///{source}",
            "target_url": f"sqlite:///{target}",
            "sources": [{"name": "items", "table": "items"}]}))
        sides = Sides.open(load_transform(path), None, None)
        try:
            result = validate_hash(sides, buckets)
        finally:
            sides.close()
    found = [(m.key, m.field, m.kind) for m in result.mismatches]
    if corruption.kind == "none":
        assert found == []
        assert result.status == "PASS"
        return
    assert result.status == "FAIL"
    expected_kind = {"change": "value", "delete": "missing", "extra": "extra"}[corruption.kind]
    field = corruption.column if corruption.kind == "change" else "(row)"
    assert found == [([str(corruption.key)], field, expected_kind)]
    assert result.details["differing_buckets"] == 1
