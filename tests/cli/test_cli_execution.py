# ruff: noqa: E501  (pipeline files are written as readable one-line YAML jobs)
"""`pt pipeline run` against DESIGN.md's execution model, with real `pt` processes.

Every test writes a pipeline file whose commands leave evidence (marker files, counters, logs),
runs the installed `pt` as a subprocess and checks the evidence and the run file's lines.
Orders are proven from the run file (the order of its lines is the order of decisions) and from
files the job processes themselves wrote, never from wall-clock measurements.
"""

from __future__ import annotations

import itertools
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import PT, jobs_of, run_lines, run_pt, status_json

WriteFile = Callable[..., Path]
TERMINAL_EVENTS = {"JobSucceeded", "JobFailed", "JobSkipped", "JobCancelled", "JobInterrupted"}
ENDS_RUNNING = {"JobSucceeded", "JobFailed", "JobRetrying", "JobCancelled", "JobInterrupted"}


# ---- helpers -------------------------------------------------------------------------------


def only_run(folder: Path) -> list[dict[str, Any]]:
    """The lines of the single run file under `folder`/.pulsaride."""
    runs = run_lines(folder / ".pulsaride")
    assert len(runs) == 1, sorted(runs)
    return next(iter(runs.values()))


def job_lines(lines: list[dict[str, Any]], job: str, event: str | None = None) -> list[dict]:
    return [ln for ln in lines if ln.get("job") == job and event in (None, ln["event"])]


def index_of(lines: list[dict[str, Any]], job: str, events: set[str]) -> int:
    """Position (seq) of the first line of `job` whose event is in `events`."""
    return next(ln["seq"] for ln in lines if ln.get("job") == job and ln["event"] in events)


