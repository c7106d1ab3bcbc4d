# ruff: noqa: E501  (pipeline files are written as readable one-line YAML jobs)
"""Manual gates through real processes: one `pt pipeline run` waits, another approves or rejects."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from tests.conftest import (
    jobs_of,
    one_error_line,
    run_lines,
    run_pt,
    status_json,
    wait_for_event,
)

WriteFile = Callable[..., Path]

GATED = """
    stages: [migrate, cutover]
    jobs:
      migrate: {stage: migrate, command: "echo migrated > migrated.txt"}
      cutover-gate: {stage: cutover, command: "echo cut >> cutover.txt", needs: [migrate], when: manual, on_failure: abort}
      announce: {stage: cutover, command: "echo announced > announced.txt", needs: [cutover-gate]}
"""


def lines_of(folder: Path, run_id: str) -> list[dict[str, Any]]:
    return run_lines(folder / ".pulsaride").get(run_id, [])


# ---- waiting, approving in another process -----------------------------------------------


def test_run_waits_at_the_gate_prints_the_approve_command_and_continues_when_approved(
        pipeline_file: WriteFile, background: Callable[..., subprocess.Popen[str]]) -> None:
    path = pipeline_file(GATED)
    folder = path.parent
    runner = background("pipeline", "run", path.name, "--run-id", "gate-1", cwd=folder)
    wait_for_event(folder, "gate-1", "JobAwaitingApproval", runner)
    assert not (folder / "cutover.txt").exists()
    waiting = status_json(path)
    assert waiting["state"] == "waiting for approval"
    assert waiting["active"] is True
    assert jobs_of(waiting)["cutover-gate"]["status"] == "WAITING"

    # Run the very command the waiting run printed, with who and why added.
    printed = f"pt pipeline approve {path.name} --run-id gate-1 --job cutover-gate"
    command = shlex.split(printed)[1:]
    approve = run_pt(*command, "--as", "alice", "--reason", "ok", cwd=folder)
    assert approve.returncode == 0, approve.stderr
    assert approve.stdout.strip() == "cutover-gate approved by alice in run gate-1 (unauthenticated: the gate has no approver keys)"

    out, err = runner.communicate(timeout=30)
    assert runner.returncode == 0, out + err
    assert printed in out  # the exact approve command was shown while it waited
    assert printed.replace(" approve ", " reject ") in out
    assert (folder / "cutover.txt").read_text() == "cut\n"
    assert (folder / "announced.txt").exists()
    jobs = jobs_of(status_json(path))
    assert jobs["cutover-gate"]["status"] == "DONE"
    approval = jobs["cutover-gate"]["approval"]
    assert approval["decision"] == "approved"
    assert approval["by"] == "alice"
    assert approval["reason"] == "ok"
    assert approval["at"]
    text = run_pt("pipeline", "status", str(path), cwd=folder).stdout
    assert "approved by alice (unauthenticated): ok" in text
    # The evidence line of the approval, written by the approving process.
    approved = [ln for ln in lines_of(folder, "gate-1") if ln["event"] == "JobApproved"]
    assert len(approved) == 1
    assert (approved[0]["by"], approved[0]["reason"], approved[0]["job"]) == \
        ("alice", "ok", "cutover-gate")


def test_reject_skips_the_gate_and_its_dependents_exit_1(
        pipeline_file: WriteFile, background: Callable[..., subprocess.Popen[str]]) -> None:
    path = pipeline_file(GATED)
    folder = path.parent
    runner = background("pipeline", "run", path.name, "--run-id", "gate-2", cwd=folder)
    wait_for_event(folder, "gate-2", "JobAwaitingApproval", runner)
    reject = run_pt("pipeline", "reject", path.name, "--job", "cutover-gate", "--as", "bob",
                    "--reason", "numbers do not match", cwd=folder)
    assert reject.returncode == 0, reject.stderr
    assert reject.stdout.strip() == "cutover-gate rejected by bob in run gate-2 (unauthenticated: the gate has no approver keys)"
    out, err = runner.communicate(timeout=30)
    assert runner.returncode == 1, out + err
    assert not (folder / "cutover.txt").exists()
    assert not (folder / "announced.txt").exists()
    document = status_json(path)
    assert document["state"] == "rejected"
    jobs = jobs_of(document)
    assert jobs["cutover-gate"]["status"] == "SKIPPED"
    assert jobs["cutover-gate"]["approval"] == {
        "decision": "rejected", "by": "bob", "at": jobs["cutover-gate"]["approval"]["at"],
        "reason": "numbers do not match", "authenticated": False, "key_fingerprint": None,
        "signers": []}
    assert jobs["announce"]["status"] == "SKIPPED"
    assert jobs["announce"]["cause"] == "cutover-gate"
    assert jobs["migrate"]["status"] == "DONE"


def test_approve_picks_the_latest_run_when_no_run_id_is_given(
        pipeline_file: WriteFile) -> None:
    path = pipeline_file(GATED)
    folder = path.parent
    first = run_pt("pipeline", "run", path.name, "--run-id", "old", "--no-wait", cwd=folder)
    second = run_pt("pipeline", "run", path.name, "--run-id", "new", "--no-wait", cwd=folder)
    assert (first.returncode, second.returncode) == (3, 3)
    approve = run_pt("pipeline", "approve", path.name, "--job", "cutover-gate", cwd=folder)
    assert approve.returncode == 0, approve.stderr
    assert "in run new" in approve.stdout
    assert jobs_of(status_json(path, "--run-id", "old"))["cutover-gate"]["status"] == "WAITING"
    assert jobs_of(status_json(path, "--run-id", "new"))["cutover-gate"]["status"] == "APPROVED"


def test_approve_as_json(pipeline_file: WriteFile) -> None:
    path = pipeline_file(GATED)
    assert run_pt("pipeline", "run", path.name, "--run-id", "j", "--no-wait",
                  cwd=path.parent).returncode == 3
    result = run_pt("pipeline", "approve", path.name, "--job", "cutover-gate", "--as", "carol",
                    "--json", cwd=path.parent)
    assert result.returncode == 0
    document = orjson.loads(result.stdout)
    assert {k: document[k] for k in ("pipeline_run_id", "job", "decision", "by", "reason")} == \
        {"pipeline_run_id": "j", "job": "cutover-gate", "decision": "approved", "by": "carol",
         "reason": ""}


# ---- approving what is not waiting -------------------------------------------------------


TWO_GATES = """
    stages: [s, g1, g2]
    jobs:
      work:  {stage: s, command: "true"}
      first-gate: {stage: g1, command: "true", needs: [work], when: manual}
      second-gate: {stage: g2, command: "true", needs: [first-gate], when: manual}
