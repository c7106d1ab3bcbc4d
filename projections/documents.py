"""The documents the terminal and the dashboard both show: a run's status, the history.

Pure folds over what the read side (engine/run_views.py) replayed, shared so that both show
the same thing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pulsaride.engine.run_views import DamagedRun, RunView

from .facts import RunFacts
from .history import damaged_row, run_row
from .status import status_document
from .timeline import timeline


def history_rows(runs: Iterable[RunView | DamagedRun]) -> list[dict[str, Any]]:
    """One row per run, in the order given; a damaged run is a "damaged" row."""
    rows = []
    for entry in runs:
        if isinstance(entry, DamagedRun):
            rows.append(damaged_row(entry.run_id, entry.pipeline_path, entry.started_at,
                                    entry.started_by, entry.problem))
        else:
            rows.append(run_row(entry.run, RunFacts.collect(entry.events), active=entry.active))
    return rows


def run_document(view: RunView, now: datetime, *, with_timeline: bool = False) -> dict[str, Any]:
    """The status document of one run (plus its timeline when asked: `view` then holds the
    run's events)."""
    tail = len(view.tail.data) if view.tail else 0
    document = status_document(view.run, active=view.active, now=now, torn_tail_bytes=tail)
    if with_timeline:
        document["timeline"] = timeline(view.events)
    return document