def clean(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout, result.stdout


def max_running(lines: list[dict[str, Any]]) -> int:
    """Replay the run file's RUNNING set line by line; return its largest size."""
    running: set[str] = set()
    most = 0
    for line in lines:
        if line["event"] == "JobStarted":
            assert line["job"] not in running
            running.add(line["job"])
        elif line["event"] in ENDS_RUNNING:
            running.discard(line["job"])
        most = max(most, len(running))
    return most


# ---- 1. stages run in order ----------------------------------------------------------------


def test_stage_n_plus_1_starts_only_after_every_job_of_stage_n_is_terminal(
        pipeline_file: WriteFile) -> None:
    # Stage `late` has jobs with no needs at all: only the stage rule keeps them waiting.
    # Stage `early` ends with a slow job, a failing job and a skipped one.
    path = pipeline_file("""
        stages: [early, late, last]
        jobs:
          e-slow:  {stage: early, command: "echo start e-slow >> order.log; sleep 0.3; echo end e-slow >> order.log"}
          e-quick: {stage: early, command: "echo start e-quick >> order.log; echo end e-quick >> order.log"}
          e-fail:  {stage: early, command: "echo start e-fail >> order.log; sleep 0.1; echo end e-fail >> order.log; exit 1"}
          e-skip:  {stage: early, command: "echo never >> order.log", needs: [e-fail]}
          l-1:     {stage: late,  command: "echo start l-1 >> order.log; echo end l-1 >> order.log"}
          l-2:     {stage: late,  command: "echo start l-2 >> order.log; sleep 0.1; echo end l-2 >> order.log"}
          z-1:     {stage: last,  command: "echo start z-1 >> order.log; echo end z-1 >> order.log"}
    """)
    result = run_pt("pipeline", "run", str(path), cwd=path.parent)
    clean(result)
    assert result.returncode == 1  # e-fail failed

    # Evidence 1: what the job processes wrote, in the order they wrote it.
    log = (path.parent / "order.log").read_text().split("\n")[:-1]
    position = {line: n for n, line in enumerate(log)}
    assert "never" not in log
    for early in ("e-slow", "e-quick", "e-fail"):
        for late in ("l-1", "l-2", "z-1"):
            assert position[f"end {early}"] < position[f"start {late}"], log
    for late in ("l-1", "l-2"):
        assert position[f"end {late}"] < position["start z-1"], log

    # Evidence 2: the run file: every job of a stage terminal before a job of the next starts.
    lines = only_run(path.parent)
    stages = {"early": ["e-slow", "e-quick", "e-fail", "e-skip"], "late": ["l-1", "l-2"],
              "last": ["z-1"]}
    order = list(stages)
    for before, after in itertools.pairwise(order):
        last_end = max(index_of(lines, job, TERMINAL_EVENTS) for job in stages[before])
        first_start = min(index_of(lines, job, {"JobStarted"}) for job in stages[after])
        assert last_end < first_start, (before, after)


def test_a_stage_waits_for_a_retrying_job_of_the_previous_stage(
        pipeline_file: WriteFile) -> None:
    path = pipeline_file("""
        stages: [one, two]
        jobs:
          flaky: {stage: one, command: "echo x >> tries; test $(wc -l < tries) -ge 2", retry: {max: 1, delay: 0.2}}
          next:  {stage: two, command: "test $(wc -l < tries) -eq 2"}
    """)
    result = run_pt("pipeline", "run", str(path), cwd=path.parent)
    clean(result)
    assert result.returncode == 0, result.stdout
    lines = only_run(path.parent)
    assert index_of(lines, "flaky", {"JobSucceeded"}) < index_of(lines, "next", {"JobStarted"})


# ---- 2. parallelism --------------------------------------------------------------------------


# Each job creates its marker, counts the markers present, and removes its marker before it
# ends: a count above the bound would prove two more jobs than allowed alive at once.
COUNTING_JOB = ('mkdir -p running && touch running/$PT_JOB && ls running | wc -l > seen-$PT_JOB'
                ' && sleep 0.2 && rm running/$PT_JOB')


@pytest.mark.parametrize(("flag", "bound"), [(["--parallelism", "2"], 2), ([], 4),
                                             (["-j", "1"], 1)])
def test_parallelism_bound_is_never_exceeded(pipeline_file: WriteFile, flag: list[str],
                                             bound: int) -> None:
    jobs = "\n".join(f'  p{n}: {{stage: s, command: "{COUNTING_JOB}"}}' for n in range(6))
    path = pipeline_file(f"stages: [s]\njobs:\n{jobs}\n")
    result = run_pt("pipeline", "run", str(path), *flag, cwd=path.parent)
    clean(result)
    assert result.returncode == 0, result.stdout + result.stderr
    seen = [int((path.parent / f"seen-p{n}").read_text()) for n in range(6)]
    assert max(seen) <= bound, seen
    lines = only_run(path.parent)
    # The scheduler fills every free slot at once, so the bound is reached, never passed.
    assert max_running(lines) == bound
    assert lines[0]["parameters"]["parallelism"] == bound
    assert len(job_lines(lines, "p5", "JobSucceeded")) == 1


def test_parallel_jobs_do_run_at_the_same_time(pipeline_file: WriteFile) -> None:
    # a and b each wait for the other's marker: this only finishes if both run at once.
    path = pipeline_file("""
        stages: [s]
        jobs:
          a: {stage: s, command: "touch a.up; while [ ! -f b.up ]; do sleep 0.02; done", timeout: 20}
          b: {stage: s, command: "touch b.up; while [ ! -f a.up ]; do sleep 0.02; done", timeout: 20}
    """)
    result = run_pt("pipeline", "run", str(path), "--parallelism", "2", cwd=path.parent)
    assert result.returncode == 0, result.stdout


# ---- 3. needs ----------------------------------------------------------------------------------


def test_needs_order_jobs_inside_a_stage(pipeline_file: WriteFile) -> None:
    # c needs b needs a; d needs nothing; e needs a and d. Each job checks that the files of
    # its needs exist (their processes have finished) before it writes its own.
    path = pipeline_file("""
        stages: [s]
        jobs:
          c: {stage: s, command: "test -f b.done && touch c.done", needs: [b]}
          b: {stage: s, command: "sleep 0.1; test -f a.done && touch b.done", needs: [a]}
          a: {stage: s, command: "sleep 0.2; touch a.done"}
          d: {stage: s, command: "touch d.done"}
          e: {stage: s, command: "test -f a.done && test -f d.done && touch e.done", needs: [a, d]}
    """)
    result = run_pt("pipeline", "run", str(path), cwd=path.parent)
    clean(result)
    assert result.returncode == 0, result.stdout
    for name in "abcde":
        assert (path.parent / f"{name}.done").exists()
    lines = only_run(path.parent)
    for job, need in [("b", "a"), ("c", "b"), ("e", "a"), ("e", "d")]:
        assert index_of(lines, need, {"JobSucceeded"}) < index_of(lines, job, {"JobStarted"})
    # d has no needs: it starts in the very first batch, beside a.
    first_batch = {ln["job"] for ln in lines if ln["event"] == "JobStarted"
                   and ln["at"] == lines[1]["at"]}
    assert first_batch == {"a", "d"}


def test_needs_across_stages_wait_for_the_earlier_job(pipeline_file: WriteFile) -> None:
    path = pipeline_file("""
        stages: [one, two]
        jobs:
          base: {stage: one, command: "sleep 0.1; echo ok > base.out"}
          top:  {stage: two, command: "grep -q ok base.out", needs: [base]}
    """)
    result = run_pt("pipeline", "run", str(path), cwd=path.parent)
    assert result.returncode == 0, result.stdout


# ---- 4. when: on_success / always / manual -------------------------------------------------


def test_on_success_runs_after_success_and_is_skipped_after_failure(
        pipeline_file: WriteFile) -> None:
    path = pipeline_file("""
        stages: [s, t]
        jobs:
          good:  {stage: s, command: "true"}
          bad:   {stage: s, command: "false"}
          after-good: {stage: t, command: "touch after-good.ran", needs: [good]}
          after-bad:  {stage: t, command: "touch after-bad.ran", needs: [bad]}
          after-both: {stage: t, command: "touch after-both.ran", needs: [good, bad], when: on_success}
    """)
    result = run_pt("pipeline", "run", str(path), cwd=path.parent)
    clean(result)
    assert result.returncode == 1
    assert (path.parent / "after-good.ran").exists()
    assert not (path.parent / "after-bad.ran").exists()
    assert not (path.parent / "after-both.ran").exists()
    jobs = jobs_of(status_json(path))
    assert {n: j["status"] for n, j in jobs.items()} == {
        "good": "DONE", "bad": "FAILED", "after-good": "DONE", "after-bad": "SKIPPED",
        "after-both": "SKIPPED"}


def test_always_runs_once_its_needs_are_terminal_whatever_their_outcome(
        pipeline_file: WriteFile) -> None:
    path = pipeline_file("""
        stages: [s, t]
        jobs:
          bad:       {stage: s, command: "false"}
          skipped:   {stage: s, command: "true", needs: [bad]}
          good:      {stage: s, command: "sleep 0.2; touch good.done"}
          cleanup:   {stage: s, command: "test -f good.done && touch cleanup.ran", needs: [bad, skipped, good], when: always}
          report:    {stage: t, command: "touch report.ran", needs: [skipped], when: always}
          nothing:   {stage: t, command: "touch nothing.ran", when: always}
    """)
    result = run_pt("pipeline", "run", str(path), cwd=path.parent)
    clean(result)
    assert result.returncode == 1  # `bad` failed; `always` jobs do not change that
    for ran in ("cleanup.ran", "report.ran", "nothing.ran"):
        assert (path.parent / ran).exists(), ran
    jobs = jobs_of(status_json(path))
    assert jobs["cleanup"]["status"] == "DONE"
    assert jobs["report"]["status"] == "DONE"
    assert jobs["skipped"]["status"] == "SKIPPED"
    lines = only_run(path.parent)
    # `always` still waits for every need to be terminal (good takes the longest).
    assert index_of(lines, "good", {"JobSucceeded"}) < index_of(lines, "cleanup", {"JobStarted"})


def test_manual_waits_only_when_its_needs_are_done(pipeline_file: WriteFile) -> None:
    path = pipeline_file("""
        stages: [s, gate]
        jobs:
          good: {stage: s, command: "true"}
          bad:  {stage: s, command: "false"}
          release-good: {stage: gate, command: "touch good.released", needs: [good], when: manual}
          release-bad:  {stage: gate, command: "touch bad.released", needs: [bad], when: manual}
    """)
    result = run_pt("pipeline", "run", str(path), "--no-wait", cwd=path.parent)
    clean(result)
    assert result.returncode == 3, result.stdout
    jobs = jobs_of(status_json(path))
    assert jobs["release-good"]["status"] == "WAITING"
    assert jobs["release-bad"]["status"] == "SKIPPED"
    assert jobs["release-bad"]["cause"] == "bad"
    assert not list(path.parent.glob("*.released"))  # a gate never runs by itself


# ---- 5. retries ----------------------------------------------------------------------------


# Fails on its first two attempts, succeeds on the third (the counter file survives attempts).
TWO_FAILURES = 'echo attempt $PT_ATTEMPT; echo x >> tries; test $(wc -l < tries) -ge 3'


@pytest.mark.parametrize(("retry", "status", "attempts", "code"),
                         [("2", "DONE", 3, 0), ("1", "FAILED", 2, 1), ("0", "FAILED", 1, 1),
                          ("{max: 5}", "DONE", 3, 0)])
def test_retry_counts(pipeline_file: WriteFile, retry: str, status: str, attempts: int,
                      code: int) -> None:
    path = pipeline_file(f"""
        stages: [s]
        jobs:
          flaky: {{stage: s, command: "{TWO_FAILURES}", retry: {retry}}}
    """)
    result = run_pt("pipeline", "run", str(path), cwd=path.parent)
    clean(result)
    assert result.returncode == code
    job = jobs_of(status_json(path))["flaky"]
    assert job["status"] == status
    assert job["attempt"] == attempts
    assert len((path.parent / "tries").read_text().splitlines()) == attempts
    lines = only_run(path.parent)
    assert [ln["attempt"] for ln in job_lines(lines, "flaky", "JobStarted")] == \
        list(range(1, attempts + 1))
    assert len(job_lines(lines, "flaky", "JobRetrying")) == attempts - 1
    logs = path.parent / ".pulsaride/pipeline-runs" / lines[0]["pipeline_run_id"] / "logs/flaky"
    assert sorted(p.name for p in logs.iterdir()) == [f"attempt-{n}.log"
                                                      for n in range(1, attempts + 1)]
    for n in range(1, attempts + 1):
        assert (logs / f"attempt-{n}.log").read_text() == f"attempt {n}\n"


def test_retry_mapping_waits_the_delay_with_backoff(pipeline_file: WriteFile) -> None:
    path = pipeline_file(f"""
        stages: [s]
        jobs:
          flaky: {{stage: s, command: "{TWO_FAILURES}",
                   retry: {{max: 2, delay: 150ms, backoff: 2}}}}
    """)
    result = run_pt("pipeline", "run", str(path), cwd=path.parent)
    assert result.returncode == 0, result.stdout
    lines = only_run(path.parent)

    def t(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    retrying = job_lines(lines, "flaky", "JobRetrying")
    starts = job_lines(lines, "flaky", "JobStarted")
    assert len(retrying) == 2
    # retry_at is the failure time plus delay * backoff**(n-1): 0.15 s, then 0.3 s.
    gaps = [(t(r["retry_at"]) - t(r["finished_at"])).total_seconds() for r in retrying]
    assert gaps == [0.15, 0.3]
    # and the next attempt was not started before it was due.
    for retry, start in zip(retrying, starts[1:], strict=True):
        assert t(start["started_at"]) >= t(retry["retry_at"])


# ---- 6. failure propagation --------------------------------------------------------------


def test_failure_skips_dependents_transitively_naming_the_failing_job(
        pipeline_file: WriteFile) -> None:
    path = pipeline_file("""
        stages: [migrate, validate, cutover]
        jobs:
          migrate-orders: {stage: migrate, command: "exit 7"}
          migrate-items:  {stage: migrate, command: "touch items.ran", needs: [migrate-orders]}
          migrate-other:  {stage: migrate, command: "touch other.ran"}
          validate-items: {stage: validate, command: "touch validate.ran", needs: [migrate-items]}
          validate-other: {stage: validate, command: "touch validate-other.ran", needs: [migrate-other]}
          cutover:        {stage: cutover, command: "touch cutover.ran", needs: [validate-items, validate-other]}
    """)
    result = run_pt("pipeline", "run", str(path), cwd=path.parent)
    clean(result)
    assert result.returncode == 1
    assert sorted(p.name for p in path.parent.glob("*.ran")) == ["other.ran",
                                                                  "validate-other.ran"]
    document = status_json(path)
    assert document["state"] == "failed"
    jobs = jobs_of(document)
    failed = jobs["migrate-orders"]
    assert (failed["status"], failed["exit_code"], failed["error"]) == ("FAILED", 7, "exit code 7")
    for name in ("migrate-items", "validate-items", "cutover"):
        assert jobs[name]["status"] == "SKIPPED"
        assert jobs[name]["cause"] == "migrate-orders"
        assert "migrate-orders (FAILED)" in jobs[name]["reason"]
        assert jobs[name]["attempt"] == 0  # never started
    assert jobs["migrate-items"]["reason"] == "needs migrate-orders (FAILED)"
    assert jobs["cutover"]["reason"].startswith("needs validate-items (SKIPPED)")
    # The run file carries the same reason and cause on the SKIPPED lines.
    lines = only_run(path.parent)
    skip = job_lines(lines, "validate-items", "JobSkipped")[0]
    assert skip["cause"] == "migrate-orders"
    assert skip["status"] == "SKIPPED"
    # and the terminal shows it too.
    assert "cutover" in result.stdout
    assert "cause: migrate-orders (FAILED)" in result.stdout


# ---- 7. on_failure: abort --------------------------------------------------------------------


def test_abort_terminates_running_jobs_with_their_children_and_starts_nothing_new(
        pipeline_file: WriteFile) -> None:
    marker = f"30.{secrets.randbelow(10**9):09d}"  # `sleep 30.xxxxxxxxx`: unique per test run
    path = pipeline_file(f"""
        stages: [pre, later]
        jobs:
          long:    {{stage: pre, command: "sleep {marker} & sleep {marker} & touch long.up; wait"}}
          check:   {{stage: pre, command: "while [ ! -f long.up ]; do sleep 0.02; done; exit 4",
                     on_failure: abort}}
          blocked: {{stage: pre, command: "touch blocked.ran", needs: [check]}}
          after:   {{stage: later, command: "touch after.ran"}}
    """)
    result = run_pt("pipeline", "run", str(path), cwd=path.parent, timeout=25)
    clean(result)
    assert result.returncode == 1
    survivors = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True,
                               text=True, check=False)
    assert survivors.stdout == "", f"processes of the aborted job survived: {survivors.stdout}"
    assert not (path.parent / "blocked.ran").exists()
    assert not (path.parent / "after.ran").exists()

    document = status_json(path)
    assert document["state"] == "aborted"
    assert "check" in document["aborted"]
    jobs = jobs_of(document)
    assert jobs["check"]["status"] == "FAILED"
    assert jobs["long"]["status"] == "CANCELLED"
    assert jobs["long"]["error"].startswith("stopped: pipeline aborted")
    assert jobs["blocked"]["status"] == "CANCELLED"
    assert jobs["after"]["status"] == "CANCELLED"
    lines = only_run(path.parent)
    started = {ln["job"] for ln in lines if ln["event"] == "JobStarted"}
    assert started == {"long", "check"}
    events = [ln["event"] for ln in lines]
    assert "RunAborted" in events
    assert [ln["event"] for ln in lines[-2:]] == ["RunFinished", "RunCheckpoint"]
    assert lines[-2]["outcome"] == "aborted"
    assert "pipeline aborted" in result.stdout
    # The summary's line of the stopped job says why once, not twice.
    long_line = next(ln for ln in result.stdout.splitlines() if ln.startswith("  ■  long "))
    assert long_line.count("pipeline aborted") == 1, long_line


def test_abort_after_retries_are_exhausted_only(pipeline_file: WriteFile) -> None:
    path = pipeline_file(f"""
        stages: [s, t]
        jobs:
          check: {{stage: s, command: "{TWO_FAILURES}", retry: 2, on_failure: abort}}
          next:  {{stage: t, command: "touch next.ran"}}
    """)
    result = run_pt("pipeline", "run", str(path), cwd=path.parent)
    assert result.returncode == 0, result.stdout
    assert (path.parent / "next.ran").exists()


@pytest.mark.slow
def test_abort_kills_a_job_that_ignores_sigterm(pipeline_file: WriteFile) -> None:
    marker = f"30.{secrets.randbelow(10**9):09d}"
    path = pipeline_file(f"""
        stages: [s]
        jobs:
          stubborn: {{stage: s, command: "trap '' TERM; sleep {marker} & touch up; wait; wait"}}
          check:    {{stage: s, command: "while [ ! -f up ]; do sleep 0.02; done; false",
                      on_failure: abort}}
    """)
    result = run_pt("pipeline", "run", str(path), cwd=path.parent, timeout=25)
    assert result.returncode == 1
    survivors = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True,
                               text=True, check=False)
    assert survivors.stdout == ""
    assert jobs_of(status_json(path))["stubborn"]["status"] == "CANCELLED"


