"""I/O errors while the run file is written: the run stops with a clear error, leaves no line it
could not make durable (so no DONE it cannot keep), starts nothing on an undurable decision,
and resumes cleanly once the cause is gone.

- In-process (the engine's operations with the SimulatedExecutor): fdatasync raising EIO, and a
  write that stops short and then raises ENOSPC or EIO, at every write of a run in turn.
- A real `pt` process whose file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored) makes the run file
  hit a full disk (EFBIG) at several points of a 20-job run.
"""

from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from pulsaride.engine.errors import StoreWriteError
from tests.conftest import PT, run_pt
from tests.property.sim import Scenario
from tests.property.strategies import JobSpec, Outcomes, PipelineSpec
from tests.runfile_checks import check_run_file, lock_is_free

from .conftest import Tally, wait_for
from .test_kill_loop import ENV, JOB_SCRIPT, PIPELINE, RUN_ID
from .test_power_loss import chain_ok

SPEC = PipelineSpec(
    stages=("extract", "load", "check"),
    jobs=(
        JobSpec("a", "extract"),
        JobSpec("b", "extract"),
        JobSpec("c", "load", needs=("a",), retry=1),
        JobSpec("d", "load", needs=("b", "c")),
        JobSpec("e", "check", needs=("d",)),
    ),
)
OUTCOMES = Outcomes(codes={"c": (1, 0)})
WRITES_IN_A_RUN = 8  # batches the run below writes: every one gets its turn to fail