"""


def test_deciding_a_job_that_is_not_waiting_is_a_clear_error(pipeline_file: WriteFile) -> None:
    path = pipeline_file(TWO_GATES)
    folder = path.parent
    assert run_pt("pipeline", "run", path.name, "--run-id", "gw", "--no-wait",
                  cwd=folder).returncode == 3
    before = (folder / ".pulsaride/pipeline-runs/gw.jsonl").read_bytes()
    cases = [
        ("approve", "work", "job 'work' is not a manual job (manual jobs: first-gate, second-gate)"),
        ("reject", "work", "job 'work' is not a manual job"),
        ("approve", "nope", "run gw has no job 'nope' (manual jobs: first-gate, second-gate)"),
        ("reject", "nope", "run gw has no job 'nope'"),
        ("approve", "second-gate", "job 'second-gate' is not waiting for approval: it is PENDING"),
        ("reject", "second-gate", "job 'second-gate' is not waiting for approval: it is PENDING"),
    ]
    for verb, job, expected in cases:
        result = run_pt("pipeline", verb, path.name, "--job", job, cwd=folder)
        assert result.returncode == 2, (verb, job)
        assert expected in one_error_line(result), (verb, job)
    assert (folder / ".pulsaride/pipeline-runs/gw.jsonl").read_bytes() == before


def test_approving_twice_is_a_clear_error_naming_the_first_decision(
        pipeline_file: WriteFile) -> None:
    path = pipeline_file(TWO_GATES)
    folder = path.parent
    assert run_pt("pipeline", "run", path.name, "--run-id", "tw", "--no-wait",
                  cwd=folder).returncode == 3
    ok = run_pt("pipeline", "approve", path.name, "--job", "first-gate", "--as", "alice",
                cwd=folder)
    assert ok.returncode == 0
    again = run_pt("pipeline", "approve", path.name, "--job", "first-gate", "--as", "bob",
                   cwd=folder)
    assert again.returncode == 2
    line = one_error_line(again)
    assert "not waiting for approval: it is APPROVED (approved by alice" in line
    refuse = run_pt("pipeline", "reject", path.name, "--job", "first-gate", cwd=folder)
    assert refuse.returncode == 2
    # After the run went through the gate, approving it again still refuses (DONE).
    assert run_pt("pipeline", "resume", path.name, "--run-id", "tw", "--no-wait",
                  cwd=folder).returncode == 3
    done = run_pt("pipeline", "approve", path.name, "--job", "first-gate", cwd=folder)
    assert done.returncode == 2
    assert "it is DONE" in one_error_line(done)


def test_approve_without_any_run_is_a_clear_error(pipeline_file: WriteFile) -> None:
    path = pipeline_file(TWO_GATES)
    result = run_pt("pipeline", "approve", path.name, "--job", "first-gate", cwd=path.parent)
    assert result.returncode == 2
    assert "no run of" in one_error_line(result)


# ---- --no-wait ---------------------------------------------------------------------------


def test_no_wait_stops_with_exit_3_and_approve_plus_resume_completes_the_run(
        pipeline_file: WriteFile) -> None:
    path = pipeline_file(GATED)
    folder = path.parent
    first = run_pt("pipeline", "run", path.name, "--run-id", "ci-1", "--no-wait", cwd=folder)
    assert first.returncode == 3, first.stdout + first.stderr
    assert f"pt pipeline approve {path.name} --run-id ci-1 --job cutover-gate" in first.stdout
    assert f"pt pipeline resume {path.name} --run-id ci-1" in first.stdout
    assert (folder / "migrated.txt").exists()
    assert not (folder / "cutover.txt").exists()
    suspended = status_json(path)
    assert suspended["state"] == "awaiting approval"
    assert suspended["active"] is False
    assert [ln["event"] for ln in lines_of(folder, "ci-1")][-2:] == ["RunSuspended", "RunCheckpoint"]

    approve = run_pt("pipeline", "approve", path.name, "--job", "cutover-gate", "--as", "alice",
                     "--reason", "change ticket 42", cwd=folder)
    assert approve.returncode == 0, approve.stderr
    resume = run_pt("pipeline", "resume", path.name, "--run-id", "ci-1", cwd=folder)
    assert resume.returncode == 0, resume.stdout + resume.stderr
    assert (folder / "cutover.txt").read_text() == "cut\n"
    assert (folder / "announced.txt").exists()
    # migrate ran once, in the first process only.
    lines = lines_of(folder, "ci-1")
    assert [ln["job"] for ln in lines if ln["event"] == "JobStarted"] == \
        ["migrate", "cutover-gate", "announce"]
    document = status_json(path)
    assert document["state"] == "succeeded"
    assert jobs_of(document)["cutover-gate"]["approval"]["reason"] == "change ticket 42"


def test_resume_with_no_wait_of_a_still_waiting_gate_exits_3_again(
        pipeline_file: WriteFile) -> None:
    path = pipeline_file(GATED)
    folder = path.parent
    assert run_pt("pipeline", "run", path.name, "--run-id", "w", "--no-wait",
                  cwd=folder).returncode == 3
    again = run_pt("pipeline", "resume", path.name, "--run-id", "w", "--no-wait", cwd=folder)
    assert again.returncode == 3
    assert jobs_of(status_json(path))["cutover-gate"]["status"] == "WAITING"
    starts = [ln["job"] for ln in lines_of(folder, "w") if ln["event"] == "JobStarted"]
    assert starts == ["migrate"]


def test_the_printed_commands_work_as_printed_with_a_state_dir(
        pipeline_file: WriteFile, tmp_path: Path) -> None:
    path = pipeline_file(GATED)
    folder = path.parent
    state = tmp_path / "elsewhere state"  # a space: the printed commands must quote it
    first = run_pt("pipeline", "run", path.name, "--state-dir", str(state), "--no-wait",
                   cwd=folder)
    assert first.returncode == 3, first.stdout + first.stderr
    assert not (folder / ".pulsaride").exists()
    approve = next(ln.split("approve: ", 1)[1] for ln in first.stdout.splitlines()
                   if ln.strip().startswith("approve: "))
    resume = first.stdout.rsplit("continue it with: ", 1)[1].strip()
    for printed in (approve, resume):
        assert printed.startswith("pt pipeline ")
        result = run_pt(*shlex.split(printed)[1:], cwd=folder)
        assert result.returncode == 0, (printed, result.stdout, result.stderr)
    assert (folder / "cutover.txt").exists()
    document = orjson.loads(run_pt("pipeline", "status", path.name, "--json", "--state-dir",
                                   str(state), cwd=folder).stdout)
    assert document["state"] == "succeeded"
    # PT_STATE_DIR does the same as --state-dir.
    assert run_pt("pipeline", "status", path.name, cwd=folder,
                  env={"PT_STATE_DIR": str(state)}).returncode == 0


def test_a_gate_rejected_while_suspended_stays_rejected_on_resume(
        pipeline_file: WriteFile) -> None:
    path = pipeline_file(GATED)
    folder = path.parent
    assert run_pt("pipeline", "run", path.name, "--run-id", "rs", "--no-wait",
                  cwd=folder).returncode == 3
    reject = run_pt("pipeline", "reject", path.name, "--job", "cutover-gate", "--as", "bob",
                    cwd=folder)
    assert reject.returncode == 0, reject.stderr
    resumed = run_pt("pipeline", "resume", path.name, "--run-id", "rs", "--no-wait", cwd=folder)
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr
    document = status_json(path)
    assert document["state"] == "rejected"
    jobs = jobs_of(document)
    assert (jobs["cutover-gate"]["status"], jobs["announce"]["status"]) == ("SKIPPED", "SKIPPED")
    assert not (folder / "cutover.txt").exists()
