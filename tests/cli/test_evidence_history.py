# ruff: noqa: E501  (pipeline files are written as readable one-line YAML jobs)
"""`pt pipeline history` and `pt pipeline show` over real runs of every kind.

The module fixture `histories` makes, with real `pt` processes, in one state dir:
runs of migrate.yml that (1) retry, fail, resume to a gate, get approved and succeed;
(2) get rejected; (3) abort; (4) stay suspended at a gate; (5) lose their runner to SIGKILL;
(6) have their runner stopped with SIGTERM; (7) fail; and two runs of other.yml, one of which is then
damaged in the middle. Who acts is set through LOGNAME (what `pt` takes as the OS user), so the
starter, the resumer and the approvers are told apart.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import PT, run_pt, wait_for_event

MIGRATE = """\
stages: [prep, migrate, cutover]
jobs:
  prep: {stage: prep, command: 'echo $$ > "prep-$PT_RUN_ID.pid"; sleep ${PREP_SLEEP:-0}; if [ -n "$FLAKY" ] && [ "$PT_ATTEMPT" = 1 ]; then echo boom >&2; exit 3; fi', retry: 1}
  migrate: {stage: migrate, command: 'exit ${MIGRATE_EXIT:-0}', needs: [prep], on_failure: abort}
  check: {stage: migrate, command: 'exit ${CHECK_EXIT:-0}', needs: [migrate]}
  gate: {stage: cutover, command: 'echo cut', needs: [check], when: manual}
  announce: {stage: cutover, command: 'echo announced', needs: [gate]}
"""
OTHER = """\
stages: [only]
jobs:
  hello: {stage: only, command: 'echo hello'}
"""
# Ids in an order unlike their start order: history must sort by start time, not by id.
MIGRATE_RUNS = ["p-resumed", "o-rejected", "n-aborted", "m-awaiting", "l-killed", "k-terminated",
                "j-failed"]
OTHER_RUNS = ["x-other", "y-damaged"]
STARTER, RESUMER = "olga", "ravi"

HISTORY_KEYS = ["pipeline_run_id", "pipeline", "started_at", "ended_at", "started_by", "outcome",
                "jobs", "done", "failed", "skipped", "cancelled", "resumes", "approvals",
                "refused_approvals", "damaged"]
TIMELINE_KEYS = ["seq", "at", "event", "job", "stage", "status", "attempt", "exit_code", "error",
                 "detail", "by", "authenticated", "key_fingerprint"]


def as_user(user: str, **extra: str) -> dict[str, str]:
    return {"LOGNAME": user, **extra}


def pt(folder: Path, *args: str, expect: int, **env: str) -> subprocess.CompletedProcess[str]:
    result = run_pt(*args, cwd=folder, env=as_user(env.pop("user", STARTER), **env))
    assert result.returncode == expect, f"{args}: {result.stdout}{result.stderr}"
    return result


def lines_of(folder: Path, run_id: str) -> list[dict[str, Any]]:
    path = folder / ".pulsaride" / "pipeline-runs" / f"{run_id}.jsonl"
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def background(folder: Path, run_id: str) -> subprocess.Popen[str]:
    """A runner whose first job sleeps until it is stopped."""
    return subprocess.Popen(
        [PT, "pipeline", "run", "migrate.yml", "--run-id", run_id, "-q"], cwd=folder,
        env={**os.environ, **as_user(STARTER, PREP_SLEEP="60")},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_job_process(folder: Path, run_id: str, proc: subprocess.Popen[str]) -> None:
    """Wait until the job's shell wrote its pid (JobStarted is on disk before it starts)."""
    wait_for_event(folder, run_id, "JobStarted", proc)
    path = folder / f"prep-{run_id}.pid"
    end = time.monotonic() + 30
    while not (path.exists() and path.read_text().endswith("\n")):
        assert time.monotonic() < end, f"the job of {run_id} did not start"
        time.sleep(0.02)


def kill_job_group(folder: Path, run_id: str) -> None:
    """The job runs in its own process group, which outlives a SIGKILLed runner: end it too."""
    path = folder / f"prep-{run_id}.pid"
    if path.exists() and path.read_text().strip():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(path.read_text()), signal.SIGKILL)


@dataclass
class Histories:
    folder: Path
    migrate: Path
    other: Path
    stopped: subprocess.CompletedProcess[str] | None = None


