"""The read side: runs replayed from their store without changing anything, for the status,
history and dashboard views (which fold them in projections/)."""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from .aggregate import PipelineRun
from .errors import BadInputError, PulsarideError
from .events import RecordedEvent
from .jsonl_store import unlisted_run_ids
from .layout import StateDir, check_run_id
from .lines import Tail
from .replay import replay
from .stores import open_store


@dataclass(frozen=True)
class RunView:
    """A run as read from disk, for status and history views."""

    run: PipelineRun
    path: Path  # the run file (for a shared store: where an export would keep it)
    where: str  # where the lines were read from
    tail: Tail | None
    active: bool
    events: list[RecordedEvent]  # empty unless asked for


@dataclass(frozen=True)
class DamagedRun:
    """A run whose lines cannot be replayed, and why."""

    run_id: str
    pipeline_path: str
    started_at: str
    started_by: str
    problem: str


def locate_run(pipeline_path: Path | None, state_dir: Path | None,
               run_id: str | None, store: str | None = None) -> tuple[StateDir, str]:
    """The state dir and run id a command means: the given id, else FILE's latest run."""
    state = StateDir.for_command(pipeline_path, state_dir)
    if run_id is not None:
        return state, check_run_id(run_id)
    if pipeline_path is None:
        raise BadInputError("give a pipeline FILE or --run-id ID")
    with closing(open_store(store, state)) as runs:
        return state, runs.latest_run(pipeline_path)


def read_run(pipeline_path: Path | None, state_dir: Path | None, run_id: str | None, *,
             with_events: bool = False, store: str | None = None) -> RunView:
    """Replay a run (by default the latest of the pipeline file) without changing anything."""
    state = StateDir.for_command(pipeline_path, state_dir)
    with closing(open_store(store, state)) as runs:
        if run_id is None:
            if pipeline_path is None:
                raise BadInputError("give a pipeline FILE or --run-id ID")
            run_id = runs.latest_run(pipeline_path)
        run_file = runs.open(check_run_id(run_id))
        events: list[RecordedEvent] = []
        try:
            run = replay(run_file, keep=events if with_events else None)
        finally:
            run_file.close()
        return RunView(run=run, path=state.run_file(run_id), where=run_file.where,
                       tail=run_file.tail, active=runs.is_held(run_id), events=events)


def list_runs(state: StateDir, pipeline_path: Path | None = None,
              store: str | None = None) -> list[RunView | DamagedRun]:
    """Every run in `state` or the shared `store` (of `pipeline_path` only, when given), with
    its events, oldest first; a run whose lines cannot be replayed is a DamagedRun, never an
    error."""
    wanted = str(pipeline_path.resolve()) if pipeline_path is not None else None
    found: list[RunView | DamagedRun] = []
    with closing(open_store(store, state)) as runs:
        summaries = runs.summaries()
    for summary in summaries:
        if wanted is not None and summary.pipeline_path != wanted:
            continue
        try:
            found.append(read_run(None, state.root, summary.run_id, with_events=True,
                                  store=store))
        except PulsarideError as exc:
            found.append(DamagedRun(summary.run_id, summary.pipeline_path, summary.started_at,
                                    summary.started_by, str(exc)))
    if wanted is None and not store:
        found += _unlisted(state, {entry.run.id if isinstance(entry, RunView) else entry.run_id
                                   for entry in found})
    return found


def _unlisted(state: StateDir, listed: set[str]) -> list[DamagedRun]:
    """The run files whose first line does not even say which run and pipeline they are
    (empty, torn or garbled from the start): listed last, never left out."""
    damaged = []
    for run_id in unlisted_run_ids(state, listed):
        try:
            read_run(None, state.root, run_id)
            problem = f"{state.run_file(run_id)}: line 1: does not start run {run_id}"
        except PulsarideError as exc:
            problem = str(exc)
        damaged.append(DamagedRun(run_id, "", "", "", problem))
    return damaged
