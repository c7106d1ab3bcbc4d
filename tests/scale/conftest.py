"""Fixtures for running beyond one machine: a real PostgreSQL database per test session (a
schema per test), the two stores behind the same contract, and sample events of a real run.

PostgreSQL is the server CI checks (.ci/run): 127.0.0.1:5432, trust, user postgres. A test
that cannot reach it fails loudly instead of being skipped.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pulsaride.engine.events import RunEvent, RunStarted
from pulsaride.engine.jsonl_store import JsonlStore, RunFile
from pulsaride.engine.layout import StateDir
from pulsaride.engine.pgstore import PostgresStore
from pulsaride.engine.runstore import RunStore
from tests.conftest import run_pt

DASK = str(Path(sys.executable).parent / "dask")
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


class Cluster:
    """A real `dask scheduler` and `dask worker` processes on loopback ports."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = _free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.workers: dict[str, subprocess.Popen[bytes]] = {}  # worker address -> process
        self.scheduler = self._start("scheduler", [
            "scheduler", "--host", "127.0.0.1", "--port", str(self.port), "--no-dashboard"])
        _wait_for_port(self.port)

    def add_worker(self, name: str, resources: str = "") -> str:
        """Start a worker (no nanny: SIGKILL kills the worker itself); return its address."""
        port = _free_port()
        args = ["worker", self.address, "--name", name, "--nthreads", "4", "--no-nanny",
                "--no-dashboard", "--host", "127.0.0.1", "--worker-port", str(port)]
        if resources:
            args += ["--resources", resources]
        address = f"tcp://127.0.0.1:{port}"
        self.workers[address] = self._start(name, args)
        return address

    def wait_for_workers(self, count: int) -> None:
        from distributed import Client  # noqa: PLC0415 - only the Dask tests need it

        with Client(self.address, timeout=30) as client:
            client.wait_for_workers(count, timeout=60)

    def kill(self, address: str) -> None:
        """SIGKILL a worker, as a machine failure would."""
        self.workers[address].send_signal(signal.SIGKILL)
        self.workers[address].wait()

    def stop(self) -> None:
        for proc in [*self.workers.values(), self.scheduler]:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def _start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = (self.folder / f"{name}.log").open("wb")
        return subprocess.Popen([DASK, *args], stdout=log, stderr=subprocess.STDOUT,
                                cwd=self.folder)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_for_port(port: int, seconds: float = 30) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on port {port} after {seconds}s")


def start_cluster(folder: Path, *resources: str) -> Cluster:
    """A scheduler and one worker per entry of `resources` (e.g. "near_source=1", "")."""
    cluster = Cluster(folder)
    try:
        for number, offered in enumerate(resources, start=1):
            cluster.add_worker(f"w{number}", offered)
        cluster.wait_for_workers(len(resources))
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A cluster shared by a module's tests: w1 is near the source database, w2 is not."""
    running = start_cluster(tmp_path_factory.mktemp("cluster"), "near_source=1", "")
    yield running
    running.stop()