@pytest.fixture(scope="module")
def histories(tmp_path_factory: pytest.TempPathFactory) -> Histories:
    folder = tmp_path_factory.mktemp("histories")
    migrate, other = folder / "migrate.yml", folder / "other.yml"
    migrate.write_text(MIGRATE)
    other.write_text(OTHER)
    run = ("pipeline", "run", "migrate.yml", "--no-wait", "-q", "--run-id")
    resume = ("pipeline", "resume", "migrate.yml", "--no-wait", "-q", "--run-id")

    # (1) a retry, a failure, a resume to the gate, an approval, a resume to the end
    pt(folder, *run, "p-resumed", expect=1, FLAKY="1", CHECK_EXIT="1")
    pt(folder, *resume, "p-resumed", expect=3, user=RESUMER)
    pt(folder, "pipeline", "approve", "migrate.yml", "--run-id", "p-resumed", "--job", "gate",
       "--as", "alice", "--reason", "checks are green", expect=0)
    pt(folder, *resume, "p-resumed", expect=0, user=RESUMER)
    # (2) rejected at the gate, then resumed: the run ends rejected
    pt(folder, *run, "o-rejected", expect=3)
    pt(folder, "pipeline", "reject", "migrate.yml", "--run-id", "o-rejected", "--job", "gate",
       "--as", "bob", "--reason", "not tonight", expect=0)
    pt(folder, *resume, "o-rejected", expect=1, user=RESUMER)
    # a run of the other pipeline file, between runs of the first
    pt(folder, "pipeline", "run", "other.yml", "-q", "--run-id", "x-other", expect=0)
    # (3) aborted: migrate fails and has on_failure: abort
    pt(folder, *run, "n-aborted", expect=1, MIGRATE_EXIT="5")
    # (4) suspended at the gate, nobody decided
    pt(folder, *run, "m-awaiting", expect=3)
    # (5) the runner is killed with SIGKILL while a job runs
    proc = background(folder, "l-killed")
    try:
        wait_for_job_process(folder, "l-killed", proc)
        proc.kill()
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        kill_job_group(folder, "l-killed")
    # (6) the runner is stopped with SIGTERM while a job runs
    proc = background(folder, "k-terminated")
    try:
        wait_for_job_process(folder, "k-terminated", proc)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        kill_job_group(folder, "k-terminated")
    stopped = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    # (7) failed: check fails, and nobody resumed it
    pt(folder, *run, "j-failed", expect=1, CHECK_EXIT="1")
    # (8) a run of the other file, damaged in the middle afterwards
    pt(folder, "pipeline", "run", "other.yml", "-q", "--run-id", "y-damaged", expect=0)
    damaged = folder / ".pulsaride" / "pipeline-runs" / "y-damaged.jsonl"
    lines = damaged.read_bytes().splitlines(keepends=True)
    lines[2] = b"#" * (len(lines[2]) - 1) + b"\n"
    damaged.write_bytes(b"".join(lines))
    return Histories(folder, migrate, other, stopped)


def history_json(histories: Histories, *args: str) -> dict[str, Any]:
    result = pt(histories.folder, "pipeline", "history", *args, "--json", expect=0)
    return orjson.loads(result.stdout)


def table(text: str) -> list[dict[str, str]]:
    """Parse the history table by the positions of its header's columns."""
    header, *rows = text.splitlines()
    names = header.split()
    starts = [header.index(f"{name}  " if name != names[-1] else name) for name in names]
    bounds = [*starts[1:], None]
    return [{name: row[start:end].strip() for name, start, end in zip(names, starts, bounds, strict=True)}
            for row in rows if not row.startswith("run ")]


# ---- history ---------------------------------------------------------------------------------


def test_history_of_a_file_lists_each_of_its_runs_oldest_first_with_json_keys_stable(histories: Histories) -> None:
    document = history_json(histories, "migrate.yml")
    assert list(document) == ["schema", "runs"]
    assert document["schema"] == "pulsaride.history/1"
    runs = document["runs"]
    assert [r["pipeline_run_id"] for r in runs] == MIGRATE_RUNS
    for row in runs:
        assert list(row) == HISTORY_KEYS
        assert row["pipeline"] == str(histories.migrate.resolve())
        assert row["started_by"] == STARTER
        lines = lines_of(histories.folder, row["pipeline_run_id"])
        assert row["started_at"] == lines[0]["at"]
        assert row["ended_at"] == lines[-1]["at"]  # no runner is at work on any of them
        assert row["jobs"] == 5
        assert row["damaged"] is None
    starts = [r["started_at"] for r in runs]
    assert starts == sorted(starts)

    by_id = {r["pipeline_run_id"]: r for r in runs}
    facts = {run_id: (r["outcome"], r["done"], r["failed"], r["skipped"], r["cancelled"],
                      r["resumes"], r["approvals"], r["refused_approvals"])
             for run_id, r in by_id.items()}
    assert facts == {
        "p-resumed": ("succeeded", 5, 0, 0, 0, 2, ["gate approved by alice (unauthenticated)"], 0),
        "o-rejected": ("rejected", 3, 0, 2, 0, 1, ["gate rejected by bob (unauthenticated)"], 0),
        "n-aborted": ("aborted", 1, 1, 0, 3, 0, [], 0),
        "m-awaiting": ("awaiting approval", 3, 0, 0, 0, 0, [], 0),
        "l-killed": ("interrupted", 0, 0, 0, 0, 0, [], 0),
        "k-terminated": ("interrupted", 0, 0, 0, 1, 0, [], 0),
        "j-failed": ("failed", 2, 1, 2, 0, 0, [], 0),
    }


