"""A run as an in-toto Statement v1: what an outside auditor's tools read.

Subjects are the run's files by SHA-256 (the run file, the pipeline file as run, every job log,
every validation report); the predicate (`https://pulsaride.dev/migration-run/v1`, schema in
schemas/migration-run-predicate.schema.json) says what happened: the chain head, the outcome,
each job with its outcome and log digest, each decision with its signer, each validation's
verdict. Pure: the caller reads the files and signs the statement (engine/attestations.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from pulsaride.engine.aggregate import PipelineRun

from .facts import RunFacts
from .status import run_state

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://pulsaride.dev/migration-run/v1"
VALIDATIONS = "/validations/"


def subjects(files: Iterable[tuple[str, bytes]]) -> list[dict[str, Any]]:
    """One resource descriptor per file (name relative to the runs folder), in name order."""
    return [{"name": name, "digest": {"sha256": hashlib.sha256(data).hexdigest()}}
            for name, data in sorted(files)]


def statement(run: PipelineRun, facts: RunFacts, files: Mapping[str, bytes], *, head: str,
              lines: int, verdict: str, tool_version: str) -> dict[str, Any]:
    """The in-toto Statement of `run`, whose files (name -> bytes) are `files`."""
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects(files.items()),
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "run_id": run.id,
            "chain_head": head,
            "lines": lines,
            "outcome": run_state(run, active=False),
            "started_by": run.started_by,
            "started_key": run.started_key or None,
            "pipeline_sha256": run.pipeline_sha256,
            "verification": verdict,
            "tool": {"name": "pt", "version": tool_version},
            "jobs": _jobs(run, digests),
            "approvals": [_approval(a) for a in facts.approvals],
            "validations": _validations(files),
        },
    }


def _jobs(run: PipelineRun, digests: Mapping[str, str]) -> list[dict[str, Any]]:
    return [{"name": job.name, "stage": job.stage, "status": job.status.value,
             "attempts": job.attempt, "exit_code": job.exit_code,
             "log": job.log, "log_sha256": digests.get(job.log) if job.log else None}
            for job in run.jobs.values()]


def _approval(approval: Mapping[str, Any]) -> dict[str, Any]:
    return {"job": approval["job"], "decision": approval["decision"], "by": approval["by"],
            "at": approval["at"], "head": approval["head"],
            "authenticated": approval["authenticated"],
            "key_fingerprint": approval["key_fingerprint"]}


def _validations(files: Mapping[str, bytes]) -> list[dict[str, Any]]:
    """The verdict of every validation report kept in the run folder."""
    found = []
    for name in sorted(n for n in files if VALIDATIONS in n and n.endswith(".json")):
        try:
            report = orjson.loads(files[name])
        except orjson.JSONDecodeError:
            report = {}
        if not isinstance(report, dict):
            report = {}
        found.append({"report": name, "sha256": hashlib.sha256(files[name]).hexdigest(),
                      "kind": report.get("kind"), "table": report.get("table"),
                      "status": report.get("status")})
    return found
