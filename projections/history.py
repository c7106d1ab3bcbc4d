"""Run history: one row per run of a pipeline (or of a whole state dir)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from pulsaride.engine.aggregate import PipelineRun

from .facts import RunFacts
from .status import run_state

SCHEMA = "pulsaride.history/1"
COLUMNS = ("run", "started", "ended", "by", "outcome", "done", "failed", "skipped", "resumes",
           "approvals")


def run_row(run: PipelineRun, facts: RunFacts, *, active: bool) -> dict[str, Any]:
    """The history row of one run."""
    counts = Counter(job.status.value for job in run.active_jobs.values())
    return {
        "pipeline_run_id": run.id,
        "pipeline": run.pipeline_path,
        "started_at": facts.first_at,
        "ended_at": None if active else facts.last_at,
        "started_by": run.started_by,
        "outcome": run_state(run, active),
        "jobs": len(run.active_jobs),
        "done": counts.get("DONE", 0),
        "failed": counts.get("FAILED", 0) + counts.get("INTERRUPTED", 0),
        "skipped": counts.get("SKIPPED", 0),
        "cancelled": counts.get("CANCELLED", 0),
        "resumes": len(facts.resumes),
        "approvals": [f"{a['job']} {a['decision']} by {a['by']}"
                      f"{'' if a['authenticated'] else ' (unauthenticated)'}"
                      for a in facts.approvals],
        "refused_approvals": len(facts.refusals),
        "damaged": None,
    }


def damaged_row(run_id: str, pipeline: str, started_at: str, started_by: str,
                problem: str) -> dict[str, Any]:
    """The history row of a run whose file cannot be replayed."""
    return {
        "pipeline_run_id": run_id, "pipeline": pipeline, "started_at": started_at,
        "ended_at": None, "started_by": started_by, "outcome": "damaged", "jobs": None,
        "done": None, "failed": None, "skipped": None, "cancelled": None, "resumes": None,
        "approvals": [], "refused_approvals": None, "damaged": problem,
    }


def history_document(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Every row, oldest first, as a stable document."""
    return {"schema": SCHEMA, "runs": rows}


def render_history(rows: list[dict[str, Any]]) -> str:
    """A table, oldest run first."""
    table = [COLUMNS] + [_cells(row) for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
            for line in table]
    damaged = [f"run {r['pipeline_run_id']}: {r['damaged']}" for r in rows if r["damaged"]]
    return "\n".join(text + damaged)


def _cells(row: dict[str, Any]) -> tuple[str, ...]:
    def time(value: str | None) -> str:
        return value[:19].replace("T", " ") if value else "-"

    def number(value: int | None) -> str:
        return "-" if value is None else str(value)

    return (row["pipeline_run_id"], time(row["started_at"]), time(row["ended_at"]),
            row["started_by"], row["outcome"], number(row["done"]), number(row["failed"]),
            number(row["skipped"]), number(row["resumes"]), "; ".join(row["approvals"]) or "-")
