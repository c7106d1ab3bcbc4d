# ruff: noqa: E501  (pipeline files are written as readable one-line YAML jobs)
"""`pt pipeline resume` through real processes: what runs again, what never does.

Every job appends a line to `<job>.count` each time its process runs, so the number of lines is
the number of executions, whatever the run file says. (Crash-and-resume with kill -9 and torn
tails are covered by tests/test_durability.py; random crash points by tests/property/.)
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import PT, one_error_line, run_lines, run_pt, status_json

WriteFile = Callable[..., Path]


def count(folder: Path, job: str) -> int:
    path = folder / f"{job}.count"
    return len(path.read_text().splitlines()) if path.exists() else 0


def counts(folder: Path, *jobs: str) -> dict[str, int]:
    return {job: count(folder, job) for job in jobs}


def statuses(path: Path, *extra: str) -> dict[str, str]:
    document = status_json(path, *extra)
    return {job["name"]: job["status"] for stage in document["stages"] for job in stage["jobs"]}


# `m-fragile` fails until the file `fixed` exists; with retry: 1 it makes 2 attempts per budget.
FRAGILE = """
    stages: [prep, migrate, validate]
    jobs:
      p-schema:  {stage: prep, command: "echo x >> p-schema.count"}
      m-easy:    {stage: migrate, command: "echo x >> m-easy.count"}
      m-fragile: {stage: migrate, command: "echo x >> m-fragile.count; test -f fixed", retry: 1}
      m-after:   {stage: migrate, command: "echo x >> m-after.count", needs: [m-fragile]}
      v-all:     {stage: validate, command: "echo x >> v-all.count", needs: [m-easy, m-after]}
      v-easy:    {stage: validate, command: "echo x >> v-easy.count", needs: [m-easy]}
