"""The run file's format: every line the engine writes, on real runs of the real `pt`.

Each line validates against schemas/event.schema.json, the `seq` has no gap, the `prev` chain is
intact, job lines carry the mission's fields, and the first line records what was run.
"""

from __future__ import annotations

import dataclasses
import getpass
import hashlib
import signal
import socket
from importlib import metadata
from pathlib import Path

import jsonschema
import orjson
import pytest

from pulsaride.engine.events import ADDED_FIELDS, EVENT_TYPES, JobEvent
from pulsaride.engine.loader import load_pipeline_file
from pulsaride.engine.transitions import TARGET
from pulsaride.schemas import load_schema
from tests.conftest import run_pt
from tests.runfile_checks import (
    check_run_file,
    events,
    line_count,
    schema_errors,
    start_pt,
    wait_until,
)

ENVELOPE = {"originator_id", "originator_version", "timestamp", "originator_topic"}


def run_path(pipeline: Path, run_id: str) -> Path:
    return pipeline.parent / ".pulsaride" / "pipeline-runs" / f"{run_id}.jsonl"


# ---- the schema itself --------------------------------------------------------------------


def test_the_schema_is_valid_2020_12_and_ships_with_the_package():
    schema = load_schema("event")
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["properties"]["event"]["enum"]) == set(EVENT_TYPES)


@pytest.mark.parametrize("name", sorted(EVENT_TYPES))
def test_the_schema_lists_exactly_the_fields_the_engine_writes(name):
    cls = EVENT_TYPES[name]
    written = {"seq", "event", "at", "pipeline_run_id", "prev"} | {
        f.name for f in dataclasses.fields(cls) if f.name not in ENVELOPE}
    if issubclass(cls, JobEvent):
        written.add("status")
    definition = load_schema("event")["$defs"][name]
    added = set(ADDED_FIELDS.get(name, {}))  # written only when not the default
    assert set(definition["properties"]) == written
    assert set(definition["required"]) == written - added
    assert definition["additionalProperties"] is False
    if issubclass(cls, JobEvent):
        assert definition["properties"]["status"] == {"const": TARGET[name].value}


def test_the_schema_refuses_lines_the_engine_never_writes(pipeline_file):
    path = pipeline_file("""\
        stages: [only]
        jobs:
          one: {stage: only, command: "true"}
        """)
    assert run_pt("pipeline", "run", str(path), "--run-id", "r1", cwd=path.parent).returncode == 0
    records = check_run_file(run_path(path, "r1"))
    done = next(r for r in records if r["event"] == "JobSucceeded")
    assert schema_errors(done) == []
    assert schema_errors({**done, "extra": 1}) != []
    assert schema_errors({**done, "status": "RUNNING"}) != []
    assert schema_errors({k: v for k, v in done.items() if k != "finished_at"}) != []
    assert schema_errors({**done, "seq": 0}) != []
    assert schema_errors({**done, "prev": "abc"}) != []
    assert schema_errors({**done, "at": "2026-04-07 14:00:00"}) != []
    assert schema_errors({**done, "event": "JobExploded"}) != []
    assert schema_errors({**records[0], "prev": "1" * 64}) != []


# ---- real runs ----------------------------------------------------------------------------

MIXED = """\
    version: "1.0"
    stages: [build, check, finish]
    variables: {MODE: test}
    jobs:
      ok: {stage: build, command: "echo ok"}
      flaky:
        stage: build
        command: "test -f flaky.ok || { touch flaky.ok; echo first try fails; exit 3; }"
        retry: 1
      broken:
        stage: check
        command: "test -f fixed || { echo broken >&2; exit 4; }"
        retry: {max: 1, delay: 0}
      after-broken: {stage: check, command: "echo never", needs: [broken]}
      later: {stage: finish, command: "echo later", timeout: 30s}
      cleanup: {stage: finish, command: "echo cleanup", when: always, needs: [after-broken]}
    """


