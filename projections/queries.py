"""Read-side queries: replay run files and fold them into views (for the CLI and the web).

The folds themselves (status, history, timeline) are pure; this module is the thin I/O shell
that feeds them, shared so the terminal and the dashboard show the same thing.
"""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Any

from pulsaride.engine.errors import PulsarideError, RunIdError
from pulsaride.engine.layout import StateDir
from pulsaride.engine.operations import read_run, utc_now
from pulsaride.engine.runstore import open_store
from pulsaride.engine.store import check_run_id

from .facts import RunFacts
from .history import damaged_row, run_row
from .status import status_document
from .timeline import timeline


def history_rows(state: StateDir, pipeline_path: Path | None = None,
                 store: str | None = None) -> list[dict[str, Any]]:
    """One row per run in `state` or the shared `store` (of `pipeline_path` only, when given),
    oldest first; a run whose lines cannot be replayed is a "damaged" row, never an error."""
    wanted = str(pipeline_path.resolve()) if pipeline_path is not None else None
    rows = []
    with closing(open_store(store, state)) as runs:
        summaries = runs.summaries()
    for summary in summaries:
        if wanted is not None and summary.pipeline_path != wanted:
            continue
        try:
            view = read_run(None, state.root, summary.run_id, with_events=True, store=store)
        except PulsarideError as exc:
            rows.append(damaged_row(summary.run_id, summary.pipeline_path, summary.started_at,
                                    summary.started_by, str(exc)))
            continue
        rows.append(run_row(view.run, RunFacts.collect(view.events), active=view.active))
    if wanted is None and not store:
        rows += _unlisted(state, {row["pipeline_run_id"] for row in rows})
    return rows


def _unlisted(state: StateDir, listed: set[str]) -> list[dict[str, Any]]:
    """Damaged rows for the run files whose first line does not even say which run and
    pipeline they are (empty, torn or garbled from the start): listed last, never left out."""
    rows = []
    for path in sorted(state.runs.glob("*.jsonl")) if state.runs.is_dir() else []:
        run_id = path.stem
        if run_id in listed or not path.is_file():
            continue
        try:
            check_run_id(run_id)
        except RunIdError:
            continue
        try:
            read_run(None, state.root, run_id)
            problem = f"{path}: line 1: does not start run {run_id}"
        except PulsarideError as exc:
            problem = str(exc)
        rows.append(damaged_row(run_id, "", "", "", problem))
    return rows


def run_document(state: StateDir, run_id: str, *, with_timeline: bool = False) -> dict[str, Any]:
    """The status document of one run (plus its timeline when asked)."""
    view = read_run(None, state.root, run_id, with_events=with_timeline)
    tail = len(view.tail.data) if view.tail else 0
    document = status_document(view.run, active=view.active, now=utc_now(),
                               torn_tail_bytes=tail)
    if with_timeline:
        document["timeline"] = timeline(view.events)
    return document