"""
JOBS = ("p-schema", "m-easy", "m-fragile", "m-after", "v-all", "v-easy")


def test_resume_after_a_fix_reruns_failed_and_skipped_jobs_only(
        pipeline_file: WriteFile) -> None:
    path = pipeline_file(FRAGILE)
    folder = path.parent
    first = run_pt("pipeline", "run", path.name, "--run-id", "fix-1", cwd=folder)
    assert first.returncode == 1
    assert counts(folder, *JOBS) == {"p-schema": 1, "m-easy": 1, "m-fragile": 2, "m-after": 0,
                                     "v-all": 0, "v-easy": 1}
    assert statuses(path) == {"p-schema": "DONE", "m-easy": "DONE", "m-fragile": "FAILED",
                              "m-after": "SKIPPED", "v-all": "SKIPPED", "v-easy": "DONE"}

    (folder / "fixed").touch()
    resumed = run_pt("pipeline", "resume", path.name, "--run-id", "fix-1", cwd=folder)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    # DONE jobs did not run again; the failed job and its skipped dependents ran once each.
    assert counts(folder, *JOBS) == {"p-schema": 1, "m-easy": 1, "m-fragile": 3, "m-after": 1,
                                     "v-all": 1, "v-easy": 1}
    document = status_json(path)
    assert document["state"] == "succeeded"
    assert document["resumes"] == 1
    lines = run_lines(folder / ".pulsaride")["fix-1"]
    resumed_line = next(ln for ln in lines if ln["event"] == "RunResumed")
    assert resumed_line["from_stage"] == "migrate"
    requeued = {ln["job"]: ln["previous"] for ln in lines if ln["event"] == "JobRequeued"}
    assert requeued == {"m-fragile": "FAILED", "m-after": "SKIPPED", "v-all": "SKIPPED"}
    # Attempt numbers keep counting (log files are never overwritten).
    logs = folder / ".pulsaride/pipeline-runs/fix-1/logs/m-fragile"
    assert sorted(p.name for p in logs.iterdir()) == [
        "attempt-1.log", "attempt-2.log", "attempt-3.log"]
    assert "requeued (was FAILED)" in resumed.stdout


def test_resume_gives_a_fresh_retry_budget(pipeline_file: WriteFile) -> None:
    # Succeeds on its 4th execution. retry: 1 -> 2 attempts per budget: the first run fails
    # (1, 2); a resume gets 2 more attempts (3, 4) and succeeds on the last one.
    path = pipeline_file("""
        stages: [s]
        jobs:
          flaky: {stage: s, command: "echo x >> flaky.count; test $(wc -l < flaky.count) -ge 4", retry: 1}
    """)
    folder = path.parent
    assert run_pt("pipeline", "run", path.name, "--run-id", "b", cwd=folder).returncode == 1
    assert count(folder, "flaky") == 2
    resumed = run_pt("pipeline", "resume", path.name, "--run-id", "b", cwd=folder)
    assert resumed.returncode == 0, resumed.stdout
    assert count(folder, "flaky") == 4
    job = status_json(path)["stages"][0]["jobs"][0]
    assert (job["status"], job["attempt"], job["attempts_in_budget"], job["max_attempts"]) == \
        ("DONE", 4, 2, 2)


def test_resume_without_run_id_takes_the_latest_run_of_the_file(
        pipeline_file: WriteFile) -> None:
    path = pipeline_file(FRAGILE)
    folder = path.parent
    assert run_pt("pipeline", "run", path.name, "--run-id", "older", cwd=folder).returncode == 1
    time.sleep(0.01)  # distinct start times
    assert run_pt("pipeline", "run", path.name, "--run-id", "newer", cwd=folder).returncode == 1
    (folder / "fixed").touch()
    resumed = run_pt("pipeline", "resume", path.name, cwd=folder)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert statuses(path, "--run-id", "newer")["v-all"] == "DONE"
    assert statuses(path, "--run-id", "older")["v-all"] == "SKIPPED"


def test_from_stage_keeps_the_status_of_earlier_stages(pipeline_file: WriteFile) -> None:
    path = pipeline_file("""
        stages: [one, two, three]
        jobs:
          a: {stage: one, command: "echo x >> a.count; test -f fixed"}
          b: {stage: two, command: "echo x >> b.count; test -f fixed"}
          c: {stage: three, command: "echo x >> c.count"}
    """)
    folder = path.parent
    assert run_pt("pipeline", "run", path.name, "--run-id", "f", cwd=folder).returncode == 1
    assert counts(folder, "a", "b", "c") == {"a": 1, "b": 1, "c": 1}
    (folder / "fixed").touch()

    partial = run_pt("pipeline", "resume", path.name, "--run-id", "f", "--from", "two",
                     cwd=folder)
    # a (stage one, before --from) keeps FAILED and does not run; b runs again and succeeds;
    # c was DONE and stays DONE without running. The run is still failed because of a.
    assert partial.returncode == 1, partial.stdout
    assert counts(folder, "a", "b", "c") == {"a": 1, "b": 2, "c": 1}
    assert statuses(path) == {"a": "FAILED", "b": "DONE", "c": "DONE"}

    # Without --from: the first stage that is not all DONE, here `one`.
    rest = run_pt("pipeline", "resume", path.name, "--run-id", "f", cwd=folder)
    assert rest.returncode == 0, rest.stdout
    assert counts(folder, "a", "b", "c") == {"a": 2, "b": 2, "c": 1}
    lines = run_lines(folder / ".pulsaride")["f"]
    assert [ln["from_stage"] for ln in lines if ln["event"] == "RunResumed"] == ["two", "one"]


def test_from_an_earlier_stage_never_reruns_its_done_jobs(pipeline_file: WriteFile) -> None:
    path = pipeline_file(FRAGILE)
    folder = path.parent
    assert run_pt("pipeline", "run", path.name, "--run-id", "e", cwd=folder).returncode == 1
    (folder / "fixed").touch()
    resumed = run_pt("pipeline", "resume", path.name, "--run-id", "e", "--from", "prep",
                     cwd=folder)
    assert resumed.returncode == 0
    assert counts(folder, "p-schema", "m-easy", "v-easy") == {"p-schema": 1, "m-easy": 1,
                                                               "v-easy": 1}


def test_from_an_unknown_stage_is_refused(pipeline_file: WriteFile) -> None:
    path = pipeline_file(FRAGILE)
    folder = path.parent
    assert run_pt("pipeline", "run", path.name, "--run-id", "u", cwd=folder).returncode == 1
    before = (folder / ".pulsaride/pipeline-runs/u.jsonl").read_bytes()
    result = run_pt("pipeline", "resume", path.name, "--run-id", "u", "--from", "migrat",
                    cwd=folder)
    assert result.returncode == 2
    assert "unknown stage 'migrat'" in one_error_line(result)
    assert (folder / ".pulsaride/pipeline-runs/u.jsonl").read_bytes() == before


def test_resuming_a_succeeded_run_says_so_and_exits_0(pipeline_file: WriteFile) -> None:
    path = pipeline_file('stages: [s]\njobs:\n  a: {stage: s, command: "echo x >> a.count"}\n')
    folder = path.parent
    assert run_pt("pipeline", "run", path.name, "--run-id", "ok", cwd=folder).returncode == 0
    before = (folder / ".pulsaride/pipeline-runs/ok.jsonl").read_bytes()
    for _ in range(2):
        result = run_pt("pipeline", "resume", path.name, "--run-id", "ok", cwd=folder)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        assert "run ok already succeeded; nothing to resume" in result.stderr
        assert "error" not in result.stderr
    assert count(folder, "a") == 1
    assert (folder / ".pulsaride/pipeline-runs/ok.jsonl").read_bytes() == before


@pytest.mark.parametrize(("command", "run_id"), [
    *[("resume", run_id) for run_id in ("../x", "/etc/passwd", "a/b", "..", "x" * 65, "")],
    ("status", "../x"), ("status", "/etc/passwd"), ("approve", "../x"), ("approve", "a/b"),
])
def test_path_like_run_ids_are_refused(pipeline_file: WriteFile, run_id: str,
                                       command: str) -> None:
    path = pipeline_file('stages: [s]\njobs:\n  a: {stage: s, command: "true"}\n')
    folder = path.parent
    extra = ["--job", "a"] if command == "approve" else []
    result = run_pt("pipeline", command, path.name, "--run-id", run_id, *extra, cwd=folder)
    assert result.returncode == 2
    assert "invalid run id" in one_error_line(result)
    assert sorted(p.name for p in folder.iterdir()) == [path.name]  # nothing created


@pytest.mark.parametrize("command", ["resume", "status", "approve"])
def test_an_unknown_run_id_is_refused(pipeline_file: WriteFile, command: str) -> None:
    path = pipeline_file('stages: [s]\njobs:\n  a: {stage: s, command: "true"}\n')
    folder = path.parent
    assert run_pt("pipeline", "run", path.name, "--run-id", "real", cwd=folder).returncode == 0
    extra = ["--job", "a"] if command == "approve" else []
    result = run_pt("pipeline", command, path.name, "--run-id", "nosuchrun", *extra, cwd=folder)
    assert result.returncode == 2
    assert "nosuchrun" in one_error_line(result)
    assert sorted(p.name for p in (folder / ".pulsaride/pipeline-runs").glob("*.jsonl")) == [
        "real.jsonl"]


def test_run_with_an_existing_run_id_is_refused(pipeline_file: WriteFile) -> None:
    path = pipeline_file('stages: [s]\njobs:\n  a: {stage: s, command: "echo x >> a.count"}\n')
    folder = path.parent
    assert run_pt("pipeline", "run", path.name, "--run-id", "same", cwd=folder).returncode == 0
    again = run_pt("pipeline", "run", path.name, "--run-id", "same", cwd=folder)
    assert again.returncode == 2
    assert "already exists" in one_error_line(again)
    assert count(folder, "a") == 1


def test_resume_is_refused_while_another_process_runs_the_run(
        pipeline_file: WriteFile) -> None:
    path = pipeline_file("""
        stages: [s, g]
        jobs:
          a:    {stage: s, command: "echo x >> a.count"}
          gate: {stage: g, command: "true", needs: [a], when: manual}
    """)
    folder = path.parent
    runner = subprocess.Popen([PT, "pipeline", "run", path.name, "--run-id", "busy"], cwd=folder,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ))
    try:
        run_file = folder / ".pulsaride/pipeline-runs/busy.jsonl"
        deadline = time.monotonic() + 30
        while b"JobAwaitingApproval" not in (run_file.read_bytes() if run_file.exists() else b""):
            assert time.monotonic() < deadline and runner.poll() is None
            time.sleep(0.05)
        result = run_pt("pipeline", "resume", path.name, "--run-id", "busy", cwd=folder)
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert "busy" in result.stderr
        assert count(folder, "a") == 1
        assert run_pt("pipeline", "status", path.name, "--json", cwd=folder).returncode == 0
    finally:
        runner.kill()
        runner.communicate()


def test_resume_refuses_a_changed_pipeline_file_unless_allowed(pipeline_file: WriteFile) -> None:
    path = pipeline_file(FRAGILE)
    folder = path.parent
    assert run_pt("pipeline", "run", path.name, "--run-id", "ch", cwd=folder).returncode == 1
    path.write_text(path.read_text().replace("test -f fixed", "true"))
    refused = run_pt("pipeline", "resume", path.name, "--run-id", "ch", cwd=folder)
    assert refused.returncode == 2
    assert "Traceback" not in refused.stderr
    assert "changed since run ch started" in refused.stderr
    assert "m-fragile" in refused.stderr
    assert "--allow-changed" in refused.stderr
    allowed = run_pt("pipeline", "resume", path.name, "--run-id", "ch", "--allow-changed",
                     cwd=folder)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert counts(folder, "p-schema", "m-easy", "m-fragile") == {"p-schema": 1, "m-easy": 1,
                                                                  "m-fragile": 3}
    lines = run_lines(folder / ".pulsaride")["ch"]
    resumed = next(ln for ln in lines if ln["event"] == "RunResumed")
    assert resumed["changes"]
    assert resumed["pipeline"]["sha256"] != lines[0]["pipeline"]["sha256"]
