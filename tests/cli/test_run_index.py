"""The run index and `pt pipeline verify --all`, through real processes on real files: what a
run file cannot show about itself (its deletion, its replacement by another run's file, being
cut back to an earlier checkpoint or seal with the later seals removed) the index shows."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import run_pt

PIPELINE = """\
stages: [build, release]
jobs:
  build: {stage: build, command: "echo built"}
  gate: {stage: release, command: "echo released", when: manual, needs: [build]}
"""


def pt(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_pt(*args, cwd=folder, env={"LOGNAME": "olga"})


def runs(folder: Path) -> Path:
    return folder / ".pulsaride" / "pipeline-runs"


@pytest.fixture
def three_runs(tmp_path: Path) -> Path:
    """Runs r1 (gate approved, finished), r2 and r3 (waiting at the gate)."""
    (tmp_path / "pulsaride-pipeline.yml").write_text(PIPELINE)
    for run_id in ("r1", "r2", "r3"):
        started = pt(tmp_path, "pipeline", "run", "pulsaride-pipeline.yml", "--run-id", run_id,
                     "--no-wait", "-q")
        assert started.returncode == 3, started.stderr
    assert pt(tmp_path, "pipeline", "approve", "pulsaride-pipeline.yml", "--run-id", "r1",
              "--job", "gate").returncode == 0
    assert pt(tmp_path, "pipeline", "resume", "pulsaride-pipeline.yml", "--run-id", "r1",
              "-q").returncode == 0
    return tmp_path


def verify_all(folder: Path) -> dict[str, Any]:
    result = pt(folder, "pipeline", "verify", "--all", "--json")
    assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result.stderr
    document: dict[str, Any] = orjson.loads(result.stdout)
    assert (result.returncode == 0) == (document["verdict"] == "verified")
    return document


def index_messages(document: dict[str, Any]) -> list[str]:
    return [f["message"] for f in document["index"]["findings"]]


def test_every_run_and_the_index_verify_clean(three_runs: Path) -> None:
    document = verify_all(three_runs)
    assert document["verdict"] == "verified", document
    assert [r["pipeline_run_id"] for r in document["runs"]] == ["r1", "r2", "r3"]
    events = [orjson.loads(line)["event"] for line in
              (three_runs / ".pulsaride" / "run-index.jsonl").read_bytes().splitlines()]
    # r1: created, stopped at the gate, approved, finished (3 checkpoints); r2, r3: 1 each.
    assert events.count("created") == 3 and events.count("checkpoint") == 5
    text = pt(three_runs, "pipeline", "verify", "--all")
    assert text.returncode == 0 and "3 runs" in text.stdout and "VERIFIED" in text.stdout


def test_a_deleted_run_is_found(three_runs: Path) -> None:
    for path in runs(three_runs).glob("r2*"):
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    document = verify_all(three_runs)
    assert document["verdict"] == "failed"
    (message,) = index_messages(document)
    assert "run r2 is listed in the index" in message and "gone" in message


def test_a_run_file_swapped_for_another_is_found(three_runs: Path) -> None:
    # r3's file put in r2's place: each verifies alone (it is a whole, good chain).
    shutil.copy(runs(three_runs) / "r3.jsonl", runs(three_runs) / "r2.jsonl")
    document = verify_all(three_runs)
    assert any("run r2: its first line is not the one indexed" in m
               for m in index_messages(document)), document


def test_a_run_cut_back_to_an_earlier_checkpoint_is_found(three_runs: Path) -> None:
    path = runs(three_runs) / "r1.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    waiting = next(i for i, line in enumerate(lines) if b'"RunSuspended"' in line)
    path.write_bytes(b"".join(lines[:waiting + 1]))  # back to "waiting at the gate"
    single = pt(three_runs, "pipeline", "verify", "--run-id", "r1")
    assert single.returncode == 0  # alone, without a seal, the shorter file is a good chain
    document = verify_all(three_runs)
    assert any("run r1 has" in m and "cut back or rolled back" in m
               for m in index_messages(document)), document


def test_a_run_rolled_back_to_an_earlier_seal_is_found(tmp_path: Path) -> None:
    (tmp_path / "pulsaride-pipeline.yml").write_text(PIPELINE)
    assert pt(tmp_path, "pipeline", "keygen", "--out", str(tmp_path / "k.pem")).returncode == 0
    sealed = ("--seal-key", str(tmp_path / "k.pem"))
    assert pt(tmp_path, "pipeline", "run", "pulsaride-pipeline.yml", "--run-id", "s", "--no-wait",
              "-q", *sealed).returncode == 3
    assert pt(tmp_path, "pipeline", "approve", "pulsaride-pipeline.yml", "--run-id", "s",
              "--job", "gate", *sealed).returncode == 0
    assert pt(tmp_path, "pipeline", "resume", "pulsaride-pipeline.yml", "--run-id", "s", "-q",
              *sealed).returncode == 0
    run_file, seals = runs(tmp_path) / "s.jsonl", runs(tmp_path) / "s.seals.jsonl"
    first_seal = orjson.loads(seals.read_bytes().splitlines()[0])
    lines = run_file.read_bytes().splitlines(keepends=True)
    run_file.write_bytes(b"".join(lines[:first_seal["seq"]]))
    seals.write_bytes(seals.read_bytes().splitlines(keepends=True)[0])
    assert hashlib.sha256(lines[first_seal["seq"] - 1].rstrip(b"\n")).hexdigest() == \
        first_seal["head"]
    single = pt(tmp_path, "pipeline", "verify", "--run-id", "s", "--pubkey",
                str(tmp_path / "k.pem.pub"))
    assert single.returncode == 0, single.stdout  # what ADR 0006 says a seal cannot catch
    document = verify_all(tmp_path)
    assert any("run s has" in m for m in index_messages(document)), document


def test_an_edited_index_line_breaks_its_chain(three_runs: Path) -> None:
    index = three_runs / ".pulsaride" / "run-index.jsonl"
    lines = index.read_bytes().splitlines()
    record = orjson.loads(lines[1]) | {"lines": 2}
    lines[1] = orjson.dumps(record)
    index.write_bytes(b"\n".join(lines) + b"\n")
    document = verify_all(three_runs)
    findings = document["index"]["findings"]
    assert findings[0]["line"] == 3 and "chain is broken" in findings[0]["message"]


def test_a_run_the_index_never_saw_is_noted(three_runs: Path) -> None:
    data = (runs(three_runs) / "r3.jsonl").read_bytes()
    (three_runs / ".pulsaride" / "run-index.jsonl").unlink()
    document = verify_all(three_runs)
    assert document["index"]["runs_not_indexed"] == ["r1", "r2", "r3"]
    assert document["verdict"] == "verified"  # no index: nothing to contradict
    assert data == (runs(three_runs) / "r3.jsonl").read_bytes()


def test_all_and_run_id_together_is_one_line(three_runs: Path) -> None:
    result = pt(three_runs, "pipeline", "verify", "--all", "--run-id", "r1")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
