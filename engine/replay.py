"""Rebuilding a run's state from its file: the only way state is ever obtained."""

from __future__ import annotations

from datetime import datetime

from eventsourcing.domain import OriginatorIDError, OriginatorVersionError

from .aggregate import PipelineRun
from .errors import PulsarideError, RunFileError
from .events import RunEvent, RunStarted, TailQuarantined
from .runstore import RunLog

RecordedEvent = RunEvent | RunStarted


def replay(run_file: RunLog, keep: list[RecordedEvent] | None = None,
           heads: set[str] | None = None) -> PipelineRun:
    """Fold every good line of `run_file` into a PipelineRun (a torn tail is left in `.tail`);
    the events are also appended to `keep`, and each line's digest (the chain head after it)
    added to `heads`, when given."""
    run: PipelineRun | None = None
    for line_no, event in run_file.read_new():
        if keep is not None:
            keep.append(event)
        if heads is not None:
            heads.add(run_file.head)
        if run is None:
            assert isinstance(event, RunStarted)  # the store checks the first line
            run = _first(run_file, line_no, event)
        else:
            apply_line(run_file, run, line_no, event)
    if run is None:
        raise RunFileError(run_file.where, 1, "the run file holds no complete line: the run "
                           "never recorded its start (start it again with 'pt pipeline run "
                           f"--run-id {run_file.run_id}')")
    return run


def fold_new_lines(run_file: RunLog, run: PipelineRun) -> list[RecordedEvent]:
    """Fold lines written since the last read into `run`; return their events."""
    events: list[RecordedEvent] = []
    for line_no, event in run_file.read_new():
        apply_line(run_file, run, line_no, event)
        events.append(event)
    return events


def _first(run_file: RunLog, line_no: int, event: RunStarted) -> PipelineRun:
    try:
        run = event.mutate(None)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise RunFileError(run_file.where, line_no, f"malformed RunStarted: {exc}") from None
    assert isinstance(run, PipelineRun)
    return run


def apply_line(run_file: RunLog, run: PipelineRun, line_no: int, event: RecordedEvent) -> None:
    """Fold one line's event into `run`; a refusal names the line."""
    if isinstance(event, RunStarted):
        raise RunFileError(run_file.where, line_no, "a second RunStarted line")
    try:
        event.mutate(run)
    except PulsarideError as exc:
        raise RunFileError(run_file.where, line_no, str(exc)) from None
    except (OriginatorIDError, OriginatorVersionError) as exc:
        raise RunFileError(run_file.where, line_no, f"out of sequence: {exc}") from None
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise RunFileError(run_file.where, line_no,
                           f"malformed {type(event).__name__}: {exc}") from None


def quarantine_tail(run_file: RunLog, run: PipelineRun, at: datetime) -> None:
    """Move a torn tail aside and record that on `run` (call under the append lock)."""
    tail = run_file.tail
    if tail is None:
        return
    side = run_file.quarantine_tail()
    run.record(TailQuarantined, at, path=side.name, size=len(tail.data), sha256=tail.sha256)
