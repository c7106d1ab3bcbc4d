# ruff: noqa: E501  (pipeline files are written as readable one-line YAML jobs)
"""Gate policies through real processes: approvers, separate approvers, approval windows, and
what every decision (granted or refused) leaves in the run file.

Who acts is `--as WHO`, or else the OS user, which `pt` reads like getpass does: LOGNAME first.
Tests set LOGNAME to make the starter of a run a known person.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from pulsaride.engine.run_views import read_run
from pulsaride.projections.status import status_document
from tests.conftest import run_pt, wait_for_event

WriteFile = Callable[..., Path]
RUN = "gated"


def raw_lines(path: Path, run_id: str = RUN) -> list[bytes]:
    return (path.parent / ".pulsaride" / "pipeline-runs" / f"{run_id}.jsonl").read_bytes().splitlines()


def lines_of(path: Path, run_id: str = RUN) -> list[dict[str, Any]]:
    return [orjson.loads(raw) for raw in raw_lines(path, run_id)]


def pt(path: Path, *args: str, user: str = "olga") -> subprocess.CompletedProcess[str]:
    return run_pt(*args, cwd=path.parent, env={"LOGNAME": user})


def start_suspended(path: Path, user: str = "olga", run_id: str = RUN) -> None:
    """`pt pipeline run --no-wait`: the run stops at its gate with exit 3."""
    result = pt(path, "pipeline", "run", path.name, "--run-id", run_id, "--no-wait", "-q", user=user)
    assert result.returncode == 3, result.stdout + result.stderr


def decide(path: Path, verb: str, job: str, *extra: str, user: str = "olga",
           run_id: str = RUN) -> subprocess.CompletedProcess[str]:
    return pt(path, "pipeline", verb, path.name, "--run-id", run_id, "--job", job, *extra, user=user)


def refused(result: subprocess.CompletedProcess[str]) -> str:
    """The one error line of a refused decision (exit 2)."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("pt: error: ")
    assert line.endswith("(the attempt is recorded)")
    return line


def status_of(path: Path, job: str, run_id: str = RUN) -> dict[str, Any]:
    """The job as `pt pipeline status --json` shows it (in-process: saves a process per look)."""
    view = read_run(path, None, run_id)
    document = status_document(view.run, active=view.active, now=datetime.now(UTC))
    return next(j for stage in document["stages"] for j in stage["jobs"] if j["name"] == job)


def wait_until_past(moment: str) -> None:
    """Sleep until the wall clock is past `moment` (an approval window's end)."""
    end = datetime.fromisoformat(moment)
    while datetime.now(UTC) <= end:
        time.sleep(max(0.01, (end - datetime.now(UTC)).total_seconds() + 0.01))


# ---- approvers -------------------------------------------------------------------------------

APPROVERS = """
    stages: [prep, cutover]
    approvers: [alice, bob]
    jobs:
      prep: {stage: prep, command: "echo prep"}
      gate: {stage: cutover, command: "echo cut > cut.txt", needs: [prep], when: manual}
      after: {stage: cutover, command: "echo after", needs: [gate]}
"""


def test_a_non_approver_is_refused_recorded_and_the_waiting_run_goes_on_waiting(
        pipeline_file: WriteFile, background: Callable[..., subprocess.Popen[str]]) -> None:
    path = pipeline_file(APPROVERS)
    runner = background("pipeline", "run", path.name, "--run-id", RUN, cwd=path.parent,
                        env={"LOGNAME": "olga"})
    wait_for_event(path.parent, RUN, "JobAwaitingApproval", runner)

    line = refused(decide(path, "approve", "gate", "--as", "mallory", "--reason", "trust me"))
    assert line == ("pt: error: approval of 'gate' refused: mallory is not an approver of this "
                    "gate (approvers: alice, bob) (the attempt is recorded)")
    line = refused(decide(path, "reject", "gate", "--reason", "no"))  # the OS user, olga
    assert "rejection of 'gate' refused: olga is not an approver" in line
    assert status_of(path, "gate")["status"] == "WAITING"
    assert runner.poll() is None and not (path.parent / "cut.txt").exists()
    history = orjson.loads(pt(path, "pipeline", "history", path.name, "--json").stdout)
    (row,) = history["runs"]
    assert (row["outcome"], row["ended_at"], row["refused_approvals"]) == ("waiting for approval", None, 2)

    granted = decide(path, "approve", "gate", "--as", "bob", "--reason", "green")
    assert granted.returncode == 0, granted.stderr
    assert granted.stdout.strip() == f"gate approved by bob in run {RUN} (unauthenticated: the gate has no approver keys)"
    out, err = runner.communicate(timeout=60)
    assert runner.returncode == 0, out + err
    assert (path.parent / "cut.txt").exists()
    assert "✋ gate  approve by mallory refused: mallory is not an approver" in out

    lines = lines_of(path)
    refusals = [r for r in lines if r["event"] == "JobApprovalRefused"]
    assert [(r["job"], r["by"], r["decision"], r["status"], r["attempt"]) for r in refusals] == [
        ("gate", "mallory", "approve", "WAITING", 0), ("gate", "olga", "reject", "WAITING", 0)]
    assert refusals[0]["reason"] == "mallory is not an approver of this gate (approvers: alice, bob)"
    assert refusals[1]["reason"] == "olga is not an approver of this gate (approvers: alice, bob)"
    assert all(r["host"] for r in refusals)
    (approved,) = [r for r in lines if r["event"] == "JobApproved"]
    assert (approved["by"], approved["reason"]) == ("bob", "green")
    assert lines[-2]["outcome"] == "succeeded"


