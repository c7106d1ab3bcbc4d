"""Shared helpers: real `pt` subprocesses, pipeline files in temporary folders, run files."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

PT = str(Path(sys.executable).parent / "pt")


def run_pt(*args: str, cwd: Path, env: dict[str, str] | None = None,
           timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the installed `pt` as a real process and capture its output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([PT, *args], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def wait_for_event(folder: Path, run_id: str, event: str, proc: subprocess.Popen[str],
                   deadline: float = 30) -> None:
    """Poll the run file until a line with `event` appears (the runner reached it)."""
    path = folder / ".pulsaride" / "pipeline-runs" / f"{run_id}.jsonl"
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if path.exists() and any(orjson.loads(raw)["event"] == event
                                 for raw in path.read_bytes().splitlines()
                                 if raw.endswith(b"}")):
            return
        assert proc.poll() is None, f"the run ended early: {proc.communicate()}"
        time.sleep(0.02)
    raise AssertionError(f"no {event} line in {run_id} within {deadline}s")


def status_json(path: Path, *extra: str) -> dict[str, Any]:
    """`pt pipeline status --json` of the pipeline at `path`, run from its folder; must exit 0."""
    result = run_pt("pipeline", "status", str(path), "--json", *extra, cwd=path.parent)
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = orjson.loads(result.stdout)
    return document


def jobs_of(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The jobs of a `pt pipeline status --json` document, by name."""
    return {job["name"]: job for stage in document["stages"] for job in stage["jobs"]}


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single `pt: error: ...` line a refused command prints, with no traceback."""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pt: error: ")
    return lines[0]


def run_lines(state_root: Path) -> dict[str, list[dict[str, Any]]]:
    """Every run file under `state_root` (a .pulsaride folder), parsed line by line."""
    runs = {}
    for path in sorted((state_root / "pipeline-runs").glob("*.jsonl")):
        runs[path.stem] = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    return runs


@pytest.fixture
def pipeline_file(tmp_path: Path) -> Callable[[str], Path]:
    """Write a pipeline file (dedented YAML) into a fresh folder and return its path."""

    def write(text: str, name: str = "pulsaride-pipeline.yml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def background() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start `pt` processes in the background; whatever is still alive at the end is killed."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        proc = subprocess.Popen([PT, *args], cwd=cwd, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                env={**os.environ, **(env or {})})
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
