"""Shared machinery of the fault-injection suite: sizes, runner processes, process cleanup and
the figures the suite reports.

Sizes: every family runs at a CI size by default. `PT_FAULTS_FULL=1` selects the full size
(by hand, see docs/RELIABILITY.md); `PT_FAULTS_<FAMILY>=N` sets one family's size, e.g.
`PT_FAULTS_KILLS=500`. `PT_FAULTS_SEED=S` fixes the random seed (default: a fixed seed, so CI
runs are reproducible; `PT_FAULTS_SEED=random` draws one and prints it).

Figures: each test records what it tried and what passed; they are printed at the end of the
session and, with `PT_FAULTS_REPORT=FILE`, written there as JSON (docs/RELIABILITY.md quotes
them).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PT

FULL = os.environ.get("PT_FAULTS_FULL", "") not in ("", "0")


def size(family: str, ci: int, full: int) -> int:
    """How many trials of `family` to run: PT_FAULTS_<FAMILY>, else the full or CI size."""
    value = os.environ.get(f"PT_FAULTS_{family.upper()}")
    if value:
        return int(value)
    return full if FULL else ci


def seed() -> int:
    """The suite's random seed (fixed unless PT_FAULTS_SEED says otherwise)."""
    value = os.environ.get("PT_FAULTS_SEED", "20260407")
    if value == "random":
        drawn = random.SystemRandom().randrange(2**32)
        print(f"PT_FAULTS_SEED={drawn}", file=sys.stderr)
        return drawn
    return int(value)


# ---- figures -------------------------------------------------------------------------------

_FIGURES: dict[str, dict[str, Any]] = {}


def record(figure: str, **values: Any) -> None:
    """Keep a figure of this session (counts add up across tests of the same figure)."""
    into = _FIGURES.setdefault(figure, {})
    for key, value in values.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            into[key] = into.get(key, 0) + value
        else:
            into[key] = value


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("fault-injection figures")
    for name, values in sorted(_FIGURES.items()):
        shown = ", ".join(f"{k}={v}" for k, v in values.items())
        terminalreporter.write_line(f"{name}: {shown}")
    target = os.environ.get("PT_FAULTS_REPORT")
    if target:
        Path(target).write_text(json.dumps({"full": FULL, "figures": _FIGURES}, indent=2,
                                           sort_keys=True) + "\n")


# ---- runner processes ----------------------------------------------------------------------


@dataclass
class Proc:
    """A `pt` process started by the fork server."""

    pid: int
    out: Path
    err: Path
    server: Zygote
    status: int | None = None

    def wait(self, timeout: float = 120.0) -> int:
        """Wait for the process to end; its exit code (or -signal)."""
        if self.status is None:
            status = self.server.wait(self.pid, timeout)
            if status is None:
                raise AssertionError(f"pt (pid {self.pid}) still runs after {timeout} s")
            self.status = status
        return self.status

    def poll(self) -> int | None:
        if self.status is None:
            self.status = self.server.wait(self.pid, 0.0)
        return self.status

    def kill(self) -> bool:
        """SIGKILL the process; True if it was still running."""
        if self.poll() is not None:
            return False
        os.kill(self.pid, signal.SIGKILL)
        self.wait()
        return self.status == -signal.SIGKILL

    @property
    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err.read_text(errors="replace")


class Zygote:
    """Client of tests/faults/zygote.py: starts `pt` processes without paying the imports."""

    def __init__(self) -> None:
        root = Path(__file__).resolve().parents[2]
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("zygote.py"))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
            cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
        self._count = 0

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(json.dumps(request) + "\n")
        answer = self._proc.stdout.readline()
        if not answer:
            raise AssertionError("the fork server died")
        result: dict[str, Any] = json.loads(answer)
        return result

    def spawn(self, *args: str, cwd: Path, env: dict[str, str] | None = None,
              memory: int | None = None) -> Proc:
        """Start `pt ARGS...` in `cwd` (output kept in files next to it; `memory` bounds its
        address space, in bytes)."""
        self._count += 1
        out = cwd / f".pt-{self._count}.out"
        err = cwd / f".pt-{self._count}.err"
        answer = self._ask({"op": "spawn", "args": list(args), "cwd": str(cwd),
                            "env": {**os.environ, **(env or {})}, "out": str(out),
                            "err": str(err), "pt": PT, "rlimit_as": memory})
        return Proc(pid=answer["pid"], out=out, err=err, server=self)

    def run(self, *args: str, cwd: Path, env: dict[str, str] | None = None,
            timeout: float = 120.0, memory: int | None = None) -> Proc:
        """Run `pt ARGS...` to its end (killed and failed if it takes over `timeout` s)."""
        proc = self.spawn(*args, cwd=cwd, env=env, memory=memory)
        status = self.wait(proc.pid, timeout)
        if status is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            raise AssertionError(f"pt {' '.join(args)} took over {timeout} s")
        proc.status = status
        return proc

    def wait(self, pid: int, timeout: float) -> int | None:
        status = self._ask({"op": "wait", "pid": pid, "timeout": timeout})["status"]
        return status if status is None else int(status)

    def close(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        self._proc.wait(timeout=30)


@pytest.fixture(scope="session")
def zygote() -> Iterator[Zygote]:
    server = Zygote()
    try:
        yield server
    finally:
        server.close()


def runs_dir(folder: Path) -> Path:
    """The folder holding the run files of the pipeline in `folder`."""
    return folder / ".pulsaride" / "pipeline-runs"


# ---- processes left behind -----------------------------------------------------------------


def processes_with(marker: str) -> list[int]:
    """Pids of live processes whose command line or environment holds `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue  # a zombie holds nothing
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline or marker.encode() in environ:
            found.append(int(entry.name))
    return found


def kill_marked(marker: str) -> None:
    """SIGKILL every process carrying `marker` (cleanup after a failed test)."""
    for pid in processes_with(marker):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def wait_for(condition: Callable[[], bool], what: str, limit: float = 60.0,
             step: float = 0.005) -> float:
    """Poll until `condition` holds; the seconds it took (the limit only guards a hang)."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > limit:
            raise AssertionError(f"gave up waiting for {what} after {limit} s")
        time.sleep(step)
    return time.monotonic() - start


@dataclass
class Tally:
    """Counts of one family, recorded as a figure at the end of a test."""

    figure: str
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def save(self, **extra: Any) -> None:
        record(self.figure, **self.counts, **extra)