def test_job_level_approvers_override_the_pipeline_list(pipeline_file: WriteFile) -> None:
    path = pipeline_file("""
        stages: [one, two]
        approvers: [alice]
        jobs:
          dba-gate: {stage: one, command: "echo a", when: manual, approvers: [carol]}
          any-gate: {stage: two, command: "echo b", when: manual}
        """)
    start_suspended(path)
    assert "alice is not an approver of this gate (approvers: carol)" in refused(
        decide(path, "approve", "dba-gate", "--as", "alice"))
    assert decide(path, "approve", "dba-gate", "--as", "carol").returncode == 0
    resumed = pt(path, "pipeline", "resume", path.name, "--run-id", RUN, "--no-wait", "-q")
    assert resumed.returncode == 3, resumed.stdout + resumed.stderr
    assert "carol is not an approver of this gate (approvers: alice)" in refused(
        decide(path, "approve", "any-gate", "--as", "carol"))
    assert decide(path, "approve", "any-gate", "--as", "alice").returncode == 0
    decisions = [(r["event"], r["job"], r["by"]) for r in lines_of(path)
                 if r["event"] in ("JobApproved", "JobApprovalRefused")]
    assert decisions == [("JobApprovalRefused", "dba-gate", "alice"), ("JobApproved", "dba-gate", "carol"),
                         ("JobApprovalRefused", "any-gate", "carol"), ("JobApproved", "any-gate", "alice")]


SEPARATE = """
    stages: [one]
    approvers: [carol, dave]
    separate_approver: true
    jobs:
      gate: {stage: one, command: "echo go", when: manual}
"""


def test_the_starter_may_not_approve_a_separate_approver_gate_even_if_listed(pipeline_file: WriteFile) -> None:
    path = pipeline_file(SEPARATE)
    start_suspended(path, user="carol")
    assert lines_of(path)[0]["started_by"] == "carol"
    message = "carol started the run and this gate needs a separate approver"
    assert message in refused(decide(path, "approve", "gate", "--as", "carol"))
    assert message in refused(decide(path, "reject", "gate", user="carol"))  # the OS user
    assert status_of(path, "gate")["status"] == "WAITING"
    granted = decide(path, "approve", "gate", "--as", "dave", "--reason", "four eyes", user="carol")
    assert granted.returncode == 0, granted.stderr
    refusals = [(r["by"], r["decision"], r["reason"]) for r in lines_of(path)
                if r["event"] == "JobApprovalRefused"]
    assert refusals == [("carol", "approve", message), ("carol", "reject", message)]
    assert status_of(path, "gate")["approval"]["by"] == "dave"


def test_separate_approver_on_the_job_alone_lets_anyone_else_decide(pipeline_file: WriteFile) -> None:
    path = pipeline_file("""
        stages: [one]
        jobs:
          gate: {stage: one, command: "echo go", when: manual, separate_approver: true}
        """)
    start_suspended(path, user="erin")
    assert "erin started the run" in refused(decide(path, "reject", "gate", user="erin"))
    rejected = decide(path, "reject", "gate", "--reason", "no", user="frank")
    assert rejected.returncode == 0, rejected.stderr
    assert rejected.stdout.strip() == f"gate rejected by frank in run {RUN} (unauthenticated: the gate has no approver keys)"


# ---- approval windows ------------------------------------------------------------------------

EXPIRING = """
    stages: [one, two]
    jobs:
      prep: {{stage: one, command: "echo prep"}}
      gate: {{stage: one, command: "echo go > gate.txt", needs: [prep], when: manual, expires_in: 500ms, on_expiry: {on_expiry}}}
      after: {{stage: two, command: "echo after > after.txt", needs: [gate]}}
      independent: {{stage: two, command: "echo independent"}}
"""