def test_history_table_shows_who_when_outcome_counts_resumes_and_approvals(histories: Histories) -> None:
    result = pt(histories.folder, "pipeline", "history", "migrate.yml", expect=0)
    assert result.stdout.splitlines()[0].split() == [
        "run", "started", "ended", "by", "outcome", "done", "failed", "skipped", "resumes", "approvals"]
    rows = table(result.stdout)
    assert [r["run"] for r in rows] == MIGRATE_RUNS
    document = {r["pipeline_run_id"]: r for r in history_json(histories, "migrate.yml")["runs"]}
    for row in rows:
        expected = document[row["run"]]
        assert row["started"] == expected["started_at"][:19].replace("T", " ")
        assert row["ended"] == expected["ended_at"][:19].replace("T", " ")
        assert row["by"] == STARTER
        assert row["outcome"] == expected["outcome"]
        assert [row[k] for k in ("done", "failed", "skipped", "resumes")] == [
            str(expected[k]) for k in ("done", "failed", "skipped", "resumes")]
        assert row["approvals"] == ("; ".join(expected["approvals"]) or "-")
    outcomes = {r["run"]: r["outcome"] for r in rows}
    assert outcomes["m-awaiting"] == "awaiting approval"
    assert outcomes["p-resumed"] == "succeeded"


def test_history_of_the_state_dir_lists_runs_of_both_files_and_a_damaged_run(histories: Histories) -> None:
    runs = history_json(histories)["runs"]  # no FILE: ./.pulsaride
    order = ["p-resumed", "o-rejected", "x-other", "n-aborted", "m-awaiting", "l-killed",
             "k-terminated", "j-failed", "y-damaged"]
    assert [r["pipeline_run_id"] for r in runs] == order
    assert {r["pipeline"] for r in runs} == {str(histories.migrate.resolve()), str(histories.other.resolve())}
    by_id = {r["pipeline_run_id"]: r for r in runs}
    assert by_id["x-other"]["outcome"] == "succeeded"
    damaged = by_id["y-damaged"]
    assert list(damaged) == HISTORY_KEYS
    assert damaged["outcome"] == "damaged"
    assert "line 3" in damaged["damaged"]
    assert damaged["started_by"] == STARTER
    assert damaged["pipeline"] == str(histories.other.resolve())
    # The other runs are untouched by the damaged one.
    assert by_id["p-resumed"]["outcome"] == "succeeded"
    assert history_json(histories, "other.yml")["runs"] == [by_id["x-other"], damaged]
    same = history_json(histories, "--state-dir", str(histories.folder / ".pulsaride"))
    assert same["runs"] == runs

    text = pt(histories.folder, "pipeline", "history", expect=0).stdout
    rows = {r["run"]: r for r in table(text)}
    assert list(rows) == order
    assert rows["y-damaged"]["outcome"] == "damaged"
    assert rows["y-damaged"]["done"] == "-"
    assert f"run y-damaged: {damaged['damaged']}" in text.splitlines()


