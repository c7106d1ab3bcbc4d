"""Exports of one run for compliance: the replayed run as JSON, every transition as CSV, and
the files of an evidence bundle. Pure: the caller reads the run and writes the files."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from pulsaride.engine.aggregate import PipelineRun
from pulsaride.engine.events import RecordedEvent
from pulsaride.engine.times import format_time, parse_time

from .facts import RunFacts
from .status import run_state, status_document

JSON_SCHEMA = "pulsaride.export/1"
CSV_COLUMNS = (
    "seq", "at", "event", "pipeline_run_id", "job", "stage", "status", "attempt", "started_at",
    "finished_at", "exit_code", "error", "reason", "cause", "by", "outcome", "log",
    "log_sha256", "prev", "decision", "head", "expires_at", "retry_at", "host",
)
"""The CSV columns, in order. New columns are only ever added at the end."""

BUNDLE_README = """\
Evidence bundle of pulsaride run {run_id} as of its last line ({at}), made by pt {version}.
Every time in it comes from the run itself, so exporting the same run again gives the same bytes.

Check that no file was changed since it was exported, with standard tools:

    sha256sum -c MANIFEST.sha256

{run_id}.jsonl is the run's append-only event file, one JSON line per transition; each line's
"prev" is the SHA-256 of the previous line's bytes (64 zeros for the first line). The folder
{run_id}/ holds the pipeline file as run and every job log; their SHA-256 digests are recorded
in the lines that name them. verification.json is pt's own check of all of this at export time.
"""


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


def export_json(run: PipelineRun, events: Iterable[RecordedEvent],
                verification: dict[str, Any], *, exported_at: datetime,
                tool_version: str) -> bytes:
    """export_document of the run replayed from `events`, as indented JSON."""
    document = export_document(run, RunFacts.collect(events), verification,
                               exported_at=exported_at, tool_version=tool_version)
    return orjson.dumps(document, option=orjson.OPT_INDENT_2)


def bundle_files(run_id: str, verification: dict[str, Any], as_of: datetime,
                 tool_version: str, replayed: bytes | str) -> dict[str, bytes]:
    """The bundle's own files beside the run's: deterministic, as no time in them is the time
    of export. `replayed` is export_json's bytes as of `as_of`, or why the run could not be
    replayed."""
    at = format_time(as_of)
    files = {
        "verification.json": orjson.dumps(verification, option=orjson.OPT_INDENT_2),
        "tool.json": orjson.dumps({"tool": "pt", "version": tool_version, "as_of": at},
                                  option=orjson.OPT_INDENT_2),
        "README.txt": BUNDLE_README.format(run_id=run_id, at=at, version=tool_version).encode(),
    }
    if isinstance(replayed, bytes):
        files["export.json"] = replayed
    else:
        files["export-error.txt"] = f"the run could not be replayed: {replayed}\n".encode()
    return files


def run_records(lines: Iterable[bytes]) -> list[dict[str, Any]]:
    """The run file's lines as objects; a line that is not a JSON object becomes a record
    saying so (so that a damaged run still exports)."""
    records = []
    for number, raw in enumerate(lines, start=1):
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            record = None
        records.append(record if isinstance(record, dict) else
                       {"seq": None, "event": f"<line {number} is not a JSON object>"})
    return records


def last_time(lines: Sequence[bytes]) -> datetime:
    """The time of the run's last line that has one (the epoch if none has)."""
    for raw in reversed(lines):
        try:
            return parse_time(orjson.loads(raw)["at"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
    return datetime.fromtimestamp(0, UTC)


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
