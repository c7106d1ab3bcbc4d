"""Durability of the run file, with real processes: kill -9 of the runner, torn and damaged
lines, and a run that is still active elsewhere.

Job commands append their name to side.txt (their "side effect"); whatever happens to the
runner, a job that was DONE is never executed again, so its name appears there exactly once.
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
from collections import Counter
from pathlib import Path

import orjson
import pytest

from tests.conftest import run_pt
from tests.runfile_checks import (
    check_run_file,
    events,
    line_count,
    lock_is_free,
    start_pt,
    wait_until,
)

# Appends the job's name to side.txt, then works a little; the job named by $BLOCK_JOB keeps
# running until the file `release` exists.
JOB_SCRIPT = """\
echo "$PT_JOB" >> side.txt
if [ "$PT_JOB" = "${BLOCK_JOB:-}" ]; then
  while [ ! -f release ]; do sleep 0.02; done
else
  sleep "$1"
fi
"""

ETL = """\
    stages: [extract, load, verify]
    jobs:
      ex-a: {stage: extract, command: "sh job.sh 0.15"}
      ex-b: {stage: extract, command: "sh job.sh 0.05"}
      load-a: {stage: load, command: "sh job.sh 0.1", needs: [ex-a]}
      load-b: {stage: load, command: "sh job.sh 0.1", needs: [load-a]}
      verify: {stage: verify, command: "sh job.sh 0.1"}
    """
JOBS = ("ex-a", "ex-b", "load-a", "load-b", "verify")


def runs_dir(pipeline: Path) -> Path:
    return pipeline.parent / ".pulsaride" / "pipeline-runs"


def side_effects(pipeline: Path) -> Counter[str]:
    side = pipeline.parent / "side.txt"
    return Counter(side.read_text().split()) if side.exists() else Counter()


def done_jobs(records: list[dict]) -> set[str]:
    return {r["job"] for r in records if r["event"] == "JobSucceeded"}


def kill_runner(runner: subprocess.Popen[str]) -> None:
    runner.send_signal(signal.SIGKILL)
    runner.wait(timeout=60)


@pytest.fixture
def etl(pipeline_file) -> Path:
    path = pipeline_file(ETL)
    (path.parent / "job.sh").write_text(JOB_SCRIPT)
    return path


def resume_to_the_end(path: Path, run_id: str) -> list[dict]:
    """Wait until the dead runner's jobs are gone, resume, and check the finished file."""
    wait_until(lambda: lock_is_free(runs_dir(path) / f"{run_id}.lock"),
               "the dead runner's job processes to end")
    resumed = run_pt("pipeline", "resume", str(path), "--run-id", run_id, "-q", cwd=path.parent)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    records = check_run_file(runs_dir(path) / f"{run_id}.jsonl")
    assert [r["event"] for r in records[-2:]] == ["RunFinished", "RunCheckpoint"]
    assert records[-2]["outcome"] == "succeeded"
    return records


@pytest.mark.parametrize("blocked", ["ex-b", "load-b", "verify"])
def test_kill_9_while_a_job_runs_then_resume_never_repeats_a_done_job(etl, blocked):
    runner = start_pt("pipeline", "run", str(etl), "--run-id", "k", "-q", cwd=etl.parent,
                      env={"BLOCK_JOB": blocked})
    try:
        wait_until(lambda: blocked in side_effects(etl), f"{blocked} to start")
    finally:
        kill_runner(runner)
    assert runner.returncode == -signal.SIGKILL
    before = check_run_file(runs_dir(etl) / "k.jsonl")
    assert "RunFinished" not in events(before)
    assert events(before, blocked)[-1] == "JobStarted"
    done_before = done_jobs(before)
    if blocked == "verify":
        assert done_before == {"ex-a", "ex-b", "load-a", "load-b"}

    # The blocked job's process still holds the run lock it inherited from the dead runner.
    refused = run_pt("pipeline", "resume", str(etl), "--run-id", "k", cwd=etl.parent)
    assert refused.returncode == 2
    assert "still locked" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert check_run_file(runs_dir(etl) / "k.jsonl") == before

    (etl.parent / "release").touch()
    records = resume_to_the_end(etl, "k")
    assert ("JobInterrupted", blocked) in [(r["event"], r.get("job")) for r in records]
    requeued = {r["job"]: r["previous"] for r in records if r["event"] == "JobRequeued"}
    assert requeued[blocked] == "INTERRUPTED"
    assert not done_before & set(requeued)
    effects = side_effects(etl)
    assert set(effects) == set(JOBS)
    for job in done_before:
        assert effects[job] == 1, (job, effects)
        assert events(records, job).count("JobStarted") == 1
    assert effects[blocked] == 2  # it was RUNNING, not DONE: it runs again