def test_history_of_an_empty_state_dir_says_so(tmp_path: Path) -> None:
    result = run_pt("pipeline", "history", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout) == {"schema": "pulsaride.history/1", "runs": []}
    result = run_pt("pipeline", "history", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("no runs in ")


# ---- show ------------------------------------------------------------------------------------


def show_json(histories: Histories, run_id: str) -> list[dict[str, Any]]:
    result = pt(histories.folder, "pipeline", "show", "--run-id", run_id, "--json", expect=0)
    document = orjson.loads(result.stdout)
    assert list(document) == ["schema", "pipeline_run_id", "entries"]
    assert (document["schema"], document["pipeline_run_id"]) == ("pulsaride.timeline/1", run_id)
    return document["entries"]


@pytest.mark.parametrize("run_id", MIGRATE_RUNS)
def test_show_json_entries_match_the_run_file_lines_one_to_one(histories: Histories, run_id: str) -> None:
    lines = lines_of(histories.folder, run_id)
    entries = show_json(histories, run_id)
    assert len(entries) == len(lines)
    for entry, line in zip(entries, lines, strict=True):
        assert list(entry) == TIMELINE_KEYS
        assert (entry["seq"], entry["at"], entry["event"]) == (line["seq"], line["at"], line["event"])
        if line["event"].startswith("Job"):
            for key in ("job", "stage", "status", "attempt", "exit_code"):
                assert entry[key] == line.get(key), (line["seq"], key)
        else:  # run-level: RunAborted names its job in the detail ("migrate failed (...)")
            assert [entry[k] for k in ("job", "stage", "status", "attempt")] == [None] * 4
            assert entry["detail"] == (line.get("reason") or line.get("outcome") or
                                       (f"from stage {line['from_stage']}" if "from_stage" in line else ""))
        assert entry["error"] == line.get("error", "")
        assert entry["by"] == (line.get("by") or line.get("started_by"))


def test_show_names_attempts_exit_codes_errors_and_who_acted(histories: Histories) -> None:
    entries = show_json(histories, "p-resumed")
    events = [(e["event"], e["job"]) for e in entries]
    assert events[0] == ("RunStarted", None) and entries[0]["by"] == STARTER
    retry = entries[events.index(("JobRetrying", "prep"))]
    assert (retry["attempt"], retry["exit_code"], retry["error"], retry["status"]) == (1, 3, "exit code 3", "RETRYING")
    failed = entries[events.index(("JobFailed", "check"))]
    assert (failed["attempt"], failed["exit_code"], failed["error"]) == (1, 1, "exit code 1")
    resumes = [e for e in entries if e["event"] == "RunResumed"]
    assert [(e["by"], e["detail"]) for e in resumes] == [
        (RESUMER, "from stage migrate"), (RESUMER, "from stage cutover")]
    approved = entries[events.index(("JobApproved", "gate"))]
    assert (approved["by"], approved["detail"], approved["status"]) == ("alice", "checks are green", "APPROVED")
    assert entries[-1]["event"] == "RunCheckpoint"

    rejected = show_json(histories, "o-rejected")
    decision = next(e for e in rejected if e["event"] == "JobRejected")
    assert (decision["by"], decision["detail"], decision["status"]) == ("bob", "not tonight", "SKIPPED")

    terminated = show_json(histories, "k-terminated")
    cancelled = next(e for e in terminated if e["event"] == "JobCancelled")
    assert cancelled["job"] == "prep"
    assert cancelled["error"] == "stopped: runner received SIGTERM"
    assert cancelled["exit_code"] == 143
    assert [e["event"] for e in terminated[-2:]] == ["RunInterrupted", "RunCheckpoint"]
    assert terminated[-2]["detail"] == "runner received SIGTERM"
    assert histories.stopped is not None and histories.stopped.returncode == 130

    killed = show_json(histories, "l-killed")
    assert [(e["event"], e["status"]) for e in killed][-1] == ("JobStarted", "RUNNING")


def test_show_text_has_one_line_per_transition_with_attempt_exit_error_and_actor(histories: Histories) -> None:
    text = pt(histories.folder, "pipeline", "show", "--run-id", "p-resumed", expect=0).stdout
    lines = lines_of(histories.folder, "p-resumed")
    rows = text.splitlines()
    assert len(rows) == len(lines)
    for row, line in zip(rows, lines, strict=True):
        assert row.split()[:3] == [str(line["seq"]), line["at"][11:23], line["event"]]
    by_event = {}
    for row in rows:
        by_event.setdefault(row.split()[2], []).append(row)
    assert by_event["RunStarted"][0].endswith(f"by {STARTER}")
    assert "attempt 1 · exit 3" in by_event["JobRetrying"][0]
    assert "attempt 1 · exit 1" in by_event["JobFailed"][0]
    assert by_event["JobApproved"][0].endswith("checks are green · by alice (unauthenticated)")
    assert all(row.endswith(f"by {RESUMER}") for row in by_event["RunResumed"])
    same = pt(histories.folder, "pipeline", "show", "migrate.yml", "--run-id", "p-resumed", expect=0).stdout
    assert same == text


def test_show_without_run_id_is_the_latest_run_of_the_file(histories: Histories) -> None:
    latest = pt(histories.folder, "pipeline", "show", "migrate.yml", "--json", expect=0)
    assert orjson.loads(latest.stdout)["pipeline_run_id"] == "j-failed"


def test_show_of_a_damaged_run_is_a_clear_error_naming_the_line(histories: Histories) -> None:
    result = run_pt("pipeline", "show", "--run-id", "y-damaged", cwd=histories.folder)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("pt: error: ")
    assert "line 3" in result.stderr
