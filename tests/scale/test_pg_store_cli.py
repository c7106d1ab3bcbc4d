# ruff: noqa: E501  (pipeline files are written as readable one-line YAML jobs)
"""The shared PostgreSQL store through real `pt` processes: a run waits in one process while
another approves it, exports verify, imports keep the bytes, ownership holds across processes."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import psycopg
import pytest
from psycopg import sql

from pulsaride.engine.times import parse_time
from tests.conftest import PT, run_pt

GATED = """\
stages: [migrate, cutover]
jobs:
  migrate: {stage: migrate, command: "echo migrated"}
  gate: {stage: cutover, command: "echo cut over", needs: [migrate], when: manual}
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "p.yml").write_text(GATED)
    return tmp_path


@pytest.fixture
def background() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def pt(folder: Path, store: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_pt(*args, cwd=folder, env={"PT_STORE": store})


def stored_lines(folder: Path, store: str, run_id: str) -> list[dict[str, object]]:
    result = pt(folder, store, "pipeline", "export", "--run-id", run_id, "--format", "jsonl")
    assert result.returncode == 0, result.stderr
    return [orjson.loads(line) for line in result.stdout.splitlines()]


def wait_for(folder: Path, store: str, run_id: str, event: str, deadline: float = 30) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        result = pt(folder, store, "pipeline", "export", "--run-id", run_id, "--format", "jsonl")
        if result.returncode == 0 and f'"event":"{event}"' in result.stdout:
            return
        time.sleep(0.1)
    raise AssertionError(f"no {event} line within {deadline}s")


def test_a_waiting_run_continues_at_once_when_another_process_approves(
        folder: Path, pg_url: str, background: list[subprocess.Popen[str]]) -> None:
    runner = subprocess.Popen([PT, "pipeline", "run", "p.yml", "--run-id", "w1", "-q"],
                              cwd=folder, env={**os.environ, "PT_STORE": pg_url},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    background.append(runner)
    wait_for(folder, pg_url, "w1", "JobAwaitingApproval")
    approved = pt(folder, pg_url, "pipeline", "approve", "p.yml", "--run-id", "w1", "--job", "gate")
    assert approved.returncode == 0, approved.stderr
    assert runner.wait(timeout=30) == 0, runner.communicate()
    lines = stored_lines(folder, pg_url, "w1")
    approval = next(line for line in lines if line["event"] == "JobApproved")
    started = next(line for line in lines if line["event"] == "JobStarted" and line["job"] == "gate")
    waited = _seconds(str(started["at"])) - _seconds(str(approval["at"]))
    assert 0 <= waited < 1.5, f"the runner saw the approval {waited:.2f}s late"
    assert lines[-2]["event"] == "RunFinished" and lines[-2]["outcome"] == "succeeded"


@pytest.mark.slow
def test_an_export_from_the_database_is_a_run_file_verify_accepts(folder: Path, pg_url: str) -> None:
    assert pt(folder, pg_url, "pipeline", "run", "p.yml", "--run-id", "e1", "--no-wait", "-q").returncode == 3
    assert pt(folder, pg_url, "pipeline", "approve", "p.yml", "--job", "gate").returncode == 0
    assert pt(folder, pg_url, "pipeline", "resume", "p.yml", "-q").returncode == 0
    target = folder / ".pulsaride/pipeline-runs/e1.jsonl"
    exported = pt(folder, pg_url, "pipeline", "export", "--run-id", "e1", "--format", "jsonl",
                  "-o", str(target))
    assert exported.returncode == 0, exported.stderr
    verified = run_pt("pipeline", "verify", "p.yml", "--run-id", "e1", cwd=folder)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "verified" in verified.stdout
    assert pt(folder, pg_url, "pipeline", "verify", "p.yml", "--run-id", "e1").returncode == 0
    target.write_bytes(target.read_bytes().replace(b'"echo migrated"', b'"echo MIGRATED"', 1))
    tampered = run_pt("pipeline", "verify", "p.yml", "--run-id", "e1", cwd=folder)
    assert tampered.returncode == 1 and "FAILED verification" in tampered.stdout


def test_the_store_indexes_its_runs_and_verify_all_finds_a_deleted_one(folder: Path,
                                                                       pg_url: str) -> None:
    for run_id in ("x1", "x2"):
        assert pt(folder, pg_url, "pipeline", "run", "p.yml", "--run-id", run_id, "--no-wait",
                  "-q").returncode == 3
    clean = pt(folder, pg_url, "pipeline", "verify", "--all", "--json")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert orjson.loads(clean.stdout)["index"]["lines"] == 4  # created and stopped, each
    base, schema = pg_url.split("?schema=")
    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(sql.SQL("DELETE FROM {}.pulsaride_events WHERE originator_id = %s")
                           .format(sql.Identifier(schema)), ("x1",))
    found = pt(folder, pg_url, "pipeline", "verify", "--all", "--json")
    assert found.returncode == 1, found.stdout + found.stderr
    messages = [f["message"] for f in orjson.loads(found.stdout)["index"]["findings"]]
    assert len(messages) == 1 and "run x1 is listed in the index" in messages[0]


@pytest.mark.slow
def test_an_imported_run_keeps_its_bytes_and_continues_in_the_database(folder: Path,
                                                                       pg_url: str) -> None:
    assert run_pt("pipeline", "run", "p.yml", "--run-id", "i1", "--no-wait", "-q", cwd=folder).returncode == 3
    original = (folder / ".pulsaride/pipeline-runs/i1.jsonl").read_bytes()
    imported = run_pt("pipeline", "import", ".pulsaride/pipeline-runs/i1.jsonl", "--store", pg_url,
                      cwd=folder)
    assert imported.returncode == 0, imported.stderr
    again = run_pt("pipeline", "import", ".pulsaride/pipeline-runs/i1.jsonl", "--store", pg_url,
                   cwd=folder)
    assert again.returncode == 2 and "already exists" in again.stderr
    exported = pt(folder, pg_url, "pipeline", "export", "--run-id", "i1", "--format", "jsonl")
    assert exported.stdout.encode() == original
    assert pt(folder, pg_url, "pipeline", "approve", "p.yml", "--job", "gate").returncode == 0
    assert pt(folder, pg_url, "pipeline", "resume", "p.yml", "-q").returncode == 0
    assert (folder / ".pulsaride/pipeline-runs/i1.jsonl").read_bytes() == original  # untouched
    history = pt(folder, pg_url, "pipeline", "history", "p.yml")
    assert "i1" in history.stdout and "succeeded" in history.stdout


def test_a_run_active_on_one_machine_cannot_be_resumed_from_another(
        folder: Path, pg_url: str, background: list[subprocess.Popen[str]]) -> None:
    runner = subprocess.Popen([PT, "pipeline", "run", "p.yml", "--run-id", "o1", "-q"],
                              cwd=folder, env={**os.environ, "PT_STORE": pg_url},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    background.append(runner)
    wait_for(folder, pg_url, "o1", "JobAwaitingApproval")
    elsewhere = folder / "elsewhere"  # another state dir: nothing shared but the database
    elsewhere.mkdir()
    (elsewhere / "p.yml").write_text(GATED)
    refused = pt(elsewhere, pg_url, "pipeline", "resume", "p.yml", "--run-id", "o1", "-q")
    assert refused.returncode == 2, refused.stderr
    assert f"pid {runner.pid}" in refused.stderr and "active in another process" in refused.stderr
    status = pt(elsewhere, pg_url, "pipeline", "status", "p.yml", "--run-id", "o1", "--json")
    assert orjson.loads(status.stdout)["active"] is True
    runner.kill()
    runner.wait()
    time.sleep(0.5)  # the database ends the dead runner's session
    status = pt(elsewhere, pg_url, "pipeline", "status", "p.yml", "--run-id", "o1", "--json")
    assert orjson.loads(status.stdout)["active"] is False


def test_two_approvers_racing_record_one_approval(folder: Path, pg_url: str) -> None:
    assert pt(folder, pg_url, "pipeline", "run", "p.yml", "--run-id", "a1", "--no-wait", "-q").returncode == 3
    env = {**os.environ, "PT_STORE": pg_url}
    racers = [subprocess.Popen([PT, "pipeline", "approve", "p.yml", "--job", "gate", "--as", who],
                               cwd=folder, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
              for who in ("ann", "bob", "cid")]
    codes = sorted(proc.wait(timeout=60) for proc in racers)
    assert codes == [0, 2, 2], [proc.communicate() for proc in racers]
    lines = stored_lines(folder, pg_url, "a1")
    assert [line["event"] for line in lines].count("JobApproved") == 1
    assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1))


def test_an_unreachable_store_is_one_clear_line(folder: Path) -> None:
    started = time.monotonic()
    result = pt(folder, "postgresql://postgres@127.0.0.1:9/nowhere", "pipeline", "status", "p.yml")
    assert result.returncode == 1
    assert result.stderr.startswith("pt: error: cannot reach the event store postgresql://")
    assert len(result.stderr.strip().splitlines()) == 1
    assert time.monotonic() - started < 15
    wrong = pt(folder, "mongodb://x", "pipeline", "run", "p.yml")
    assert wrong.returncode == 2 and "unsupported store" in wrong.stderr


def _seconds(at: str) -> float:
    return parse_time(at).timestamp()