# ---- 8. exit codes ------------------------------------------------------------------------


@pytest.mark.parametrize(("jobs", "flags", "code", "state"), [
    ('a: {stage: s, command: "true"}', [], 0, "succeeded"),
    ('a: {stage: s, command: "false"}', [], 1, "failed"),
    ('a: {stage: s, command: "false", on_failure: abort}', [], 1, "aborted"),
    ('a: {stage: s, command: "true", when: manual}', ["--no-wait"], 3, "awaiting approval"),
])
def test_exit_codes(pipeline_file: WriteFile, jobs: str, flags: list[str], code: int,
                    state: str) -> None:
    path = pipeline_file(f"stages: [s]\njobs:\n  {jobs}\n")
    result = run_pt("pipeline", "run", str(path), *flags, cwd=path.parent)
    clean(result)
    assert result.returncode == code
    assert status_json(path)["state"] == state


def test_exit_code_2_for_bad_input_and_nothing_is_recorded(pipeline_file: WriteFile) -> None:
    path = pipeline_file('stages: [s]\njobs:\n  a: {stage: t, command: "true"}\n')
    result = run_pt("pipeline", "run", str(path), cwd=path.parent)
    clean(result)
    assert result.returncode == 2
    assert not (path.parent / ".pulsaride").exists()


