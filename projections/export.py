"""Exports of one run for compliance: the replayed run as JSON, every transition as CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pulsaride.engine.aggregate import PipelineRun
from pulsaride.engine.times import format_time

from .facts import RunFacts
from .status import run_state, status_document

JSON_SCHEMA = "pulsaride.export/1"
CSV_COLUMNS = (
    "seq", "at", "event", "pipeline_run_id", "job", "stage", "status", "attempt", "started_at",
    "finished_at", "exit_code", "error", "reason", "cause", "by", "outcome", "log",
    "log_sha256", "prev", "decision", "head", "expires_at", "retry_at", "host",
)
"""The CSV columns, in order. New columns are only ever added at the end."""


def export_document(run: PipelineRun, facts: RunFacts, verification: dict[str, Any], *,
                    exported_at: datetime, tool_version: str) -> dict[str, Any]:
    """The replayed run: definition, per-job outcome and timing, decisions, resumes, verdict."""
    status = status_document(run, active=False, now=exported_at)
    return {
        "schema": JSON_SCHEMA,
        "pipeline_run_id": run.id,
        "exported_at": format_time(exported_at),
        "tool_version": tool_version,
        "pipeline": {"path": run.pipeline_path, "sha256": run.pipeline_sha256,
                     "definition": run.definition},
        "started_at": facts.first_at,
        "last_event_at": facts.last_at,
        "started_by": run.started_by,
        "outcome": run_state(run, active=False),
        "counts": status["counts"],
        "jobs": {job["name"]: {k: v for k, v in job.items() if k != "name"}
                 for stage in status["stages"] for job in stage["jobs"]},
        "approvals": facts.approvals,
        "refused_approvals": facts.refusals,
        "resumes": facts.resumes,
        "verification": verification,
    }


def export_csv(records: Iterable[dict[str, Any]]) -> str:
    """One row per line of the run file, CSV_COLUMNS in order (RFC 4180 quoting)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for record in records:
        actor = record.get("by") or record.get("started_by")
        writer.writerow([_cell(actor if column == "by" else record.get(column))
                         for column in CSV_COLUMNS])
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