def test_an_unanswered_gate_fails_when_its_window_closes(pipeline_file: WriteFile) -> None:
    path = pipeline_file(EXPIRING.format(on_expiry="fail"))
    result = pt(path, "pipeline", "run", path.name, "--run-id", RUN)  # waits, then expires
    assert result.returncode == 1, result.stdout + result.stderr
    lines = lines_of(path)
    waiting = next(r for r in lines if r["event"] == "JobAwaitingApproval")
    opened = datetime.fromisoformat(waiting["at"])
    assert (datetime.fromisoformat(waiting["expires_at"]) - opened).total_seconds() == 0.5
    failed = next(r for r in lines if r["event"] == "JobFailed")
    why = f"no decision within 0.5s (approval window closed at {waiting['expires_at']})"
    assert (failed["job"], failed["status"], failed["error"]) == ("gate", "FAILED", why)
    assert failed["started_at"] is None and failed["finished_at"] is not None
    assert datetime.fromisoformat(failed["at"]) >= datetime.fromisoformat(waiting["expires_at"])
    skipped = next(r for r in lines if r["event"] == "JobSkipped")
    assert (skipped["job"], skipped["cause"], skipped["reason"]) == ("after", "gate", "needs gate (FAILED)")
    assert lines[-2]["outcome"] == "failed"
    assert not (path.parent / "gate.txt").exists() and not (path.parent / "after.txt").exists()
    assert re.search(rf"✗ gate +failed: {re.escape(why)}\n", result.stdout), result.stdout
    assert "(log: None)" not in result.stdout
    gate = status_of(path, "gate")
    assert (gate["status"], gate["error"]) == ("FAILED", why)
    # Too late: the gate is no longer waiting.
    late = decide(path, "approve", "gate", "--as", "alice")
    assert late.returncode == 2
    assert "is not waiting for approval: it is FAILED" in late.stderr


def test_an_unanswered_gate_with_on_expiry_skip_is_skipped(pipeline_file: WriteFile) -> None:
    path = pipeline_file(EXPIRING.format(on_expiry="skip"))
    result = pt(path, "pipeline", "run", path.name, "--run-id", RUN)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    lines = lines_of(path)
    waiting = next(r for r in lines if r["event"] == "JobAwaitingApproval")
    skips = {r["job"]: r for r in lines if r["event"] == "JobSkipped"}
    assert skips["gate"]["reason"] == (
        f"no decision within 0.5s (approval window closed at {waiting['expires_at']})")
    assert skips["gate"]["cause"] == "gate"
    assert (skips["after"]["cause"], skips["after"]["reason"]) == ("gate", "needs gate (SKIPPED)")
    assert not any(r["event"] == "JobFailed" for r in lines)
    assert status_of(path, "gate")["status"] == "SKIPPED"
    assert status_of(path, "independent")["status"] == "DONE"
    assert not (path.parent / "gate.txt").exists()


def test_an_approval_after_the_window_closed_is_refused_and_the_gate_expires_on_resume(
        pipeline_file: WriteFile) -> None:
    path = pipeline_file(EXPIRING.format(on_expiry="fail"))
    start_suspended(path)
    waiting = next(r for r in lines_of(path) if r["event"] == "JobAwaitingApproval")
    wait_until_past(waiting["expires_at"])
    line = refused(decide(path, "approve", "gate", "--as", "alice", "--reason", "sorry, late"))
    assert f"approval of 'gate' refused: the approval window closed at {waiting['expires_at']}" in line
    refusal = lines_of(path)[-1]
    assert (refusal["event"], refusal["by"], refusal["decision"]) == ("JobApprovalRefused", "alice", "approve")
    assert refusal["reason"] == f"the approval window closed at {waiting['expires_at']}"

    resumed = pt(path, "pipeline", "resume", path.name, "--run-id", RUN, "-q")
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr
    lines = lines_of(path)
    after_resume = lines[next(i for i, r in enumerate(lines) if r["event"] == "RunResumed"):]
    failed = next(r for r in after_resume if r["event"] == "JobFailed")
    assert failed["job"] == "gate"
    assert failed["error"] == f"no decision within 0.5s (approval window closed at {waiting['expires_at']})"
    assert {r["job"] for r in after_resume if r["event"] == "JobSkipped"} == {"after"}
    assert not any(r["event"] == "JobStarted" and r["job"] == "gate" for r in lines)
    assert lines[-2]["outcome"] == "failed"