def test_json_output_is_a_document_with_outcome_and_progress_on_stderr(
        pipeline_file: WriteFile) -> None:
    path = pipeline_file('stages: [s]\njobs:\n  a: {stage: s, command: "echo hi"}\n')
    result = run_pt("pipeline", "run", str(path), "--json", cwd=path.parent)
    assert result.returncode == 0
    document = orjson.loads(result.stdout)
    assert (document["outcome"], document["exit_code"], document["state"]) == \
        ("succeeded", 0, "succeeded")
    assert "a | hi" in result.stderr


# ---- job processes --------------------------------------------------------------------------


def test_commands_run_through_the_shell_with_the_environment(pipeline_file: WriteFile) -> None:
    path = pipeline_file("""
        stages: [s]
        jobs:
          check-schema: {stage: s, command: "test -n \\"$TGT_URL\\" && echo \\"$TGT_URL\\" | tr a-z A-Z > url.txt"}
    """)
    result = run_pt("pipeline", "run", str(path), cwd=path.parent,
                    env={"TGT_URL": "postgresql://db/target"})
    assert result.returncode == 0, result.stdout
    assert (path.parent / "url.txt").read_text() == "POSTGRESQL://DB/TARGET\n"

    env = {k: v for k, v in os.environ.items() if k != "TGT_URL"}
    missing = subprocess.run([PT, "pipeline", "run", str(path)], cwd=path.parent, env=env,
                             capture_output=True, text=True, check=False, timeout=60)
    assert missing.returncode == 1  # without TGT_URL the `test -n` fails


