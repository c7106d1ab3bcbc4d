"""The flow a new user runs, as tests and bench/pgloader_compare.py drive it: `pt scaffold`,
`pt pipeline run`, every gate approved, resumed to the end; and what scaffold wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import yaml

from tests.migration.conftest import Db, pt

MAX_GATES = 5


def scaffold_and_run(folder: Path, source: Db, target: Db, identifiers: str) -> None:
    """What the README tells a new user to do, with every gate approved."""
    folder.mkdir(exist_ok=True)
    env = {"PT_TARGET_URL": target.url}
    done = pt("scaffold", "--source-url", source.url, "--target-url", target.url,
              "--identifiers", identifiers, "-o", "pulsaride-pipeline.yml", cwd=folder)
    assert done.returncode == 0, done.stderr
    checked = pt("pipeline", "validate", "pulsaride-pipeline.yml", cwd=folder)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    result = pt("pipeline", "run", "pulsaride-pipeline.yml", "--no-wait", "-q", cwd=folder,
                env=env, timeout=900)
    for _ in range(MAX_GATES):
        if result.returncode != 3:
            break
        for job in _waiting(folder):
            approved = pt("pipeline", "approve", "pulsaride-pipeline.yml", "--job", job,
                          "--as", "reviewer", "--reason", "reviewed", cwd=folder)
            assert approved.returncode == 0, approved.stderr
        result = pt("pipeline", "resume", "pulsaride-pipeline.yml", "--no-wait", "-q",
                    cwd=folder, env=env, timeout=900)
    assert result.returncode == 0, _failure(folder, result.stdout + result.stderr)


def _waiting(folder: Path) -> list[str]:
    status = orjson.loads(pt("pipeline", "status", "pulsaride-pipeline.yml", "--json",
                             cwd=folder).stdout)
    return [job["name"] for stage in status["stages"] for job in stage["jobs"]
            if job["status"] == "WAITING"]


def _failure(folder: Path, output: str) -> str:
    """The output and the logs of the jobs that failed, for the assertion message."""
    status = orjson.loads(pt("pipeline", "status", "pulsaride-pipeline.yml", "--json",
                             cwd=folder).stdout)
    logs = [f"--- {job['name']}\n" + (folder / ".pulsaride" / "pipeline-runs" /
                                       job["log"]).read_text()[-3000:]
            for stage in status["stages"] for job in stage["jobs"]
            if job["status"] == "FAILED" and job.get("log")]
    return output[-3000:] + "\n" + "\n".join(logs)


def transforms(folder: Path) -> list[dict[str, Any]]:
    """The transform files pt scaffold wrote."""
    found = []
    for path in sorted(folder.glob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        if isinstance(document, dict) and "sources" in document:
            found.append(document)
    return found


def column_map(document: dict[str, Any]) -> tuple[str, str, list[str], list[str]]:
    """(source table, target table, source columns, target columns) of a transform."""
    fields = document["fields"]
    sources = [f["source"].split(".", 1)[1] for f in fields]
    return (document["sources"][0]["table"], document["target_table"], sources,
            [f["name"] for f in fields])