@pytest.mark.parametrize("after_lines", [1, 2, 4, 6, 8, 10])
def test_kill_9_after_the_nth_line_then_resume_completes_without_repeating_done_jobs(
        etl, after_lines):
    run_file = runs_dir(etl) / "n.jsonl"
    runner = start_pt("pipeline", "run", str(etl), "--run-id", "n", "-q", cwd=etl.parent)
    try:
        wait_until(lambda: line_count(run_file) >= after_lines or runner.poll() is not None,
                   f"line {after_lines}")
    finally:
        kill_runner(runner)
    before = check_run_file(run_file)
    done_before = done_jobs(before)

    records = resume_to_the_end(etl, "n")
    effects = side_effects(etl)
    assert set(effects) == set(JOBS)
    for job in done_before:
        assert effects[job] == 1, (job, effects)
        assert events(records, job).count("JobStarted") == 1
    for job in JOBS:
        assert events(records, job)[-1] == "JobSucceeded"


def test_kill_9_while_a_retry_waits_then_resume_keeps_the_retry(pipeline_file):
    path = pipeline_file("""\
        stages: [only]
        jobs:
          first: {stage: only, command: "echo first >> side.txt"}
          flaky:
            stage: only
            command: "echo flaky-$PT_ATTEMPT >> side.txt; test $PT_ATTEMPT -ge 2"
            retry: {max: 2, delay: 1s}
            needs: [first]
        """)
    run_file = runs_dir(path) / "r.jsonl"
    runner = start_pt("pipeline", "run", str(path), "--run-id", "r", "-q", cwd=path.parent)
    try:
        wait_until(lambda: run_file.exists() and b"JobRetrying" in run_file.read_bytes(),
                   "the first attempt to fail")
    finally:
        kill_runner(runner)
    records = resume_to_the_end(path, "r")
    effects = side_effects(path)
    assert effects["first"] == 1
    assert effects["flaky-1"] == 1
    assert events(records, "first") == ["JobStarted", "JobSucceeded"]
    assert events(records, "flaky")[:2] == ["JobStarted", "JobRetrying"]


def test_kill_9_while_waiting_at_a_gate_then_approve_and_resume(pipeline_file):
    path = pipeline_file("""\
        stages: [prep, cut]
        jobs:
          prep: {stage: prep, command: "echo prep >> side.txt"}
          gate: {stage: cut, command: "echo gate >> side.txt", when: manual, needs: [prep]}
        """)
    run_file = runs_dir(path) / "g.jsonl"
    runner = start_pt("pipeline", "run", str(path), "--run-id", "g", "-q", cwd=path.parent)
    try:
        wait_until(lambda: run_file.exists() and b"JobAwaitingApproval" in run_file.read_bytes(),
                   "the gate to wait")
    finally:
        kill_runner(runner)
    approve = run_pt("pipeline", "approve", str(path), "--run-id", "g", "--job", "gate",
                     cwd=path.parent)
    assert approve.returncode == 0, approve.stderr
    records = resume_to_the_end(path, "g")
    assert side_effects(path) == Counter({"prep": 1, "gate": 1})
    assert events(records, "gate") == ["JobAwaitingApproval", "JobApproved", "JobStarted",
                                       "JobSucceeded"]


# ---- torn and damaged lines ----------------------------------------------------------------

FAILS_ONCE = """\
    stages: [one, two]
    jobs:
      a: {stage: one, command: "echo a >> side.txt"}
      b: {stage: two, command: "echo b >> side.txt; test -f fixed"}
      c: {stage: two, command: "echo c >> side.txt", needs: [b]}
    """


@pytest.fixture
def failed_run(pipeline_file) -> Path:
    """A finished, failed run `f` (8 lines) whose failure a file `fixed` repairs."""
    path = pipeline_file(FAILS_ONCE)
    result = run_pt("pipeline", "run", str(path), "--run-id", "f", "-q", cwd=path.parent)
    assert result.returncode == 1, result.stderr
    records = check_run_file(runs_dir(path) / "f.jsonl")
    assert events(records) == ["RunStarted", "JobStarted", "JobSucceeded", "JobStarted",
                               "JobFailed", "JobSkipped", "RunFinished", "RunCheckpoint"]
    return path