def test_job_process_context(pipeline_file: WriteFile, tmp_path: Path) -> None:
    # A fake `pt` earlier on PATH: the jobs must still find the running one first.
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir()
    (fake_bin / "pt").write_text("#!/bin/sh\necho fake\n")
    (fake_bin / "pt").chmod(0o755)
    path = pipeline_file("""
        stages: [s]
        variables: {REGION: eu, LEVEL: 1, OVERRIDE: pipeline}
        jobs:
          probe:
            stage: s
            variables: {OVERRIDE: job, FLAG: true}
            command: >-
              pwd > cwd.txt;
              echo "$PT_RUN_ID $PT_JOB $PT_STAGE $PT_ATTEMPT" > ids.txt;
              command -v pt > which-pt.txt;
              pt --version > pt-version.txt;
              echo "$REGION $LEVEL $OVERRIDE $FLAG" > vars.txt
    """)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_pt("pipeline", "run", str(path), "--run-id", "ctx-1", cwd=elsewhere,
                    env={"PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}"})
    assert result.returncode == 0, result.stdout + result.stderr
    folder = path.parent
    assert Path((folder / "cwd.txt").read_text().strip()).samefile(folder)
    assert not list(elsewhere.iterdir())  # nothing written where pt was started
    assert (folder / "ids.txt").read_text() == "ctx-1 probe s 1\n"
    assert Path((folder / "which-pt.txt").read_text().strip()).samefile(PT)
    assert (folder / "pt-version.txt").read_text().startswith("pt, version")
    assert (folder / "vars.txt").read_text() == "eu 1 job true\n"


