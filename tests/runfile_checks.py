"""Checks of a run file's format, shared by the run-file and the durability tests."""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import orjson

from pulsaride.schemas import load_schema
from tests.conftest import PT

GENESIS = "0" * 64
MISSION_FIELDS = ("pipeline_run_id", "job", "stage", "status", "started_at", "finished_at",
                  "exit_code", "error")
"""The fields of the mission's state-file example, on every job line."""

VALIDATOR = jsonschema.Draft202012Validator(
    load_schema("event"), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def schema_errors(record: Any) -> list[str]:
    """Why `record` is not a valid run-file line (empty when it is)."""
    return [f"{'/'.join(map(str, e.absolute_path)) or '<line>'}: {e.message}"
            for e in VALIDATOR.iter_errors(record)]


def check_run_file(path: Path) -> list[dict[str, Any]]:
    """Assert every line of the run file at `path` is well formed; return the parsed lines.

    Each line validates against schemas/event.schema.json, `seq` counts 1, 2, 3... without a
    gap, `prev` is the SHA-256 of the previous line's bytes (64 zeros on the first line), the
    run id is the file's, and job lines carry the mission's fields.
    """
    data = path.read_bytes()
    assert data.endswith(b"\n"), f"{path}: the last line is not complete"
    records = []
    prev = GENESIS
    for number, raw in enumerate(data[:-1].split(b"\n"), start=1):
        record = orjson.loads(raw)
        assert schema_errors(record) == [], (number, raw, schema_errors(record))
        assert record["seq"] == number, f"line {number}: seq {record['seq']}"
        assert record["prev"] == prev, f"line {number}: chain broken"
        assert record["pipeline_run_id"] == path.stem
        if record["event"].startswith("Job"):
            missing = [f for f in (*MISSION_FIELDS, "attempt") if f not in record]
            assert missing == [], f"line {number}: {record['event']} lacks {missing}"
        prev = hashlib.sha256(raw).hexdigest()
        records.append(record)
    assert records[0]["event"] == "RunStarted"
    assert all(r["event"] != "RunStarted" for r in records[1:])
    return records


def events(records: list[dict[str, Any]], job: str | None = None) -> list[str]:
    """The event names of `records` (only the job lines of `job` if given)."""
    return [r["event"] for r in records
            if job is None or (r["event"].startswith("Job") and r["job"] == job)]


def wait_until(condition: Callable[[], bool], what: str, limit: float = 60.0) -> None:
    """Poll `condition` until it holds (the limit only guards against a hang)."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.005)


def line_count(path: Path) -> int:
    """Complete lines in the file at `path` (0 if it does not exist yet)."""
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def lock_is_free(path: Path) -> bool:
    """True if no process holds the run lock at `path`."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def start_pt(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start `pt` as a real process in the background (output captured)."""
    return subprocess.Popen([PT, *args], cwd=cwd, env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
