"""Fixtures for running beyond one machine: a real PostgreSQL database per test session (a
schema per test), the two stores behind the same contract, and sample events of a real run.

PostgreSQL is the server CI checks (.ci/run): 127.0.0.1:5432, trust, user postgres. A test
that cannot reach it fails loudly instead of being skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pulsaride.engine.events import RunEvent, RunStarted
from pulsaride.engine.layout import StateDir
from pulsaride.engine.pgstore import PostgresStore
from pulsaride.engine.runstore import JsonlStore, RunStore
from pulsaride.engine.store import RunFile
from tests.conftest import run_pt

PG_HOST = os.environ.get("PT_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("PT_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("PT_TEST_PG_USER", "postgres")

SAMPLE = """\
stages: [extract, load, cutover]
jobs:
  a: {stage: extract, command: "echo a"}
  b: {stage: extract, command: "echo b; exit 3", retry: 1}
  c: {stage: load, command: "echo c", needs: [a]}
  d: {stage: load, command: "echo d", needs: [b], when: always}
  gate: {stage: cutover, command: "echo go", when: manual, needs: [c]}
"""


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres",
                           autocommit=True, connect_timeout=5)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh database for this test session (dropped at the end); its URL."""
    name = f"pt_scale_{uuid.uuid4().hex[:10]}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with _admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """The session database with a schema of this test's own."""
    return f"{pg_database}?schema=t_{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=["jsonl", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunStore]:
    """Each store behind the same contract."""
    if request.param == "jsonl":
        runs: RunStore = JsonlStore(StateDir(tmp_path / ".pulsaride"))
    else:
        runs = PostgresStore.connect(request.getfixturevalue("pg_url"))
    try:
        yield runs
    finally:
        runs.close()


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory: pytest.TempPathFactory,
               ) -> tuple[bytes, list[RunEvent | RunStarted]]:
    """The bytes and events of a real run (retry, failure, `always`, a suspended gate)."""
    folder = tmp_path_factory.mktemp("sample")
    (folder / "p.yml").write_text(SAMPLE)
    result = run_pt("pipeline", "run", "p.yml", "--run-id", "sample", "--no-wait", "-q",
                    cwd=folder)
    assert result.returncode == 3, result.stderr
    path = folder / ".pulsaride/pipeline-runs/sample.jsonl"
    run_file = RunFile.open(path, "sample")
    try:
        events = [event for _, event in run_file.read_new()]
    finally:
        run_file.close()
    return path.read_bytes(), events
