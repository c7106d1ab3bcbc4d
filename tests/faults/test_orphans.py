"""Orphans and timeouts: a timed-out job leaves no process behind, however it spawned its
children; a job that was RUNNING when its runner died is never started twice at once.

Every process a test starts carries a unique marker in its environment (a pipeline variable),
so `processes_with(marker)` finds exactly what the test started (pgrep-like, over /proc).
tests/cli/test_cli_execution.py already covers one child under a timeout, abort, signals and a
child that ignores SIGTERM; this family adds process trees of every common shape (daemons that
left the job's process group among them), repeated, and the never-twice-at-once property under
kill -9.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import orjson
import pytest

from tests.runfile_checks import check_run_file

from .conftest import Tally, Zygote, kill_marked, processes_with, size, wait_for

# Process trees a job may build; each is run under `timeout: 0.5s`.
SHAPES = {
    "two-children": "sleep 30 & sleep 30 & wait",
    "grandchildren": "sh -c 'sleep 30 & sleep 30 & wait' & sh -c 'sleep 30' & wait",
    "subshell-orphan": "(sleep 30 &) ; (sleep 30 &) ; sleep 30",
    "pipeline": "sleep 30 | cat | cat",
    "exec": "exec sleep 30",
    "busy-loop": "while :; do :; done",
    "output-holder": "sleep 30 > /dev/null 2>&1 & sleep 30",
    "nohup": "nohup sleep 30 > /dev/null 2>&1 & wait",
    # Out of the job's process group: found by the attempt's tag in their environment.
    "setsid": "setsid sleep 30 & sleep 30",
    "daemon": "setsid sh -c 'sleep 30 &' < /dev/null > /dev/null 2>&1; sleep 30",
    "setsid-ignoring-term": ("setsid sh -c 'trap \"\" TERM; exec sleep 30' > /dev/null 2>&1 & "
                             "sleep 30"),
}


def _tree_pipeline(marker: str) -> str:
    lines = ["stages: [s]", f"variables: {{FAULT_MARK: {marker}}}", "jobs:"]
    for name, command in SHAPES.items():
        lines.append(f"  {name}: {{stage: s, command: {orjson.dumps(command).decode()}, "
                     "timeout: 0.5s}")
    return "\n".join(lines) + "\n"


def _gone(marker: str) -> list[int]:
    """Processes still carrying `marker` once the kernel had a moment to reap (bounded)."""
    deadline = time.monotonic() + 5
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.01)
    return processes_with(marker)


def _marker() -> str:
    return f"pt-fault-{os.getpid()}-{time.monotonic_ns()}"


def test_timed_out_process_trees_leave_nothing_behind(zygote: Zygote, tmp_path: Path) -> None:
    tally = Tally("orphans")
    for trial in range(size("orphans", ci=2, full=20)):
        marker = _marker()
        folder = tmp_path / f"t{trial}"
        folder.mkdir()
        pipeline = folder / "pulsaride-pipeline.yml"
        pipeline.write_text(_tree_pipeline(marker))
        try:
            run = zygote.run("pipeline", "run", str(pipeline), "-q", "-j", str(len(SHAPES)),
                             cwd=folder, timeout=60)
            assert run.status == 1, run.stderr
            # The runner has reported every job; give the kernel a moment to reap, then look.
            assert _gone(marker) == [], "processes left behind"
        finally:
            kill_marked(marker)
        records = check_run_file(next((folder / ".pulsaride/pipeline-runs").glob("*.jsonl")))
        failed = {r["job"]: r["error"] for r in records if r["event"] == "JobFailed"}
        assert set(failed) == set(SHAPES)
        assert all(error.startswith("timed out after 0.5s") for error in failed.values())
        tally.add("timed-out process trees", len(SHAPES))
    tally.save(**{"processes left behind": 0})


def test_a_process_that_sheds_its_environment_and_group_keeps_the_run_locked(
        zygote: Zygote, tmp_path: Path) -> None:
    """The known limit (ADR 0004): a process that leaves the job's process group *and* clears
    its environment (the attempt's tag with it) cannot be found by the timeout; it still holds
    the run lock it inherited, and the run says so instead of being resumed under it."""
    marker = _marker()
    pipeline = tmp_path / "pulsaride-pipeline.yml"
    pipeline.write_text(f"""\
stages: [s]
variables: {{FAULT_MARK: {marker}}}
jobs:
  daemon: {{stage: s, command: "env -i FAULT_MARK=$FAULT_MARK setsid sleep 30 & sleep 30",
            timeout: 0.5s}}
""")
    try:
        run = zygote.run("pipeline", "run", str(pipeline), "--run-id", "d", "-q", cwd=tmp_path)
        assert run.status == 1
        assert len(processes_with(marker)) == 1, "the untagged setsid'd sleep escaped"
        refused = zygote.run("pipeline", "resume", str(pipeline), "--run-id", "d", cwd=tmp_path)
        assert refused.status == 2
        assert "job processes it started are still running" in refused.stderr
    finally:
        kill_marked(marker)
    Tally("orphans", {"known limit pinned: setsid with a cleared environment escapes": 1}).save()


SOLO = """\
stages: [s, t]
variables: {FAULT_MARK: %s}
jobs:
  solo:
    stage: s
    command: >-
      mkdir solo.running || { echo overlap >> overlap.txt; exit 9; };
      echo "solo $PT_ATTEMPT" >> side.txt; sleep 2; rmdir solo.running
  after: {stage: t, command: "echo after >> side.txt", needs: [solo]}
"""


@pytest.mark.slow
def test_a_job_running_when_its_runner_died_never_runs_twice_at_once(zygote: Zygote,
                                                                      tmp_path: Path) -> None:
    tally = Tally("never twice at once")
    for trial in range(size("solo", ci=4, full=40)):
        marker = _marker()
        folder = tmp_path / f"t{trial}"
        folder.mkdir()
        pipeline = str(folder / "pulsaride-pipeline.yml")
        Path(pipeline).write_text(SOLO % marker)
        runner = zygote.spawn("pipeline", "run", pipeline, "--run-id", "s", "-q", cwd=folder)
        try:
            wait_for((folder / "solo.running").exists, "solo to start")
            assert runner.kill()
            # Resume again and again while the dead runner's `solo` still runs (2 s; a resume
            # looks for up to a second before it gives up): every attempt is refused until it
            # has ended; then one takes over and runs it again, alone.
            refusals = 0
            while True:
                resumed = zygote.run("pipeline", "resume", pipeline, "--run-id", "s", "-q",
                                     cwd=folder)
                if resumed.status != 2:
                    break
                assert "job processes it started are still running" in resumed.stderr
                refusals += 1
            assert resumed.status == 0, resumed.stderr
        finally:
            kill_marked(marker)
        assert not (folder / "overlap.txt").exists(), "solo ran twice at once"
        side = (folder / "side.txt").read_text().split("\n")
        assert side[:3] == ["solo 1", "solo 2", "after"], side
        records = check_run_file(folder / ".pulsaride/pipeline-runs/s.jsonl")
        solo = [r["event"] for r in records if r.get("job") == "solo"]
        assert solo == ["JobStarted", "JobInterrupted", "JobRequeued", "JobStarted",
                        "JobSucceeded"]
        tally.add("runner killed while a job ran")
        tally.add("resumes refused while the old job ran", refusals)
    tally.save(**{"jobs started twice at once": 0})