def test_a_torn_last_line_is_reported_then_set_aside_and_recorded_by_resume(failed_run):
    path = failed_run
    run_file = runs_dir(path) / "f.jsonl"
    good = run_file.read_bytes()
    torn = b'{"seq":9,"event":"JobStarted","at":"2026-04-07T14:0'
    with run_file.open("ab") as handle:
        handle.write(torn)

    status = run_pt("pipeline", "status", str(path), cwd=path.parent)
    assert status.returncode == 0, status.stderr
    assert f"warning: {len(torn)} bytes after the last whole line" in status.stdout
    as_json = run_pt("pipeline", "status", str(path), "--json", cwd=path.parent)
    assert as_json.returncode == 0, as_json.stderr
    assert orjson.loads(as_json.stdout)["torn_tail_bytes"] == len(torn)
    assert run_file.read_bytes() == good + torn  # reading changes nothing

    (path.parent / "fixed").touch()
    resumed = run_pt("pipeline", "resume", str(path), "--run-id", "f", cwd=path.parent)
    assert resumed.returncode == 0, resumed.stderr
    sides = list(runs_dir(path).glob("f.jsonl.tail-*"))
    assert len(sides) == 1
    assert sides[0].read_bytes() == torn
    records = check_run_file(run_file)
    assert run_file.read_bytes().startswith(good)
    quarantined = records[8]
    assert quarantined["event"] == "TailQuarantined"
    assert quarantined["seq"] == 9
    assert quarantined["path"] == sides[0].name
    assert quarantined["size"] == len(torn)
    assert quarantined["sha256"] == hashlib.sha256(torn).hexdigest()
    assert records[9]["event"] == "RunResumed"
    assert records[-2]["outcome"] == "succeeded"
    assert side_effects(path) == Counter({"a": 1, "b": 2, "c": 1})


def _edit_byte(lines: list[bytes]) -> int:
    # A one-byte change that keeps the line valid JSON: the hash chain catches it at the next line.
    at = lines[2].index(b'"log_sha256":"') + len(b'"log_sha256":"')
    lines[2] = lines[2][:at] + (b"0" if lines[2][at:at + 1] != b"0" else b"1") + lines[2][at + 1:]
    return 4


def _break_json(lines: list[bytes]) -> int:
    lines[2] = b"X" + lines[2][1:]
    return 3


def _delete(lines: list[bytes]) -> int:
    del lines[2]
    return 3


def _swap(lines: list[bytes]) -> int:
    lines[2], lines[3] = lines[3], lines[2]
    return 3


def _edit_the_line_before_the_last(lines: list[bytes]) -> int:
    lines[-2] = lines[-2].replace(b'"outcome":"failed"', b'"outcome":"fixed!"', 1)
    return len(lines)


def _duplicate_the_last(lines: list[bytes]) -> int:
    lines.append(lines[-1])
    return len(lines)


@pytest.mark.parametrize("damage", [_edit_byte, _break_json, _delete, _swap,
                                    _edit_the_line_before_the_last, _duplicate_the_last])
def test_a_damaged_line_is_refused_naming_its_number(failed_run, damage):
    path = failed_run
    run_file = runs_dir(path) / "f.jsonl"
    lines = run_file.read_bytes().splitlines()
    line_no = damage(lines)
    damaged = b"\n".join(lines) + b"\n"
    run_file.write_bytes(damaged)
    (path.parent / "fixed").touch()

    for command in ("status", "resume"):
        result = run_pt("pipeline", command, str(path), "--run-id", "f", cwd=path.parent)
        assert result.returncode not in (0, 3), (command, result.stdout)
        message = result.stderr.splitlines()
        assert len(message) == 1, result.stderr
        assert message[0].startswith("pt: error: ")
        assert f"f.jsonl: line {line_no}: " in message[0]
        assert "Traceback" not in result.stderr
    assert run_file.read_bytes() == damaged  # refused, not repaired or skipped
    assert not list(runs_dir(path).glob("f.jsonl.tail-*"))
    assert side_effects(path) == Counter({"a": 1, "b": 1})


# ---- a run active elsewhere -----------------------------------------------------------------


def test_resume_refuses_while_the_run_is_active_in_another_process(pipeline_file):
    path = pipeline_file("""\
        stages: [only]
        jobs:
          hold: {stage: only, command: "while [ ! -f release ]; do sleep 0.02; done"}
        """)
    run_file = runs_dir(path) / "a.jsonl"
    runner = start_pt("pipeline", "run", str(path), "--run-id", "a", "-q", cwd=path.parent)
    try:
        wait_until(lambda: line_count(run_file) >= 2, "the job to start")
        before = run_file.read_bytes()
        refused = run_pt("pipeline", "resume", str(path), "--run-id", "a", cwd=path.parent)
        assert refused.returncode == 2
        assert "active in another process" in refused.stderr
        assert f"pid {runner.pid}" in refused.stderr
        assert len(refused.stderr.splitlines()) == 1
        assert run_file.read_bytes() == before
        status = run_pt("pipeline", "status", str(path), "--json", cwd=path.parent)
        assert orjson.loads(status.stdout)["active"] is True
    finally:
        (path.parent / "release").touch()
        assert runner.wait(timeout=60) == 0
    records = check_run_file(run_file)
    assert events(records, "hold") == ["JobStarted", "JobSucceeded"]
    finished = run_file.read_bytes()
    again = run_pt("pipeline", "resume", str(path), "--run-id", "a", cwd=path.parent)
    assert again.returncode == 0
    assert "already succeeded" in again.stderr
    assert run_file.read_bytes() == finished