def test_success_retry_failure_skip_and_resume_write_valid_lines(pipeline_file):
    path = pipeline_file(MIXED)
    first = run_pt("pipeline", "run", str(path), "--run-id", "mixed", "-j", "3", cwd=path.parent)
    assert first.returncode == 1, first.stderr
    records = check_run_file(run_path(path, "mixed"))
    assert events(records, "ok") == ["JobStarted", "JobSucceeded"]
    assert events(records, "flaky") == ["JobStarted", "JobRetrying", "JobStarted", "JobSucceeded"]
    assert events(records, "broken") == ["JobStarted", "JobRetrying", "JobStarted", "JobFailed"]
    assert events(records, "after-broken") == ["JobSkipped"]
    assert events(records, "cleanup") == ["JobStarted", "JobSucceeded"]
    finished = records[-2]
    assert finished["event"] == "RunFinished"
    assert records[-1]["event"] == "RunCheckpoint"
    assert finished["outcome"] == "failed"
    assert finished["counts"] == {"DONE": 4, "FAILED": 1, "SKIPPED": 1}
    failed = next(r for r in records if r["event"] == "JobFailed")
    assert failed["exit_code"] == 4
    assert failed["error"] == "exit code 4"
    assert failed["attempt"] == 2
    assert failed["status"] == "FAILED"
    assert failed["started_at"] <= failed["finished_at"]
    log = path.parent / ".pulsaride" / "pipeline-runs" / failed["log"]
    assert hashlib.sha256(log.read_bytes()).hexdigest() == failed["log_sha256"]
    skipped = next(r for r in records if r["event"] == "JobSkipped")
    assert skipped["cause"] == "broken"
    assert "broken" in skipped["reason"]

    (path.parent / "fixed").touch()
    second = run_pt("pipeline", "resume", str(path), "--run-id", "mixed", cwd=path.parent)
    assert second.returncode == 0, second.stderr
    records = check_run_file(run_path(path, "mixed"))
    resumed = next(r for r in records if r["event"] == "RunResumed")
    assert resumed["from_stage"] == "check"
    assert resumed["pipeline"] is None
    assert resumed["changes"] is None
    assert resumed["by"] == getpass.getuser()
    requeued = {r["job"]: r["previous"] for r in records if r["event"] == "JobRequeued"}
    assert requeued == {"broken": "FAILED", "after-broken": "SKIPPED"}
    # DONE jobs were not started again.
    assert events(records, "ok").count("JobStarted") == 1
    assert events(records, "cleanup").count("JobStarted") == 1
    assert events(records, "broken")[-2:] == ["JobStarted", "JobSucceeded"]
    assert [r["event"] for r in records[-2:]] == ["RunFinished", "RunCheckpoint"]
    assert records[-2]["outcome"] == "succeeded"