def test_output_is_captured_per_job_and_attempt_and_echoed(pipeline_file: WriteFile) -> None:
    path = pipeline_file("""
        stages: [s]
        jobs:
          talker: {stage: s, command: "echo out-$PT_ATTEMPT; echo err-$PT_ATTEMPT >&2; test $PT_ATTEMPT -ge 2", retry: 1}
          quiet-one: {stage: s, command: "printf 'no newline at the end'"}
    """)
    result = run_pt("pipeline", "run", str(path), "--run-id", "out-1", cwd=path.parent)
    assert result.returncode == 0, result.stdout
    logs = path.parent / ".pulsaride/pipeline-runs/out-1/logs"
    assert (logs / "talker/attempt-1.log").read_text() == "out-1\nerr-1\n"
    assert (logs / "talker/attempt-2.log").read_text() == "out-2\nerr-2\n"
    assert (logs / "quiet-one/attempt-1.log").read_text() == "no newline at the end"
    for text in ("talker | out-1", "talker | err-1", "talker | out-2",
                 "quiet-one | no newline at the end"):
        assert text in result.stdout
    # The run file points at each attempt's log.
    lines = only_run(path.parent)
    retry = job_lines(lines, "talker", "JobRetrying")[0]
    assert retry["log"] == "out-1/logs/talker/attempt-1.log"


