"""The dashboard under test is the real thing: `pt serve` as a process on a free port, read by
a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright) and by plain HTTP.

The runs it shows are made by real `pt pipeline run` processes (one succeeded, one failed, one
waiting at a gate); the Migration Health panel reads a SQLite target filled by real
`pt migrate run` and `pt validate` processes. Both worlds are built once per session and
copied (runs) or only read (the target) by each module.

Screenshots go to test-artifacts/ at the repository root (git-ignored), one per page.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.conftest import PT
from tests.migration.conftest import (
    Db,
    create_table,
    parent_child_source,
    parent_child_target,
    parent_child_transforms,
    write_transform,
)

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
# Variables pt reads; the processes of these tests get them only when a test says so.
PT_VARIABLES = ("PT_SOURCE_URL", "PT_TARGET_URL", "PT_SRC_PASS", "PT_TGT_PASS", "PT_STATE_DIR",
                "PT_SEAL_KEY", "PT_DEBUG")


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """os.environ without pt's own variables, plus `extra`."""
    return {**{k: v for k, v in os.environ.items() if k not in PT_VARIABLES}, **(extra or {})}


def pt(*args: str | Path, cwd: Path, env: dict[str, str] | None = None,
       timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `pt` as a real process in a clean environment."""
    return subprocess.run([PT, *map(str, args)], cwd=cwd, env=clean_env(env),
                          capture_output=True, text=True, timeout=timeout, check=False)


def pt_ok(*args: str | Path, cwd: Path, code: int = 0,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`pt`, checked to exit with `code`."""
    result = pt(*args, cwd=cwd, env=env)
    assert result.returncode == code, (args, result.returncode, result.stdout, result.stderr)
    return result


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Poll until `predicate()` holds (synchronisation, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


# ---- the server ------------------------------------------------------------------------------


class Server:
    """One `pt serve` process on a free loopback port."""

    def __init__(self, args: list[str], cwd: Path, log: Path, token: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._log_handle = log.open("wb")
        self.process = subprocess.Popen(
            [PT, "serve", "--port", str(self.port), *args], cwd=cwd, env=clean_env(),
            stdout=self._log_handle, stderr=subprocess.STDOUT)
        # With a token, the client sends it; a browser opens a page once with ?token=.
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.Client(base_url=self.url, timeout=30, headers=headers)
        wait_until(self._answers, f"pt serve {' '.join(args)} to answer", START_TIMEOUT)

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"pt serve exited with {self.process.returncode}:\n"
                                 f"{self.output()}")
        try:
            return self.client.get("/openapi.json").status_code == 200
        except httpx.TransportError:
            return False

    def output(self) -> str:
        """What the server printed so far (stdout and stderr)."""
        return self.log.read_text(errors="replace")

    def get(self, path: str) -> httpx.Response:
        return self.client.get(path)

    def json(self, path: str) -> Any:
        response = self.get(path)
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response.json()

    def raw(self, target: str) -> tuple[int, bytes]:
        """GET with the request target sent byte for byte (no client-side normalising)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.putrequest("GET", target, skip_accept_encoding=True)
            connection.endheaders()
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def alive(self) -> bool:
        return self.process.poll() is None and self.get("/openapi.json").status_code == 200

    def stop(self) -> int:
        """Ctrl-C, as a user stops it; killed if it does not stop in time. Its exit code."""
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(f"pt serve did not stop on Ctrl-C:\n{self.output()}")\
                    from None
        self._log_handle.close()
        return self.process.returncode


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Server]]:
    """Start `pt serve ARGS...` (cwd: a folder of the module's); all are stopped at the end."""
    servers: list[Server] = []
    logs = tmp_path_factory.mktemp("serve-logs")

    def start(*args: str | Path, cwd: Path | None = None, token: str | None = None) -> Server:
        server = Server([str(a) for a in args], cwd or logs, logs / f"serve-{len(servers)}.log",
                        token)
        servers.append(server)
        return server

    yield start
    problems = []
    for server in servers:
        try:
            server.stop()
        except AssertionError as exc:
            problems.append(str(exc))
    assert not problems, problems


# ---- the browser -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium per module."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser page (its own context: no shared cache or storage)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(20_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    # The server's Content-Security-Policy allows no inline script or style: Chromium reports
    # anything it blocks on the console ("Refused to ... Content Security Policy").
    violations: list[str] = []
    tab.on("console", lambda message: violations.append(message.text)
           if "Content Security Policy" in message.text else None)
    try:
        yield tab
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
    assert not violations, f"Content-Security-Policy violations on the page: {violations}"


def screenshot(tab: Page, name: str) -> Path:
    """Keep a full-page screenshot as a test artifact."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    tab.screenshot(path=str(path), full_page=True)
    return path


# ---- runs: succeeded, failed, waiting at a gate ------------------------------------------------

PIPELINES = {
    "build": """\
        version: "1.0"
        stages: [build, test]
        jobs:
          compile:
            stage: build
            command: echo compiled the build
          lint:
            stage: build
            command: echo lint clean
          unit:
            stage: test
            command: echo 12 unit tests passed
            needs: [compile, lint]
        """,
    "broken": """\
        version: "1.0"
        stages: [build, test]
        jobs:
          compile:
            stage: build
            command: 'echo compiling; echo "error: missing semicolon" >&2; exit 3'
          flaky:
            stage: build
            command: echo flaky passes
            retry: 1
          unit:
            stage: test
            command: echo never runs
            needs: [compile]
        """,
    "release": """\
        version: "1.0"
        stages: [build, deploy]
        jobs:
          compile:
            stage: build
            command: echo built
          release:
            stage: deploy
            command: echo released
            needs: [compile]
            when: manual
        """,
}


@dataclass(frozen=True)
class RunsWorld:
    """Pipeline files and a state dir holding one run of each."""

    folder: Path
    state: Path
    pipelines: dict[str, Path]
    # run id -> (pipeline name, who started it, expected outcome)
    runs: dict[str, tuple[str, str, str]]

    def copy(self, destination: Path) -> Path:
        """A copy of the state dir (so a module may add, change or damage runs)."""
        shutil.copytree(self.state, destination)
        return destination


EXPECTED_RUNS = {
    "ok-1": ("build", "alice", "succeeded", 0),
    "broken-1": ("broken", "bob", "failed", 1),
    "gate-1": ("release", "carol", "awaiting approval", 3),
}


def write_pipeline(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.yml"
    path.write_text(textwrap.dedent(text))
    return path


def run_pipeline(pipeline: Path, state: Path, run_id: str, *, user: str, code: int,
                 extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """`pt pipeline run` as `user`, checked to exit with `code`."""
    return pt_ok("pipeline", "run", pipeline, "--state-dir", state, "--run-id", run_id,
                 "--no-wait", *extra, cwd=pipeline.parent, code=code,
                 env={"LOGNAME": user, "USER": user})


@pytest.fixture(scope="session")
def runs_world(tmp_path_factory: pytest.TempPathFactory) -> RunsWorld:
    folder = tmp_path_factory.mktemp("runs-world")
    pipelines = {name: write_pipeline(folder, name, text) for name, text in PIPELINES.items()}
    state = folder / "state"
    for run_id, (name, user, _outcome, code) in EXPECTED_RUNS.items():
        run_pipeline(pipelines[name], state, run_id, user=user, code=code)
    return RunsWorld(folder, state, pipelines,
                     {k: (n, u, o) for k, (n, u, o, _c) in EXPECTED_RUNS.items()})


def run_lines(state: Path, run_id: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in
            (state / "pipeline-runs" / f"{run_id}.jsonl").read_bytes().splitlines()]


# ---- a migrated SQLite target for the Migration Health panel -----------------------------------


@dataclass(frozen=True)
class HealthWorld:
    """A SQLite source and target after real `pt migrate run` / `pt validate` processes.

    `all_transforms`: parents (GO), children (2 orphans deferred: counts INCOMPLETE, NO-GO),
    tags (1 row rejected: counts INCOMPLETE, NO-GO), notes (copied, never validated:
    CAUTION) -> NO-GO overall. `go_transforms`: parents only -> GO.
    `caution_transforms`: notes only -> CAUTION."""

    folder: Path
    source_url: str
    target_url: str
    all_transforms: Path
    go_transforms: Path
    caution_transforms: Path

    def serve_args(self, transforms: Path) -> list[str]:
        return ["--transforms", str(transforms), "--target-url", self.target_url,
                "--source-url", self.source_url]

    def health(self, transforms: Path) -> tuple[int, dict[str, Any]]:
        """`pt health --json` for `transforms`: exit code and document."""
        result = pt("health", *self.serve_args(transforms), "--json", cwd=self.folder)
        assert result.returncode in (0, 1), result.stderr
        document: dict[str, Any] = orjson.loads(result.stdout)
        return result.returncode, document


TAGS = """\
    name: tags
    target_table: tags
    reject_policy: FAIL_ROW
    sources: [{name: tags, table: tags, alias: g}]
    fields:
      - {name: id, source: g.id}
      - {name: weight, source: g.weight, expression: 'to_int(?)'}
    """


NOTES = """\
    name: notes
    sources: [{name: notes, table: notes}]
    """


@pytest.fixture(scope="session")
def health_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HealthWorld]:
    folder = tmp_path_factory.mktemp("health-world")
    source = Db("sqlite", f"sqlite:///{folder / 'source.db'}")
    target = Db("sqlite", f"sqlite:///{folder / 'target.db'}")
    parent_child_source(source, parents=5, children=20, orphans=[98, 99])
    create_table(source, "tags", [("id", "int"), ("weight", "text")], primary_key=["id"])
    source.insert("tags", [(1, "10"), (2, "heavy"), (3, "30")])
    parent_child_target(target)
    create_table(target, "tags", [("id", "int"), ("weight", "int")], primary_key=["id"])
    for db in (source, target):
        create_table(db, "notes", [("id", "int"), ("body", "text")], primary_key=["id"])
    source.insert("notes", [(1, "a"), (2, "b"), (3, "c")])
    source.dispose()
    target.dispose()
    every, go, caution = (folder / "all", folder / "go", folder / "caution")
    for path in (every, go, caution):
        path.mkdir()
    parent_child_transforms(every)
    parent_child_transforms(go)
    (go / "children.yaml").unlink()
    write_transform(every, TAGS, "tags.yaml")
    for path in (every, caution):
        write_transform(path, NOTES, "notes.yaml")
    urls = ("--source-url", source.url, "--target-url", target.url)
    for name in ("parents", "children", "tags", "notes"):
        pt_ok("migrate", "run", every / f"{name}.yaml", *urls, cwd=folder)
    # children and tags miss rows (deferred, rejected): INCOMPLETE, exit 1.
    pt_ok("validate", "counts", "--table", "parents", "children", "tags", "--transforms", every,
          *urls, cwd=folder, code=1)
    pt_ok("validate", "hash", "--table", "parents", "--transforms", every, *urls, cwd=folder)
    yield HealthWorld(folder, source.url, target.url, every, go, caution)