def test_a_no_wait_run_whose_window_passed_unanswered_expires_on_resume(pipeline_file: WriteFile) -> None:
    path = pipeline_file(EXPIRING.format(on_expiry="skip"))
    start_suspended(path)
    waiting = next(r for r in lines_of(path) if r["event"] == "JobAwaitingApproval")
    wait_until_past(waiting["expires_at"])
    resumed = pt(path, "pipeline", "resume", path.name, "--run-id", RUN, "--no-wait", "-q")
    assert resumed.returncode in (0, 1), resumed.stdout + resumed.stderr  # not 3: nothing waits
    skips = {r["job"]: r["reason"] for r in lines_of(path) if r["event"] == "JobSkipped"}
    assert skips["gate"].startswith("no decision within 0.5s")
    assert status_of(path, "gate")["status"] == "SKIPPED"


# ---- what a decision records -----------------------------------------------------------------

PLAIN = """
    stages: [one, two]
    jobs:
      first-gate: {stage: one, command: "echo a", when: manual}
      second-gate: {stage: two, command: "echo b", when: manual}
"""


def test_a_decision_records_who_when_why_and_the_head_it_saw_then_a_checkpoint(pipeline_file: WriteFile) -> None:
    path = pipeline_file(PLAIN)
    start_suspended(path, user="olga")
    before = datetime.now(UTC)
    approve = decide(path, "approve", "first-gate", "--reason", "looks right", "--json", user="olga")
    assert approve.returncode == 0, approve.stderr
    answer = orjson.loads(approve.stdout)
    resumed = pt(path, "pipeline", "resume", path.name, "--run-id", RUN, "--no-wait", "-q")
    assert resumed.returncode == 3, resumed.stdout + resumed.stderr
    assert decide(path, "reject", "second-gate", "--as", "victor", "--reason", "not now").returncode == 0

    raw = raw_lines(path)
    lines = [orjson.loads(line) for line in raw]
    for event, job, by, reason in (("JobApproved", "first-gate", "olga", "looks right"),
                                   ("JobRejected", "second-gate", "victor", "not now")):
        index = next(i for i, r in enumerate(lines) if r["event"] == event)
        record = lines[index]
        assert (record["job"], record["by"], record["reason"]) == (job, by, reason)
        assert record["host"]
        assert datetime.fromisoformat(record["at"]) >= before
        # head: the digest of the line before it, the chain head the approver saw.
        assert record["head"] == record["prev"] == hashlib.sha256(raw[index - 1]).hexdigest()
        checkpoint = lines[index + 1]
        assert checkpoint["event"] == "RunCheckpoint"
        assert checkpoint["prev"] == hashlib.sha256(raw[index]).hexdigest()
        verb = "approved" if event == "JobApproved" else "rejected"
        assert checkpoint["reason"] == f"{job} {verb} by {by}"
    approved = next(r for r in lines if r["event"] == "JobApproved")
    assert answer == {"pipeline_run_id": RUN, "job": "first-gate", "decision": "approved",
                      "by": "olga", "at": approved["at"], "reason": "looks right",
                      "authenticated": False, "key_fingerprint": None}


# ---- validation ------------------------------------------------------------------------------


def test_gate_keys_on_jobs_that_are_not_manual_are_refused(pipeline_file: WriteFile) -> None:
    keys = {"approvers": "[alice]", "separate_approver": "true", "expires_in": "5m",
            "on_expiry": "skip"}
    jobs = "".join(f"\n  job-{n}: {{stage: one, command: 'echo x', {key}: {value}}}"
                   for n, (key, value) in enumerate(keys.items()))
    path = pipeline_file("stages: [one]\njobs:" + jobs + "\n")
    for command in ("validate", "run"):
        result = pt(path, "pipeline", command, path.name)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        for n, key in enumerate(keys):  # every problem, at once
            assert f"job 'job-{n}': {key} applies only to manual jobs (when: manual)" in result.stderr
    assert not (path.parent / ".pulsaride").exists()


def test_malformed_gate_keys_are_refused(pipeline_file: WriteFile) -> None:
    specs = {"expires_in": "soon", "on_expiry": "maybe", "approvers": "alice",
             "separate_approver": "3"}
    jobs = "".join(f"\n  gate-{key}: {{stage: one, command: 'echo x', when: manual, {key}: {value}}}"
                   for key, value in specs.items())
    path = pipeline_file("stages: [one]\njobs:" + jobs + "\n")
    result = pt(path, "pipeline", "validate", path.name)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for key in specs:
        assert f"gate-{key}" in result.stderr and key in result.stderr
