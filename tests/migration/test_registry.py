"""RunRegistry (`pulsaride_run_registry` in the target): a completed copy is not run twice unless
forced (then exactly once more); an interrupted copy resumes after its last committed batch,
but not with a changed transform file; the registry row says what happened."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from pulsaride.migration.migrate import MigrateRequest, Progress, migrate
from pulsaride.migration.transform import load_transform
from tests.migration.conftest import (
    Db,
    clean_env,
    create_table,
    migrate_cmd,
    pt_migrate,
    summary,
    wait_for,
    write_transform,
)

ROWS = 250


def _setup(source: Db, target: Db, tmp_path: Path, rows: int = ROWS) -> Path:
    create_table(source, "ACCOUNTS", [("ID", "int"), ("OWNER", "text"), ("BALANCE", "num")],
                 primary_key=["ID"])
    source.insert("ACCOUNTS", [(i, f"owner {i}", i * 1.25) for i in range(1, rows + 1)])
    create_table(target, "accounts", [("id", "int"), ("owner", "text"), ("balance", "num")],
                 primary_key=["id"])
    return write_transform(tmp_path, {
        "name": "accounts", "version": "1.0",
        "sources": [{"name": "accounts", "table": "ACCOUNTS", "alias": "a"}],
        "fields": [{"name": "id", "source": "a.ID"}, {"name": "owner", "source": "a.OWNER"},
                   {"name": "balance", "source": "a.BALANCE"}],
        "options": {"batch_size": 100}})


def _target_rows(target: Db) -> list[tuple[Any, ...]]:
    return [(i, o, Decimal(str(b))) for i, o, b in
            target.rows("SELECT id, owner, balance FROM accounts")]


def _source_rows(source: Db) -> list[tuple[Any, ...]]:
    return [(i, o, Decimal(str(b))) for i, o, b in
            source.rows('SELECT "ID", "OWNER", "BALANCE" FROM "ACCOUNTS"')]


class Interrupted(Exception):
    """Raised from the progress callback: the copy stops as if the process had died."""


def _interrupt_after(batches: int) -> Callable[[Progress], None]:
    seen = {"calls": 0}

    def on_progress(progress: Progress) -> None:
        if progress.status == "running" and progress.read > 0:
            seen["calls"] += 1
            if seen["calls"] >= batches:
                raise Interrupted

    return on_progress


def test_a_completed_copy_is_not_run_twice(pg: Db, sqlite_db: Callable[[str], Db],
                                           tmp_path: Path) -> None:
    source = sqlite_db("source")
    path = _setup(source, pg, tmp_path)
    first = summary(pt_migrate(path, source, pg, "--json"))
    assert (first["status"], first["rows_read"], first["rows_written"]) == ("done", ROWS, ROWS)
    rows_before = _target_rows(pg)
    registry_before = pg.registry("accounts")

    again = pt_migrate(path, source, pg)  # as a person runs it: text summary
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == (f"accounts: already done ({ROWS} rows written earlier); "
                                    "nothing written. Use --force to copy it again.")
    as_json = summary(pt_migrate(path, source, pg, "--json"))
    assert as_json["status"] == "already done"
    assert as_json["rows_written"] == ROWS
    assert _target_rows(pg) == rows_before
    assert pg.registry("accounts") == registry_before  # not even its times changed

    # Even a changed source does not make it copy again: the registry says DONE.
    source.execute('DELETE FROM "ACCOUNTS" WHERE "ID" <= 10')
    assert summary(pt_migrate(path, source, pg, "--json"))["status"] == "already done"
    assert _target_rows(pg) == rows_before


def test_force_copies_again_exactly_once(pg: Db, sqlite_db: Callable[[str], Db],
                                         tmp_path: Path) -> None:
    source = sqlite_db("source")
    path = _setup(source, pg, tmp_path)
    summary(pt_migrate(path, source, pg, "--json"))
    first = pg.registry("accounts")
    source.execute("UPDATE \"ACCOUNTS\" SET \"OWNER\" = 'renamed' WHERE \"ID\" = 7",
                   'DELETE FROM "ACCOUNTS" WHERE "ID" = 8')
    forced = summary(pt_migrate(path, source, pg, "--json", "--force"))
    assert (forced["status"], forced["rows_read"], forced["rows_written"]) == (
        "done", ROWS - 1, ROWS - 1)
    assert _target_rows(pg) == _source_rows(source)
    assert pg.scalar("SELECT count(*) FROM accounts WHERE id = 7 AND owner = 'renamed'") == 1
    entry = pg.registry("accounts")
    assert entry is not None and first is not None
    assert (entry["status"], entry["rows_read"], entry["rows_written"]) == (
        "DONE", ROWS - 1, ROWS - 1)
    assert entry["started_at"] > first["started_at"]
    # ... and then it is done again.
    assert summary(pt_migrate(path, source, pg, "--json"))["status"] == "already done"


def test_registry_row_fields(sqlite_db: Callable[[str], Db], tmp_path: Path) -> None:
    source, target = sqlite_db("source"), sqlite_db("target")
    path = _setup(source, target, tmp_path)
    result = summary(pt_migrate(path, source, target, "--json"))
    assert result["rows_read"] == ROWS
    entry = target.registry("accounts")
    assert entry is not None
    assert entry["transform"] == "accounts"
    assert entry["file_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert entry["source"] == f"{source.url} ACCOUNTS"
    assert entry["target_table"] == "accounts"
    assert entry["status"] == "DONE"
    assert (entry["rows_read"], entry["rows_written"], entry["rows_deferred"],
            entry["rows_rejected"], entry["rows_skipped"]) == (ROWS, ROWS, 0, 0, 0)
    assert orjson.loads(entry["checkpoint"]) == [ROWS]  # the last copied source key
    # start + 3 batches (100, 100, 50) + finish
    assert entry["version"] == 4
    assert entry["started_at"] is not None and entry["finished_at"] is not None
    assert entry["finished_at"] >= entry["started_at"]
    assert entry["host"] == socket.gethostname()
    assert isinstance(entry["pid"], int) and entry["pid"] != os.getpid()


def test_an_interrupted_copy_resumes_after_its_last_committed_batch(
        sqlite_db: Callable[[str], Db], tmp_path: Path) -> None:
    source, target = sqlite_db("source"), sqlite_db("target")
    path = _setup(source, target, tmp_path)
    with pytest.raises(Interrupted):
        migrate(MigrateRequest(load_transform(path), source.url, target.url),
                _interrupt_after(2))
    entry = target.registry("accounts")
    assert entry is not None
    assert (entry["status"], entry["rows_read"], entry["rows_written"]) == ("RUNNING", 200, 200)
    assert orjson.loads(entry["checkpoint"]) == [200]
    assert target.count("accounts") == 200

    resumed = summary(pt_migrate(path, source, target, "--json"))
    assert resumed["resumed_from"] == [200]
    assert (resumed["status"], resumed["rows_read"], resumed["rows_written"]) == (
        "done", ROWS, ROWS)
    assert _target_rows(target) == _source_rows(source)
    text = pt_migrate(path, source, target)
    assert "already done" in text.stdout


def test_a_changed_transform_file_after_an_interrupted_copy_is_refused_without_force(
        pg: Db, sqlite_db: Callable[[str], Db], tmp_path: Path) -> None:
    source = sqlite_db("source")
    path = _setup(source, pg, tmp_path)
    with pytest.raises(Interrupted):
        migrate(MigrateRequest(load_transform(path), source.url, pg.url), _interrupt_after(1))
    assert pg.count("accounts") == 100
    before = pg.registry("accounts")

    path.write_text(path.read_text().replace("version: '1.0'", "version: '1.1'"))
    refused = pt_migrate(path, source, pg, "--json")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1] == (
        "pt: error: accounts: the transform file changed since its interrupted copy started; "
        "rerun with --force to copy the table again from the start")
    assert "Traceback" not in refused.stderr
    assert pg.count("accounts") == 100
    assert pg.registry("accounts") == before

    forced = summary(pt_migrate(path, source, pg, "--json", "--force"))
    assert forced["resumed_from"] is None  # from the start, into an emptied table
    assert (forced["rows_read"], forced["rows_written"]) == (ROWS, ROWS)
    assert pg.count("accounts") == ROWS
    assert pg.scalar("SELECT count(DISTINCT id) FROM accounts") == ROWS
    entry = pg.registry("accounts")
    assert entry is not None
    assert entry["file_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert entry["status"] == "DONE"


def test_two_runs_of_one_transform_at_once_never_write_twice(pg: Db,
                                                            sqlite_db: Callable[[str], Db],
                                                            tmp_path: Path) -> None:
    source = sqlite_db("source")
    path = _setup(source, pg, tmp_path, rows=2000)
    command = migrate_cmd(path, source, pg, "--json", "--batch-size", "50")
    first = subprocess.Popen(command, cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (pg.registry("accounts") or {}).get("rows_read", 0) >= 200,
             what="the first copy to commit batches")
    # Freeze the first mid-table and start a second: it takes the copy over (the registry
    # cannot tell a live process from a dead one) and finishes it. Thawed, the first finds
    # the registry advanced at its next batch and stops without writing. (Frozen inside a
    # batch's transaction, the first holds the registry row: the second waits, and is the
    # one that stops once the first goes on.)
    first.send_signal(signal.SIGSTOP)
    second = subprocess.Popen(command, cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)

    def taken_over_or_waiting() -> bool:
        if second.poll() is not None:
            return True
        if (pg.registry("accounts") or {}).get("pid") == second.pid:
            return True  # claimed: the first is behind now
        return bool(pg.scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                              "current_database() AND wait_event_type = 'Lock'"))

    wait_for(taken_over_or_waiting, what="the second copy to claim, or to wait for a lock")
    first.send_signal(signal.SIGCONT)
    _, first_err = first.communicate(timeout=120)
    _, second_err = second.communicate(timeout=120)
    codes = sorted([first.returncode, second.returncode])
    assert codes == [0, 1], (first_err, second_err)
    stopped = (first_err if first.returncode else second_err).strip().splitlines()
    # The loser's batch rolled back. It says so — or, as a batch writes its rows before it
    # advances the registry, it may meet the winner's rows first: a duplicate key, said as
    # clearly (never an internal error).
    assert stopped[-1] in (
        "pt: error: transform accounts was advanced by another process meanwhile; this one "
        "stopped without writing (only one pt migrate run per transform at once)",
        'pt: error: accounts: database error: duplicate key value violates unique constraint '
        '"accounts_pkey"'), stopped
    assert pg.count("accounts") == 2000
    assert pg.scalar("SELECT count(DISTINCT id) FROM accounts") == 2000
    entry = pg.registry("accounts")
    assert entry is not None
    assert (entry["status"], entry["rows_read"], entry["rows_written"]) == ("DONE", 2000, 2000)