class Fault:
    """Makes the `nth` write (or its sync) of the run file fail, once."""

    def __init__(self, path: Path, nth: int, kind: str) -> None:
        self.path = path
        self.nth = nth
        self.kind = kind
        self.writes = 0
        self.fired = False
        self.short = False
        self.size_before: int | None = None

    def _ours(self, fd: int) -> bool:
        try:
            return os.path.samestat(os.fstat(fd), self.path.stat())
        except OSError:
            return False

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real_write, real_fdatasync = os.write, os.fdatasync

        def write(fd: int, data: Any) -> int:
            if self.fired or not self._ours(fd):
                return real_write(fd, data)
            if self.short:  # the rest of the failing write
                self.fired = True
                code = errno.ENOSPC if self.kind == "write ENOSPC" else errno.EIO
                raise OSError(code, os.strerror(code))
            self.writes += 1
            if self.writes != self.nth:
                return real_write(fd, data)
            self.size_before = os.fstat(fd).st_size
            if self.kind == "fdatasync EIO":
                return real_write(fd, data)
            self.short = True  # half of it is written, then the disk fails
            return real_write(fd, memoryview(data)[:max(1, len(data) // 2)])

        def fdatasync(fd: int) -> None:
            if (self.kind == "fdatasync EIO" and not self.fired and self._ours(fd)
                    and self.writes == self.nth):
                self.fired = True
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            real_fdatasync(fd)

        monkeypatch.setattr(os, "write", write)
        monkeypatch.setattr(os, "fdatasync", fdatasync)


def _launched_on_durable_lines(scenario: Scenario, lines: list[dict[str, Any]]) -> None:
    started = {(r["job"], r["attempt"]) for r in lines if r["event"] == "JobStarted"}
    for launch in scenario.world.launches:
        assert launch in started, f"{launch} was launched on a line that is not on disk"


@pytest.mark.parametrize("kind", ["fdatasync EIO", "write ENOSPC", "write EIO"])
@pytest.mark.parametrize("nth", range(1, WRITES_IN_A_RUN + 1))
def test_a_failed_write_stops_the_run_and_leaves_only_durable_lines(
        kind: str, nth: int, monkeypatch: pytest.MonkeyPatch) -> None:
    with Scenario(SPEC, OUTCOMES, parallelism=2, wait_for_approval=True, seed=1) as scenario:
        fault = Fault(scenario.run_file, nth, kind)
        fault.install(monkeypatch)
        with pytest.raises(StoreWriteError) as stopped:
            scenario.segment()
        monkeypatch.undo()
        assert fault.fired and fault.size_before is not None
        message = str(stopped.value)
        reason = {"fdatasync EIO": "Input/output error", "write ENOSPC": "No space left",
                  "write EIO": "Input/output error"}[kind]
        assert "cannot write the run's events durably" in message and reason in message
        assert "can be resumed" in message

        data = scenario.run_file.read_bytes()
        assert len(data) == fault.size_before, "the batch that failed is not left behind"
        lines = chain_ok(data) if data else []
        _launched_on_durable_lines(scenario, lines)
        done_before = {r["job"]: r["attempt"] for r in lines if r["event"] == "JobSucceeded"}

        if not lines:
            scenario.started = False  # the first line failed: the run never started
        finished = scenario.segment()
        assert finished.result is not None and finished.result.outcome == "succeeded"
        final = chain_ok(scenario.run_file.read_bytes())
        for job, attempt in done_before.items():
            later = [a for j, a in scenario.world.launches if j == job and a > attempt]
            assert not later, f"{job}, DONE before the error, ran again"
        launches = Counter(scenario.world.launches)
        assert all(n == 1 for n in launches.values()), launches
        assert {r["job"] for r in final if r["event"] == "JobSucceeded"} == set(SPEC.by_name)
    Tally("I/O errors", {f"{kind} injected": 1, "stopped cleanly and resumed": 1}).save(
        **{"DONE jobs re-run": 0, "undurable lines left": 0})


def test_every_batch_of_the_in_process_run_was_a_fault_point(monkeypatch) -> None:
    """WRITES_IN_A_RUN must match the run: count its batches."""
    with Scenario(SPEC, OUTCOMES, parallelism=2, wait_for_approval=True, seed=1) as scenario:
        fault = Fault(scenario.run_file, 10_000, "write EIO")
        fault.install(monkeypatch)
        assert scenario.segment().result is not None
        assert fault.writes == WRITES_IN_A_RUN


# ---- a full disk, with a real process -------------------------------------------------------


def _side(folder: Path) -> list[tuple[str, str]]:
    side = folder / "side.txt"
    lines = side.read_text().splitlines() if side.exists() else []
    return [(job, attempt) for job, attempt in (line.split() for line in lines)]


def _limited(limit: int) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 0.75, 0.95])
def test_a_full_disk_stops_the_run_which_resumes_once_there_is_room(tmp_path, fraction):
    folder = tmp_path / "run"
    folder.mkdir()
    pipeline = folder / "pulsaride-pipeline.yml"
    pipeline.write_text(PIPELINE)
    (folder / "job.sh").write_text(JOB_SCRIPT)
    run_file = folder / ".pulsaride" / "pipeline-runs" / f"{RUN_ID}.jsonl"
    full_size = 21_000  # a whole run of this pipeline is about this many bytes
    limit = int(full_size * fraction)

    proc = subprocess.run([PT, "pipeline", "run", str(pipeline), "--run-id", RUN_ID, "-q"],
                          cwd=folder, env={**os.environ, **ENV}, capture_output=True, text=True,
                          timeout=120, preexec_fn=lambda: _limited(limit), check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("pt: error:")]
    assert errors == [errors[0]] and "cannot write the run's events durably: File too large" \
        in errors[0] and "can be resumed" in errors[0], proc.stderr
    data = run_file.read_bytes()
    if not data:  # not even the first line fit: the run never started; start it again
        refused = run_pt("pipeline", "resume", str(pipeline), "--run-id", RUN_ID, cwd=folder)
        assert refused.returncode == 1 and "never recorded its start" in refused.stderr
        again = run_pt("pipeline", "run", str(pipeline), "--run-id", RUN_ID, "-q", cwd=folder,
                       env=ENV)
        assert again.returncode == 1, again.stderr  # `broken` fails
        assert check_run_file(run_file)[-2]["outcome"] == "failed"
        Tally("I/O errors", {"full disk (EFBIG) injected": 1, "stopped cleanly and resumed": 1}
              ).save()
        return
    assert len(data) <= limit and data.endswith(b"\n")
    lines = check_run_file(run_file)
    started = {(r["job"], r["attempt"]) for r in lines if r["event"] == "JobStarted"}
    done_before = {r["job"] for r in lines if r["event"] == "JobSucceeded"}

    lock = run_file.with_suffix(".lock")
    wait_for(lambda: lock_is_free(lock), "the stopped runner's jobs to end")
    assert {(job, int(attempt)) for job, attempt in _side(folder)} <= started

    resumed = run_pt("pipeline", "resume", str(pipeline), "--run-id", RUN_ID, "-q", cwd=folder,
                     env=ENV)
    assert resumed.returncode == 1, resumed.stderr  # the pipeline's `broken` job fails
    final = check_run_file(run_file)
    assert final[-2]["event"] == "RunFinished" and final[-2]["outcome"] == "failed"
    effects = Counter(job for job, _ in _side(folder))
    for job in done_before:
        assert effects[job] == 1, f"{job}, DONE before the disk filled, ran again"
    verify = run_pt("pipeline", "verify", str(pipeline), "--run-id", RUN_ID, cwd=folder)
    assert verify.returncode == 0, verify.stdout
    record = orjson.loads(run_file.read_bytes().splitlines()[len(lines)])
    assert record["event"] == "RunResumed"
    Tally("I/O errors", {"full disk (EFBIG) injected": 1, "stopped cleanly and resumed": 1}
          ).save()
