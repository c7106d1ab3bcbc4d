# ruff: noqa: E501  (pipeline files are written as readable one-line YAML jobs)
"""`pt pipeline status`: the ASCII DAG and the JSON document, read from real runs."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from tests.conftest import PT, run_pt

WriteFile = Callable[..., Path]

MIGRATION = """
    stages: [preflight, migrate, validate, cutover]
    jobs:
      check-schema:        {stage: preflight, command: "true"}
      migrate-customers:   {stage: migrate, command: "true"}
      migrate-orders:      {stage: migrate, command: "echo boom; exit 3", retry: 1, needs: [migrate-customers]}
      migrate-order-items: {stage: migrate, command: "true", needs: [migrate-orders]}
      validate-counts:     {stage: validate, command: "true", needs: [migrate-customers]}
      cutover-gate:        {stage: cutover, command: "true", needs: [validate-counts], when: manual}
      announce:            {stage: cutover, command: "true", needs: [cutover-gate]}
"""

TOP_KEYS = {"schema", "pipeline_run_id", "pipeline", "state", "active", "started_at",
            "started_by", "resumes", "events", "aborted", "counts", "torn_tail_bytes", "stages"}
JOB_KEYS = {"name", "status", "when", "on_failure", "needs", "unmet_needs", "attempt",
            "attempts_in_budget", "max_attempts", "started_at", "finished_at",
            "duration_seconds", "exit_code", "error", "reason", "cause", "retry_at", "approval",
            "signed_approvals", "log"}
DURATION = r"\d+\.\ds"


@pytest.fixture
def suspended(pipeline_file: WriteFile) -> Path:
    """A run of MIGRATION that failed a job, skipped its dependent and waits at the gate."""
    path = pipeline_file(MIGRATION)
    result = run_pt("pipeline", "run", path.name, "--run-id", "st-1", "--no-wait",
                    cwd=path.parent)
    assert result.returncode == 3, result.stdout + result.stderr
    return path


def status(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    result = run_pt("pipeline", "status", path.name, *extra, cwd=path.parent)
    assert "Traceback" not in result.stderr
    return result


def job_line(text: str, job: str) -> str:
    """The one line of `job`: two spaces, its symbol, its name."""
    lines = [ln for ln in text.splitlines() if re.match(rf"  \S+\s+{re.escape(job)}(\s|$)", ln)]
    assert len(lines) == 1, (job, text)
    return lines[0]


def test_text_shows_stages_in_order_and_one_line_per_job(suspended: Path) -> None:
    result = status(suspended)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    stage_lines = [ln for ln in text.splitlines() if ln.startswith("Stage: ")]
    assert stage_lines == ["Stage: preflight", "Stage: migrate", "Stage: validate",
                           "Stage: cutover"]
    # Every job sits under its stage, in file order.
    order = ["Stage: preflight", "check-schema", "Stage: migrate", "migrate-customers",
             "migrate-orders", "migrate-order-items", "Stage: validate", "validate-counts",
             "Stage: cutover", "cutover-gate", "announce"]
    positions = [text.index(f" {item}" if not item.startswith("Stage") else item)
                 for item in order]
    assert positions == sorted(positions)
    assert text.splitlines()[0] == f"Run st-1 of {suspended.name}: awaiting approval"


def test_text_job_lines_carry_symbol_duration_attempts_reasons_and_unmet_needs(
        suspended: Path) -> None:
    text = status(suspended).stdout
    assert re.fullmatch(rf"  ✓\s+check-schema\s+{DURATION}", job_line(text, "check-schema"))
    assert re.fullmatch(rf"  ✗\s+migrate-orders\s+{DURATION}  attempt 2/2  exit code 3",
                        job_line(text, "migrate-orders"))
    assert re.fullmatch(r"  ⊘\s+migrate-order-items\s+skipped: needs migrate-orders \(FAILED\)",
                        job_line(text, "migrate-order-items"))
    assert re.fullmatch(r"  ✋\s+cutover-gate\s+waiting for approval",
                        job_line(text, "cutover-gate"))
    assert re.fullmatch(r"  ⏸\s+announce\s+\(needs: cutover-gate\)", job_line(text, "announce"))
    assert f"approve: pt pipeline approve {suspended.name} --run-id st-1 --job cutover-gate" \
        in text


def test_text_while_a_job_runs(pipeline_file: WriteFile) -> None:
    path = pipeline_file("""
        stages: [s]
        jobs:
          loader:   {stage: s, command: "touch loader.up; while [ ! -f go ]; do sleep 0.02; done", timeout: 30}
          checker:  {stage: s, command: "true", needs: [loader]}
          pending-gate: {stage: s, command: "true", needs: [checker], when: manual}
    """)
    folder = path.parent
    runner = subprocess.Popen([PT, "pipeline", "run", path.name, "--run-id", "live", "--no-wait"],
                              cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 30
        while not (folder / "loader.up").exists():
            assert runner.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        text = status(path).stdout
        assert text.splitlines()[0] == f"Run live of {path.name}: running"
        assert re.fullmatch(rf"  ⏳\s+loader\s+{DURATION}", job_line(text, "loader"))
        assert re.fullmatch(r"  ⏸\s+checker\s+\(needs: loader\)", job_line(text, "checker"))
        assert re.fullmatch(r"  ⏸\s+pending-gate\s+\(needs: checker\)  \[manual\]",
                            job_line(text, "pending-gate"))
        document = orjson.loads(status(path, "--json").stdout)
        assert (document["state"], document["active"]) == ("running", True)
        (folder / "go").touch()
        runner.communicate(timeout=30)
        assert runner.returncode == 3
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()


def test_json_is_a_stable_document(suspended: Path) -> None:
    result = status(suspended, "--json")
    assert result.returncode == 0
    document = orjson.loads(result.stdout)
    assert set(document) == TOP_KEYS
    assert document["schema"] == "pulsaride.status/1"
    assert document["pipeline_run_id"] == "st-1"
    assert set(document["pipeline"]) == {"path", "sha256"}
    assert Path(document["pipeline"]["path"]) == suspended.resolve()
    assert document["state"] == "awaiting approval"
    assert document["active"] is False
    assert document["resumes"] == 0
    assert document["aborted"] is None
    assert document["torn_tail_bytes"] == 0
    assert document["counts"] == {"DONE": 3, "FAILED": 1, "PENDING": 1, "SKIPPED": 1,
                                  "WAITING": 1}
    assert [s["name"] for s in document["stages"]] == ["preflight", "migrate", "validate",
                                                       "cutover"]
    jobs = {j["name"]: j for s in document["stages"] for j in s["jobs"]}
    for job in jobs.values():
        assert set(job) == JOB_KEYS, job["name"]
    orders = jobs["migrate-orders"]
    assert (orders["status"], orders["attempt"], orders["max_attempts"], orders["exit_code"],
            orders["error"]) == ("FAILED", 2, 2, 3, "exit code 3")
    assert orders["log"] == "st-1/logs/migrate-orders/attempt-2.log"
    log = suspended.parent / ".pulsaride/pipeline-runs" / orders["log"]
    assert log.read_text() == "boom\n"
    assert isinstance(orders["duration_seconds"], float)
    items = jobs["migrate-order-items"]
    assert (items["status"], items["cause"], items["unmet_needs"]) == \
        ("SKIPPED", "migrate-orders", ["migrate-orders"])
    assert items["duration_seconds"] is None
    assert jobs["announce"]["unmet_needs"] == ["cutover-gate"]
    assert jobs["cutover-gate"]["when"] == "manual"
    assert jobs["cutover-gate"]["approval"] is None
    # Reading twice gives the same document (a pure projection of the file).
    assert orjson.loads(status(suspended, "--json").stdout) == document


def test_without_run_id_status_shows_the_latest_run_of_that_file(
        pipeline_file: WriteFile) -> None:
    first = pipeline_file('stages: [s]\njobs:\n  a: {stage: s, command: "true"}\n', "first.yml")
    other = pipeline_file('stages: [s]\njobs:\n  b: {stage: s, command: "false"}\n', "other.yml")
    folder = first.parent
    assert run_pt("pipeline", "run", first.name, "--run-id", "first-1", cwd=folder).returncode == 0
    time.sleep(0.01)
    assert run_pt("pipeline", "run", other.name, "--run-id", "other-1", cwd=folder).returncode == 1
    # Both files share the state folder; each sees its own latest run.
    assert status(first).stdout.startswith("Run first-1 of first.yml: succeeded")
    assert status(other).stdout.startswith("Run other-1 of other.yml: failed")
    time.sleep(0.01)
    assert run_pt("pipeline", "run", first.name, "--run-id", "first-2", cwd=folder).returncode == 0
    assert status(first).stdout.startswith("Run first-2 of first.yml")
    assert status(first, "--run-id", "first-1").stdout.startswith("Run first-1 of first.yml")
    # Given by another path to the same file, it is the same file.
    assert run_pt("pipeline", "status", str(first), "--json",
                  cwd=Path("/")).stdout.count('"first-2"') == 1


def test_ascii_markers(suspended: Path) -> None:
    result = status(suspended, "--ascii")
    assert result.returncode == 0
    text = result.stdout
    assert text.isascii(), text
    assert re.search(r"\[ok\]\s+check-schema", text)
    assert re.search(r"\[FAIL\]\s+migrate-orders", text)
    assert re.search(r"\[skip\]\s+migrate-order-items\s+skipped: needs migrate-orders", text)
    assert re.search(r"\[gate\]\s+cutover-gate", text)
    assert re.search(r"\[\.\.\]\s+announce\s+\(needs: cutover-gate\)", text)


def test_a_stdout_that_cannot_show_symbols_gets_ascii(suspended: Path) -> None:
    result = run_pt("pipeline", "status", suspended.name, cwd=suspended.parent,
                    env={"PYTHONIOENCODING": "ascii"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.isascii()
    assert "[FAIL]" in result.stdout


def test_a_run_on_a_stdout_that_cannot_show_symbols_does_not_crash(
        pipeline_file: WriteFile) -> None:
    path = pipeline_file('stages: [s]\njobs:\n  a: {stage: s, command: "echo héllo ✓"}\n')
    result = run_pt("pipeline", "run", path.name, cwd=path.parent,
                    env={"PYTHONIOENCODING": "ascii"})
    assert "Traceback" not in result.stderr
    assert result.returncode == 0, result.stderr
    assert "[ok]" in result.stdout


def test_status_after_a_resume_counts_it(pipeline_file: WriteFile) -> None:
    path = pipeline_file('stages: [s]\njobs:\n  a: {stage: s, command: "test -f fixed"}\n')
    folder = path.parent
    assert run_pt("pipeline", "run", path.name, "--run-id", "r", cwd=folder).returncode == 1
    (folder / "fixed").touch()
    assert run_pt("pipeline", "resume", path.name, cwd=folder).returncode == 0
    assert "resumed 1x" in status(path).stdout
    assert orjson.loads(status(path, "--json").stdout)["resumes"] == 1


def test_status_without_any_run_is_one_clear_line(pipeline_file: WriteFile) -> None:
    path = pipeline_file('stages: [s]\njobs:\n  a: {stage: s, command: "true"}\n')
    result = status(path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("pt: error: no run of ")
    assert f"pt pipeline run {path.name}" in result.stderr
    assert not (path.parent / ".pulsaride").exists()  # reading never creates anything


def test_status_does_not_change_the_run_file(suspended: Path) -> None:
    run_file = suspended.parent / ".pulsaride/pipeline-runs/st-1.jsonl"
    before = run_file.read_bytes()
    for extra in ([], ["--json"], ["--ascii"]):
        assert status(suspended, *extra).returncode == 0
    assert run_file.read_bytes() == before