def test_quiet_does_not_echo_job_output_but_still_logs_it(pipeline_file: WriteFile) -> None:
    path = pipeline_file('stages: [s]\njobs:\n  a: {stage: s, command: "echo secret-sauce"}\n')
    result = run_pt("pipeline", "run", str(path), "-q", "--run-id", "q1", cwd=path.parent)
    assert result.returncode == 0
    assert "secret-sauce" not in result.stdout + result.stderr
    assert "a" in result.stdout  # progress lines are still there
    log = path.parent / ".pulsaride/pipeline-runs/q1/logs/a/attempt-1.log"
    assert log.read_text() == "secret-sauce\n"


@pytest.mark.parametrize("timeout", ["0.3", "300ms"])
def test_timeout_kills_the_job_and_fails_it(pipeline_file: WriteFile, timeout: str) -> None:
    marker = f"20.{secrets.randbelow(10**9):09d}"
    path = pipeline_file(f"""
        stages: [s, t]
        jobs:
          slow: {{stage: s, command: "sleep {marker} & wait", timeout: {timeout}}}
          next: {{stage: t, command: "touch next.ran", needs: [slow]}}
    """)
    result = run_pt("pipeline", "run", str(path), cwd=path.parent, timeout=20)
    clean(result)
    assert result.returncode == 1
    job = jobs_of(status_json(path))["slow"]
    assert job["status"] == "FAILED"
    assert job["error"].startswith("timed out after 0.3s")
    assert subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True,
                          check=False).stdout == b""
    assert not (path.parent / "next.ran").exists()


