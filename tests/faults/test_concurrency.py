"""Concurrency: two `resume`s of one run started together, approvals written while the runner
appends, and the run lock of a killed runner.

- Two resumes, repeated (PT_FAULTS_RESUMES, CI and full 100): exactly one takes the run and
  runs its jobs; the other refuses ("active in another process") or, if it came after the
  first had finished, says there is nothing to resume. Never two runners at once.
- Five `approve`s of five gates while the runner appends the lines of 24 quick jobs: every
  approval is recorded exactly once, no line is lost or interleaved (the chain verifies).
- A killed runner's lock is free again once its processes are gone: polled with a bounded
  wait (the figure records how long it took; nothing asserts a speed).
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from functools import partial
from pathlib import Path

import orjson
import pytest

from pulsaride.engine.evidence import load_evidence
from pulsaride.engine.layout import StateDir
from pulsaride.projections.verify import verify_run
from tests.runfile_checks import check_run_file, lock_is_free

from .conftest import Tally, Zygote, kill_marked, processes_with, runs_dir, size, wait_for


def _holds(path: Path, text: bytes) -> bool:
    return path.exists() and text in path.read_bytes()


def _verified(folder: Path, run_id: str) -> None:
    report = verify_run(load_evidence(StateDir(folder / ".pulsaride"), run_id))
    assert report.ok, [f.text() for f in report.findings]


# ---- two resumes at once --------------------------------------------------------------------

RESUMABLE = """\
stages: [one, two]
jobs:
  a: {stage: one, command: "echo a-$PT_ATTEMPT >> side.txt"}
  b: {stage: two, command: "echo b-$PT_ATTEMPT >> side.txt; test -f fixed && sleep 0.3"}
  c: {stage: two, command: "echo c-$PT_ATTEMPT >> side.txt; sleep 0.2", needs: [b]}
"""


@pytest.mark.slow
def test_two_resumes_started_together_never_both_run(zygote: Zygote, tmp_path: Path) -> None:
    trials = size("resumes", ci=100, full=100)
    tally = Tally("concurrent resumes")
    for trial in range(trials):
        folder = tmp_path / f"t{trial}"
        folder.mkdir()
        pipeline = str(folder / "pulsaride-pipeline.yml")
        Path(pipeline).write_text(RESUMABLE)
        failed = zygote.run("pipeline", "run", pipeline, "--run-id", "r", "-q", cwd=folder)
        assert failed.status == 1, failed.stderr
        (folder / "fixed").touch()
        before = (folder / "side.txt").read_text().split()

        first = zygote.spawn("pipeline", "resume", pipeline, "--run-id", "r", "-q", cwd=folder)
        second = zygote.spawn("pipeline", "resume", pipeline, "--run-id", "r", "-q", cwd=folder)
        statuses = sorted([first.wait(), second.wait()])
        outputs = first.stderr + second.stderr
        records = check_run_file(runs_dir(folder) / "r.jsonl")
        resumed = [r for r in records if r["event"] == "RunResumed"]
        ran = (folder / "side.txt").read_text().split()[len(before):]
        assert len(resumed) == 1, f"trial {trial}: {len(resumed)} runners took the run"
        assert Counter(x.split("-")[0] for x in ran) == {"b": 1, "c": 1}, ran
        if statuses == [0, 2]:
            assert "active in another process" in outputs, outputs
            tally.add("the second refused: active in another process")
        else:
            assert statuses == [0, 0] and "already succeeded; nothing to resume" in outputs
            tally.add("the second came after the first had finished")
        assert "Traceback" not in outputs
        _verified(folder, "r")
    tally.add("trials", trials)
    tally.save(**{"trials with two runners": 0})


# ---- approvals while the runner appends -----------------------------------------------------


def _busy_pipeline(gates: int, jobs: int) -> str:
    lines = ["stages: [work, after]", "jobs:"]
    for n in range(jobs):
        lines.append(f'  w{n}: {{stage: work, command: "echo w{n} >> side.txt"}}')
    for n in range(gates):
        lines.append(f'  g{n}: {{stage: work, command: "echo g{n} >> side.txt", '
                     'when: manual}')
    lines.append('  last: {stage: after, command: "echo last >> side.txt"}')
    return "\n".join(lines) + "\n"


@pytest.mark.slow
def test_approvals_while_the_runner_appends_lose_and_interleave_nothing(
        zygote: Zygote, tmp_path: Path) -> None:
    gates, jobs = 5, 24
    tally = Tally("approvals during appends")
    for trial in range(size("approvals", ci=4, full=40)):
        folder = tmp_path / f"t{trial}"
        folder.mkdir()
        pipeline = str(folder / "pulsaride-pipeline.yml")
        Path(pipeline).write_text(_busy_pipeline(gates, jobs))
        runner = zygote.spawn("pipeline", "run", pipeline, "--run-id", "a", "-q", "-j", "2",
                              cwd=folder)
        run_file = runs_dir(folder) / "a.jsonl"
        wait_for(partial(_holds, run_file, b"JobAwaitingApproval"), "the gates to wait")
        approvers = [zygote.spawn("pipeline", "approve", pipeline, "--run-id", "a", "--job",
                                  f"g{n}", cwd=folder) for n in range(gates)]
        for approver in approvers:
            assert approver.wait() == 0, approver.stderr
        assert runner.wait() == 0, runner.stderr
        records = check_run_file(run_file)
        events = Counter((r["event"], r.get("job")) for r in records)
        for n in range(gates):
            assert events["JobApproved", f"g{n}"] == 1
            assert events["JobSucceeded", f"g{n}"] == 1
        for n in range(jobs):
            assert events["JobSucceeded", f"w{n}"] == 1
        side = Counter((folder / "side.txt").read_text().split())
        assert set(side.values()) == {1} and len(side) == gates + jobs + 1
        approved_at = [i for i, r in enumerate(records) if r["event"] == "JobApproved"]
        busy = [i for i, r in enumerate(records) if r["event"] == "JobSucceeded"
                and r["job"].startswith("w")]
        tally.add("approvals", gates)
        tally.add("approvals written between two of the runner's job lines",
                  sum(1 for i in approved_at if busy and busy[0] < i < busy[-1]))
        tally.add("lines checked", len(records))
        _verified(folder, "a")
    tally.save(**{"lines lost or interleaved": 0})


# ---- the lock of a killed runner -------------------------------------------------------------

GATED = """\
stages: [prep, cut]
jobs:
  prep: {stage: prep, command: "true"}
  gate: {stage: cut, command: "true", when: manual, needs: [prep]}