def test_the_first_line_records_what_was_run_by_whom_and_where(pipeline_file):
    path = pipeline_file(MIXED)
    (path.parent / "fixed").touch()
    result = run_pt("pipeline", "run", str(path), "--run-id", "first", "--parallelism", "2",
                    cwd=path.parent)
    assert result.returncode == 0, result.stderr
    first = check_run_file(run_path(path, "first"))[0]
    assert first["event"] == "RunStarted"
    assert first["seq"] == 1
    assert first["prev"] == "0" * 64
    assert first["pipeline"]["path"] == str(path.resolve())
    assert first["pipeline"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert first["pipeline"]["definition"] == load_pipeline_file(path).pipeline.definition()
    assert first["pipeline"]["definition"]["jobs"]["later"]["timeout"] == 30.0
    assert first["parameters"] == {"parallelism": 2, "wait_for_approval": True,
                                   "state_dir": str(path.parent / ".pulsaride")}
    assert first["started_by"] == getpass.getuser()
    assert first["host"] == socket.gethostname()
    assert first["tool_version"] == metadata.version("pulsaride")
    assert isinstance(first["pid"], int)
    assert "first" in result.stdout.splitlines()[0]  # the run id is printed first


def test_abort_cancels_running_and_pending_jobs_with_valid_lines(pipeline_file):
    path = pipeline_file("""\
        stages: [one, two]
        jobs:
          slow: {stage: one, command: "touch slow.started; while true; do sleep 0.05; done"}
          fatal:
            stage: one
            command: "while [ ! -f slow.started ]; do sleep 0.01; done; exit 7"
            on_failure: abort
          next: {stage: two, command: "echo next"}
        """)
    result = run_pt("pipeline", "run", str(path), "--run-id", "abort", cwd=path.parent)
    assert result.returncode == 1, result.stderr
    records = check_run_file(run_path(path, "abort"))
    aborted = next(r for r in records if r["event"] == "RunAborted")
    assert aborted["job"] == "fatal"
    assert events(records, "fatal") == ["JobStarted", "JobFailed"]
    assert events(records, "next") == ["JobCancelled"]
    assert events(records, "slow") == ["JobStarted", "JobCancelled"]
    cancelled = next(r for r in records if r["event"] == "JobCancelled" and r["job"] == "slow")
    assert cancelled["finished_at"] is not None
    assert cancelled["log"] == "abort/logs/slow/attempt-1.log"
    assert [r["event"] for r in records[-2:]] == ["RunFinished", "RunCheckpoint"]
    assert records[-2]["outcome"] == "aborted"


GATED = """\
    stages: [prep, cut]
    jobs:
      prep: {stage: prep, command: "echo prep"}
      gate: {stage: cut, command: "echo cut", when: manual, needs: [prep]}
      after-gate: {stage: cut, command: "echo after", needs: [gate]}
    """


def test_no_wait_suspends_then_approve_and_resume_write_valid_lines(pipeline_file):
    path = pipeline_file(GATED)
    run = run_pt("pipeline", "run", str(path), "--run-id", "gate", "--no-wait", cwd=path.parent)
    assert run.returncode == 3, run.stderr
    records = check_run_file(run_path(path, "gate"))
    assert records[-3]["event"] == "JobAwaitingApproval"
    assert records[-3]["status"] == "WAITING"
    assert records[-2]["event"] == "RunSuspended"
    assert records[-2]["waiting"] == ["gate"]
    assert records[-1]["event"] == "RunCheckpoint"
    assert records[0]["parameters"]["wait_for_approval"] is False

    approve = run_pt("pipeline", "approve", str(path), "--run-id", "gate", "--job", "gate",
                     "--as", "alice", "--reason", "change window open", cwd=path.parent)
    assert approve.returncode == 0, approve.stderr
    records = check_run_file(run_path(path, "gate"))
    approved = records[-2]
    assert approved["event"] == "JobApproved"
    assert records[-1]["event"] == "RunCheckpoint"
    assert approved["head"] == records[-2]["prev"]  # what the approver saw
    assert (approved["by"], approved["reason"], approved["status"]) == (
        "alice", "change window open", "APPROVED")

    resume = run_pt("pipeline", "resume", str(path), "--run-id", "gate", cwd=path.parent)
    assert resume.returncode == 0, resume.stderr
    records = check_run_file(run_path(path, "gate"))
    assert events(records, "gate") == ["JobAwaitingApproval", "JobApproved", "JobStarted",
                                       "JobSucceeded"]
    assert records[-2]["outcome"] == "succeeded"


def test_a_waiting_run_picks_an_approval_up_and_writes_valid_lines(pipeline_file):
    path = pipeline_file(GATED)
    runner = start_pt("pipeline", "run", str(path), "--run-id", "live", cwd=path.parent)
    try:
        file = run_path(path, "live")
        wait_until(lambda: b"JobAwaitingApproval" in file.read_bytes()
                   if file.exists() else False, "the gate to wait")
        approve = run_pt("pipeline", "approve", str(path), "--job", "gate", cwd=path.parent)
        assert approve.returncode == 0, approve.stderr
        assert runner.wait(timeout=60) == 0
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    records = check_run_file(file)
    assert "RunSuspended" not in events(records)
    assert records[-2]["outcome"] == "succeeded"


def test_reject_skips_the_gate_and_its_dependents_with_valid_lines(pipeline_file):
    path = pipeline_file(GATED)
    runner = start_pt("pipeline", "run", str(path), "--run-id", "no", cwd=path.parent)
    file = run_path(path, "no")
    try:
        wait_until(lambda: b"JobAwaitingApproval" in file.read_bytes()
                   if file.exists() else False, "the gate to wait")
        reject = run_pt("pipeline", "reject", str(path), "--run-id", "no", "--job", "gate",
                        "--reason", "not tonight", cwd=path.parent)
        assert reject.returncode == 0, reject.stderr
        assert runner.wait(timeout=60) == 1
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    records = check_run_file(file)
    rejected = next(r for r in records if r["event"] == "JobRejected")
    assert (rejected["status"], rejected["reason"]) == ("SKIPPED", "not tonight")
    skipped = next(r for r in records if r["event"] == "JobSkipped")
    assert (skipped["job"], skipped["cause"]) == ("after-gate", "gate")
    assert records[-2]["outcome"] == "rejected"


def test_an_interrupted_run_writes_valid_lines(pipeline_file):
    path = pipeline_file("""\
        stages: [only]
        jobs:
          wait: {stage: only, command: "while true; do sleep 0.05; done"}
        """)
    runner = start_pt("pipeline", "run", str(path), "--run-id", "stop", cwd=path.parent)
    file = run_path(path, "stop")
    wait_until(lambda: line_count(file) >= 2, "the job to start")
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=60) == 130
    records = check_run_file(file)
    assert events(records)[-3:] == ["JobCancelled", "RunInterrupted", "RunCheckpoint"]
    assert "SIGTERM" in records[-2]["reason"]


# ---- what changed, secrets, write-before-start --------------------------------------------


