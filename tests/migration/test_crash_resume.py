"""Crash and resume: `pt migrate run` killed with SIGKILL mid-table, at several points, then run
again, leaves exactly the source rows in the target — none twice, none missing — and parked
rows exactly once; the registry ends DONE with rows_read == the source's rows."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.migration.conftest import (
    Db,
    clean_env,
    create_table,
    migrate_cmd,
    new_pg_database,
    pt_migrate,
    summary,
    wait_for,
    write_transform,
)

ROWS, BATCH, PARENTS = 5000, 100, 100
ORPHAN_EVERY = 97  # child ids divisible by this point at a parent that never comes


def _source(db: Db) -> None:
    create_table(db, "PARENTS", [("ID", "int")], primary_key=["ID"])
    db.insert("PARENTS", [(i,) for i in range(1, PARENTS + 1)])
    create_table(db, "EVENTS", [("ID", "int"), ("PARENT_ID", "int"), ("KIND", "text"),
                                ("AMOUNT", "num"), ("DAY", "date")], primary_key=["ID"])
    db.insert("EVENTS", [
        (i, 10_000 + i if i % ORPHAN_EVERY == 0 else (i % PARENTS) + 1, f"kind {i % 7}",
         i / 4, f"2024-{(i % 12) + 1:02d}-{(i % 28) + 1:02d}") for i in range(1, ROWS + 1)])


def _target(db: Db) -> None:
    create_table(db, "parents", [("id", "int")], primary_key=["id"])
    db.insert("parents", [(i,) for i in range(1, PARENTS + 1)])
    # No primary key on purpose: a duplicate would be stored, not refused, so it would show.
    create_table(db, "events", [("id", "int"), ("parent_id", "int"), ("kind", "text"),
                                ("amount", "num"), ("day", "date")])


def _transform(folder: Path) -> Path:
    return write_transform(folder, {
        "name": "events", "sources": [{"name": "events", "table": "EVENTS", "alias": "e"}],
        "fields": [{"name": "id", "source": "e.ID"},
                   {"name": "parent_id", "source": "e.PARENT_ID"},
                   {"name": "kind", "source": "e.KIND", "expression": "upper(?)"},
                   {"name": "amount", "source": "e.AMOUNT"},
                   {"name": "day", "source": "e.DAY", "expression": "to_date(?)"}],
        "target_table": "events",
        "depends_on": [{"table": "parents", "key": "id", "via": "e.PARENT_ID"}]})


def _rows_read(target: Db) -> int:
    entry = target.registry("events")
    return int(entry["rows_read"]) if entry else 0


def _kill_when(target: Db, command: list[str], folder: Path,
               ready: Callable[[], bool]) -> dict[str, Any]:
    """Start the copy, SIGKILL it as soon as `ready()`, and return its registry row."""
    process = subprocess.Popen(command, cwd=folder, env=clean_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: ready() or process.poll() is not None, what="the kill point")
        assert process.poll() is None, "the copy ended before the kill point"
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    entry = target.registry("events")
    assert entry is not None
    return entry


def _check_consistent_after_kill(target: Db, entry: dict[str, Any]) -> None:
    """Whatever committed, committed whole: the rows of exactly the counted batches."""
    assert entry["status"] == "RUNNING"
    assert entry["rows_read"] % BATCH == 0
    parked = target.count("pulsaride_deferred")
    assert (entry["rows_written"], entry["rows_deferred"]) == (target.count("events"), parked)
    assert entry["rows_read"] == entry["rows_written"] + entry["rows_deferred"]
    assert target.scalar("SELECT max(id) FROM events") <= entry["rows_read"]
    assert target.scalar("SELECT count(DISTINCT id) FROM events") == target.count("events")


def _check_exact(source: Db, target: Db) -> None:
    expected = [(i, p, f"KIND {i % 7}", i / 4) for i, p in
                source.rows('SELECT "ID", "PARENT_ID" FROM "EVENTS"') if p <= PARENTS]
    got = [(i, p, k, float(a)) for i, p, k, a in
           target.rows("SELECT id, parent_id, kind, amount FROM events")]
    assert len(got) == len(expected)
    assert got == expected  # sorted tuples: none twice, none missing, values intact
    orphans = ROWS // ORPHAN_EVERY
    assert target.rows("SELECT CAST(key_value AS integer) FROM pulsaride_deferred") == [
        (10_000 + i,) for i in range(ORPHAN_EVERY, ROWS + 1, ORPHAN_EVERY)]
    entry = target.registry("events")
    assert entry is not None
    assert (entry["status"], entry["rows_read"], entry["rows_written"],
            entry["rows_deferred"]) == ("DONE", ROWS, ROWS - orphans, orphans)


@pytest.fixture(params=["sqlite", "postgresql"])
def crash_target(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        db = Db("sqlite", f"sqlite:///{tmp_path / 'target.db'}")
        yield db
        db.dispose()
        return
    db, drop = new_pg_database()
    try:
        yield db
    finally:
        drop()


@pytest.mark.slow
def test_killed_at_several_points_then_resumed_gives_exactly_the_source_rows(
        crash_target: Db, sqlite_db: Callable[[str], Db], tmp_path: Path) -> None:
    target = crash_target
    source = sqlite_db("source")
    _source(source)
    _target(target)
    path = _transform(tmp_path)
    command = migrate_cmd(path, source, target, "--json", "--batch-size", str(BATCH))

    # Killed as soon as it starts: before or around its first batch.
    _kill_when(target, command, tmp_path, lambda: target.registry("events") is not None)
    progress = [_rows_read(target)]
    # Then after 3, 11 and 22 of the 50 batches committed (the kill lands somewhere in a later
    # batch; the margin keeps the copy from finishing first on a busy machine).
    for batches in (3, 11, 22):
        entry = _kill_when(target, command, tmp_path,
                           lambda n=batches: _rows_read(target) >= n * BATCH)
        _check_consistent_after_kill(target, entry)
        progress.append(entry["rows_read"])
    assert progress == sorted(progress)  # each rerun went on from where the last one stopped
    assert progress[-1] >= 22 * BATCH

    result = summary(pt_migrate(path, source, target, "--json", "--batch-size", str(BATCH)))
    assert result["resumed_from"] is not None
    assert result["resumed_from"][0] >= 22 * BATCH
    assert result["rows_read"] == ROWS  # counted across the four processes
    _check_exact(source, target)