def test_timeout_then_retry(pipeline_file: WriteFile) -> None:
    path = pipeline_file("""
        stages: [s]
        jobs:
          slow-once: {stage: s, command: "if [ $PT_ATTEMPT = 1 ]; then sleep 20; fi", timeout: 0.3, retry: 1}
    """)
    result = run_pt("pipeline", "run", str(path), cwd=path.parent, timeout=20)
    assert result.returncode == 0, result.stdout
    lines = only_run(path.parent)
    assert job_lines(lines, "slow-once", "JobRetrying")[0]["error"].startswith("timed out")


def test_a_job_ends_with_its_background_processes(pipeline_file: WriteFile) -> None:
    marker = f"30.{secrets.randbelow(10**9):09d}"
    path = pipeline_file(f"""
        stages: [s]
        jobs:
          leaves-a-child: {{stage: s, command: "sleep {marker} & echo started"}}
    """)
    result = run_pt("pipeline", "run", path.name, cwd=path.parent, timeout=25)
    assert result.returncode == 0, result.stdout
    assert subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True,
                          check=False).stdout == b""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_jobs_exits_130_and_resume_finishes(pipeline_file: WriteFile,
                                                               sig: signal.Signals) -> None:
    marker = f"30.{secrets.randbelow(10**9):09d}"
    path = pipeline_file(f"""
        stages: [s, t]
        jobs:
          quick: {{stage: s, command: "echo x >> quick.count"}}
          slow:  {{stage: s, command: "echo x >> slow.count; test -f fixed || (touch slow.up; sleep {marker} & wait)"}}
          later: {{stage: t, command: "echo x >> later.count"}}
    """)
    folder = path.parent
    runner = subprocess.Popen([PT, "pipeline", "run", path.name, "--run-id", "sig"], cwd=folder,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ))
    try:
        deadline = time.monotonic() + 30
        while not (folder / "slow.up").exists():
            assert runner.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        runner.send_signal(sig)
        out, err = runner.communicate(timeout=30)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert runner.returncode == 130, out + err
    assert "Traceback" not in err
    assert subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True,
                          check=False).stdout == b""
    document = status_json(path)
    assert document["state"] == "interrupted"
    jobs = jobs_of(document)
    assert (jobs["quick"]["status"], jobs["slow"]["status"], jobs["later"]["status"]) == \
        ("DONE", "CANCELLED", "PENDING")
    assert sig.name in jobs["slow"]["error"]

    (folder / "fixed").touch()
    resumed = run_pt("pipeline", "resume", path.name, "--run-id", "sig", cwd=folder)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    counts = {name: len((folder / f"{name}.count").read_text().splitlines())
              for name in ("quick", "slow", "later")}
    assert counts == {"quick": 1, "slow": 2, "later": 1}