def test_resume_refuses_a_changed_file_unless_allowed_and_records_the_change(pipeline_file):
    path = pipeline_file("""\
        stages: [one, two]
        jobs:
          a: {stage: one, command: "echo a >> side.txt"}
          b: {stage: two, command: "exit 1"}
        """)
    first = run_pt("pipeline", "run", str(path), "--run-id", "chg", cwd=path.parent)
    assert first.returncode == 1, first.stderr
    old_sha = hashlib.sha256(path.read_bytes()).hexdigest()
    path.write_text(path.read_text().replace('"exit 1"', '"exit 0"'))
    new_sha = hashlib.sha256(path.read_bytes()).hexdigest()
    before = run_path(path, "chg").read_bytes()

    refused = run_pt("pipeline", "resume", str(path), "--run-id", "chg", cwd=path.parent)
    assert refused.returncode == 2
    assert "changed" in refused.stderr
    assert "job 'b': command changed" in refused.stderr
    assert "--allow-changed" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert run_path(path, "chg").read_bytes() == before  # nothing recorded

    allowed = run_pt("pipeline", "resume", str(path), "--run-id", "chg", "--allow-changed",
                     cwd=path.parent)
    assert allowed.returncode == 0, allowed.stderr
    records = check_run_file(run_path(path, "chg"))
    assert records[0]["pipeline"]["sha256"] == old_sha
    resumed = next(r for r in records if r["event"] == "RunResumed")
    assert resumed["changes"] == ["job 'b': command changed"]
    assert resumed["pipeline"]["sha256"] == new_sha
    assert resumed["pipeline"]["definition"]["jobs"]["b"]["command"] == "exit 0"
    assert records[-2]["outcome"] == "succeeded"
    assert (path.parent / "side.txt").read_text() == "a\n"


SECRET = "s3cr3t-value-123"
TOKEN_LINES = ("first-token-line-abc", "second-token-line-def")


def test_secrets_are_in_no_file_of_the_state_dir(pipeline_file):
    path = pipeline_file("""\
        stages: [only]
        variables: {API_KEY: pipeline-level-key-999}
        jobs:
          leak:
            stage: only
            command: |
              echo "password is $DB_PASSWORD"
              printf '%s\\n' "$MY_TOKEN"
              echo "key is $API_KEY"
              echo "to stderr $DB_PASSWORD" >&2
              exit 1
        """)
    env = {"DB_PASSWORD": SECRET, "MY_TOKEN": "\n".join(TOKEN_LINES)}
    result = run_pt("pipeline", "run", str(path), "--run-id", "sec", cwd=path.parent, env=env)
    assert result.returncode == 1, result.stderr
    secrets = [SECRET.encode(), *(t.encode() for t in TOKEN_LINES), b"pipeline-level-key-999"]
    state = path.parent / ".pulsaride"
    files = [p for p in state.rglob("*") if p.is_file()]
    assert len(files) >= 2
    for file in files:
        data = file.read_bytes()
        leaked = [s for s in secrets if s in data]
        assert leaked == [], f"{file} contains {leaked}"
    for stream in (result.stdout, result.stderr):
        assert not any(s.decode() in stream for s in secrets)
    log = (state / "pipeline-runs" / "sec" / "logs" / "leak" / "attempt-1.log").read_text()
    assert log.splitlines() == ["password is ***", "***", "***", "key is ***",
                                "to stderr ***"]
    records = check_run_file(run_path(path, "sec"))
    assert records[0]["pipeline"]["definition"]["variables"] == {"API_KEY": "***"}


def test_a_jobs_started_line_is_on_disk_before_its_process_starts(pipeline_file):
    copy = 'cp "$PT_STATE_DIR/pipeline-runs/$PT_RUN_ID.jsonl" "seen-$PT_JOB.jsonl"'
    path = pipeline_file(f"""\
        stages: [one, two]
        jobs:
          first: {{stage: one, command: '{copy}'}}
          second: {{stage: two, command: '{copy}', needs: [first]}}
        """)
    result = run_pt("pipeline", "run", str(path), "--run-id", "seen", cwd=path.parent)
    assert result.returncode == 0, result.stderr
    for job in ("first", "second"):
        seen = (path.parent / f"seen-{job}.jsonl").read_bytes()
        assert seen.endswith(b"\n")
        lines = [orjson.loads(line) for line in seen.splitlines()]
        assert lines[-1]["event"] == "JobStarted"
        assert lines[-1]["job"] == job
        assert lines[-1]["status"] == "RUNNING"
    second_saw = [orjson.loads(line) for line in
                  (path.parent / "seen-second.jsonl").read_bytes().splitlines()]
    assert ("first", "JobSucceeded") in [(r.get("job"), r["event"]) for r in second_saw]
    assert run_path(path, "seen").stat().st_size > len(
        (path.parent / "seen-second.jsonl").read_bytes())
