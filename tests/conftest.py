"""Shared helpers: real `pt` subprocesses, pipeline files in temporary folders, run files."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
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