"""
HOLDING = """\
stages: [only]
jobs:
  hold:
    stage: only
    command: "test -f release || { sleep 30 & sleep 30 & wait; }"
    variables: {MARK: "%s"}
"""


def test_the_lock_of_a_killed_runner_frees(zygote: Zygote, tmp_path: Path) -> None:
    tally = Tally("lock after kill -9")
    waited = []
    for trial in range(size("locks", ci=5, full=50)):
        folder = tmp_path / f"gate-{trial}"
        folder.mkdir()
        pipeline = str(folder / "pulsaride-pipeline.yml")
        Path(pipeline).write_text(GATED)
        runner = zygote.spawn("pipeline", "run", pipeline, "--run-id", "l", "-q", cwd=folder)
        run_file = runs_dir(folder) / "l.jsonl"
        wait_for(partial(_holds, run_file, b"JobAwaitingApproval"), "the gate to wait")
        lock = runs_dir(folder) / "l.lock"
        assert not lock_is_free(lock)
        assert runner.kill()
        waited.append(wait_for(partial(lock_is_free, lock), "the lock to free", limit=10))
        resumed = zygote.spawn("pipeline", "resume", pipeline, "--run-id", "l", "--no-wait",
                               cwd=folder)
        assert resumed.wait() == 3, resumed.stderr  # took the run over; waits at the gate again
        tally.add("runner killed while waiting at a gate; lock freed")
    tally.save(**{"longest wait for the lock (s)": round(max(waited), 3)})


def test_the_lock_frees_once_the_dead_runners_job_group_is_gone(zygote: Zygote,
                                                                  tmp_path: Path) -> None:
    marker = f"pt-fault-lock-{os.getpid()}-{time.monotonic_ns()}"
    pipeline = tmp_path / "pulsaride-pipeline.yml"
    pipeline.write_text(HOLDING % marker)
    runner = zygote.spawn("pipeline", "run", str(pipeline), "--run-id", "h", "-q", cwd=tmp_path)
    try:
        wait_for(lambda: len(processes_with(marker)) >= 3, "the job and its children")
        lock = runs_dir(tmp_path) / "h.lock"
        assert runner.kill()
        # The job's processes inherited the run lock: the run is still active.
        refused = zygote.run("pipeline", "resume", str(pipeline), "--run-id", "h", cwd=tmp_path)
        assert refused.status == 2 and "job processes it started are still running" in \
            refused.stderr, refused.stderr
        groups = {os.getpgid(pid) for pid in processes_with(marker)}
        for group in groups:
            os.killpg(group, signal.SIGKILL)
        waited = wait_for(lambda: lock_is_free(lock), "the lock to free", limit=10)
        (tmp_path / "release").touch()
        resumed = zygote.run("pipeline", "resume", str(pipeline), "--run-id", "h", "-q",
                             cwd=tmp_path)
        assert resumed.status == 0, resumed.stderr
    finally:
        kill_marked(marker)
    records = [orjson.loads(line) for line in (runs_dir(tmp_path) / "h.jsonl").read_bytes()
               .splitlines()]
    assert [r["event"] for r in records if r.get("job") == "hold"][:2] == ["JobStarted",
                                                                          "JobInterrupted"]
    Tally("lock after kill -9", {"runner and job group killed; lock freed": 1}).save(
        **{"longest wait after the job group died (s)": round(waited, 3)})
