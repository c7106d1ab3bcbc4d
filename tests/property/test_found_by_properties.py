"""Counterexamples the property tests found, minimised, replayed through the real `pt` CLI.

1. A gate rejected while a run was suspended (--no-wait) was requeued by `resume` and asked
   for approval again, forever: the rejection had no effect in the CI flow.
2. `resume --allow-changed` with a job added to the file crashed with a traceback (KeyError).
3. `resume --allow-changed` with a job moved to a renamed stage crashed (ValueError), and a job
   moved to another stage kept writing its old stage in its lines.
4. A job dropped from the file while it was RUNNING when the runner died stayed RUNNING forever.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from pulsaride.engine.jsonl_store import RunLock
from tests.conftest import PT, run_lines, run_pt

WriteFile = Callable[..., Path]


def test_a_gate_rejected_while_suspended_stays_rejected_on_resume(
        pipeline_file: WriteFile) -> None:
    path = pipeline_file("""
        stages: [a, b]
        jobs:
          work: {stage: a, command: "true"}
          gate: {stage: b, command: "echo cut > cut.txt", needs: [work], when: manual}
          after: {stage: b, command: "true", needs: [gate]}
    """)
    folder = path.parent
    assert run_pt("pipeline", "run", path.name, "--run-id", "r", "--no-wait",
                  cwd=folder).returncode == 3
    assert run_pt("pipeline", "reject", path.name, "--job", "gate", cwd=folder).returncode == 0
    resume = run_pt("pipeline", "resume", path.name, "--run-id", "r", "--no-wait", cwd=folder)
    assert resume.returncode == 1, resume.stdout + resume.stderr
    lines = run_lines(folder / ".pulsaride")["r"]
    assert [ln["event"] for ln in lines if ln.get("job") == "gate"] == \
        ["JobAwaitingApproval", "JobRejected"]
    assert [ln["event"] for ln in lines[-2:]] == ["RunFinished", "RunCheckpoint"]
    assert lines[-2]["outcome"] == "rejected"
    assert not (folder / "cut.txt").exists()


def test_resume_allow_changed_with_an_added_job(pipeline_file: WriteFile) -> None:
    path = pipeline_file("""
        stages: [a, b]
        jobs:
          work: {stage: b, command: "test -f ready"}
    """)
    folder = path.parent
    assert run_pt("pipeline", "run", path.name, "--run-id", "r", cwd=folder).returncode == 1
    pipeline_file("""
        stages: [a, b]
        jobs:
          prepare: {stage: a, command: "touch ready"}
          work: {stage: b, command: "test -f ready"}
    """)
    resume = run_pt("pipeline", "resume", path.name, "--run-id", "r", "--allow-changed",
                    cwd=folder)
    assert resume.returncode == 0, resume.stdout + resume.stderr
    started = [ln["job"] for ln in run_lines(folder / ".pulsaride")["r"]
               if ln["event"] == "JobStarted"]
    assert started == ["work", "prepare", "work"]


def test_resume_allow_changed_with_a_job_moved_to_a_renamed_stage(
        pipeline_file: WriteFile) -> None:
    path = pipeline_file("""
        stages: [a, b]
        jobs:
          first: {stage: a, command: "true"}
          work: {stage: b, command: "false"}
    """)
    folder = path.parent
    assert run_pt("pipeline", "run", path.name, "--run-id", "r", cwd=folder).returncode == 1
    pipeline_file("""
        stages: [a, c]
        jobs:
          first: {stage: a, command: "true"}
          work: {stage: c, command: "true"}
    """)
    resume = run_pt("pipeline", "resume", path.name, "--run-id", "r", "--allow-changed",
                    cwd=folder)
    assert resume.returncode == 0, resume.stdout + resume.stderr
    lines = run_lines(folder / ".pulsaride")["r"]
    resumed = next(i for i, ln in enumerate(lines) if ln["event"] == "RunResumed")
    assert {ln["stage"] for ln in lines[resumed:] if ln.get("job") == "work"} == {"c"}
    assert [ln["job"] for ln in lines if ln["event"] == "JobStarted"] == \
        ["first", "work", "work"]


def test_a_dropped_job_left_running_by_a_dead_runner_is_interrupted(
        pipeline_file: WriteFile) -> None:
    path = pipeline_file("""
        stages: [a]
        jobs:
          slow: {stage: a, command: "echo $$ > slow.pid; exec sleep 60"}
          quick: {stage: a, command: "true"}
    """)
    folder = path.parent
    runner = subprocess.Popen([PT, "pipeline", "run", path.name, "--run-id", "r"], cwd=folder,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        pid_file = folder / "slow.pid"
        for _ in range(300):
            if pid_file.exists() and pid_file.read_text().strip():
                break
            time.sleep(0.05)
        runner.kill()  # kill -9 the runner, then its orphaned job (which holds the run's lock)
        runner.wait(timeout=30)
        os.killpg(int(pid_file.read_text()), signal.SIGKILL)
    finally:
        if runner.poll() is None:
            runner.kill()
    lock = folder / ".pulsaride" / "pipeline-runs" / "r.lock"
    for _ in range(300):  # the kernel frees the run's lock once the job's group is gone
        if not RunLock.is_held(lock):
            break
        time.sleep(0.05)
    pipeline_file("""
        stages: [a]
        jobs:
          quick: {stage: a, command: "true"}
    """)
    resume = run_pt("pipeline", "resume", path.name, "--run-id", "r", "--allow-changed",
                    cwd=folder)
    assert resume.returncode == 0, resume.stdout + resume.stderr
    slow = [ln for ln in run_lines(folder / ".pulsaride")["r"] if ln.get("job") == "slow"]
    assert [ln["event"] for ln in slow] == ["JobStarted", "JobInterrupted"]
