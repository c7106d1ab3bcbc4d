"""Live progress of a run on the terminal: one line per transition, job output prefixed."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from typing import IO

import click

from pulsaride.engine.aggregate import PipelineRun
from pulsaride.engine.events import (
    JobApprovalRefused,
    JobApproved,
    JobAwaitingApproval,
    JobCancelled,
    JobEvent,
    JobFailed,
    JobInterrupted,
    JobRejected,
    JobRequeued,
    JobRetrying,
    JobSkipped,
    JobStarted,
    JobSucceeded,
    RunAborted,
    RunEvent,
    RunFinished,
    RunInterrupted,
    RunResumed,
    RunStarted,
    RunSuspended,
    TailQuarantined,
)
from pulsaride.engine.times import parse_time

_COLOURS = {"ok": "green", "bad": "red", "warn": "yellow", "info": "cyan", "dim": "bright_black"}


class ProgressReporter:
    """Prints what happens in a run as it happens (thread-safe; job output comes from threads)."""

    def __init__(self, stream: IO[str], *, approve_command: str, show_output: bool = True,
                 colour: bool | None = None) -> None:
        self._stream = stream
        self._approve = approve_command
        self._show_output = show_output
        self._colour = colour
        self._lock = threading.Lock()
        self._stage: str | None = None
        self._width = 12
        self._definition: object = None

    def events_recorded(self, run: PipelineRun, events: Sequence[RunEvent | RunStarted]) -> None:
        """Print one line for each event worth seeing."""
        if run.definition is not self._definition:
            self._definition = run.definition
            self._width = max((len(n) for n in run.definition["jobs"]), default=12)
        for event in events:
            text = self._describe(run, event)
            if text is not None:
                self._print(event.timestamp, *text)

    def job_output(self, job: str, attempt: int, line: str) -> None:
        """Print one line of a job's output, prefixed with the job's name."""
        if self._show_output:
            prefix = click.style(f"{job:>{self._width}} |", fg=_COLOURS["dim"])
            self._write(f"           {prefix} {line}")

    # ---- formatting ----------------------------------------------------------------------

    def _describe(self, run: PipelineRun,
                  event: RunEvent | RunStarted) -> tuple[str, str] | None:
        if isinstance(event, JobEvent):
            return self._describe_job(run, event)
        if isinstance(event, RunStarted):
            params = event.parameters
            return ("info", f"run {event.originator_id} started by {event.started_by} "
                            f"(parallelism {params.get('parallelism')})")
        if isinstance(event, RunResumed):
            changed = " with a changed pipeline file" if event.pipeline else ""
            return ("info", f"run {event.originator_id} resumed by {event.by} "
                            f"from stage {event.from_stage}{changed}")
        if isinstance(event, RunAborted):
            return ("bad", f"pipeline aborted: {event.reason}")
        if isinstance(event, RunInterrupted):
            return ("warn", f"run interrupted: {event.reason}")
        if isinstance(event, RunSuspended):
            return ("warn", f"run suspended, waiting for approval of: {', '.join(event.waiting)}")
        if isinstance(event, RunFinished):
            return ("ok" if event.outcome == "succeeded" else "bad", f"run {event.outcome}")
        if isinstance(event, TailQuarantined):
            return ("warn", f"{event.size} torn bytes at the end of the run file moved to "
                            f"{event.path}")
        return None

    def _describe_job(self, run: PipelineRun, event: JobEvent) -> tuple[str, str] | None:
        name = f"{event.job:<{self._width}}"
        if isinstance(event, JobStarted):
            self._stage_header(event.stage)
            attempt = f" (attempt {event.attempt})" if event.attempt > 1 else ""
            return ("info", f"▶ {name} started{attempt}")
        if isinstance(event, JobSucceeded):
            return ("ok", f"✓ {name} done in {_seconds(event)}")
        if isinstance(event, JobRetrying):
            return ("warn", f"↻ {name} {event.error}; retrying at {(event.retry_at or '')[11:19]}")
        if isinstance(event, JobFailed):
            if event.started_at is None:  # never ran: a gate whose approval window closed
                return ("bad", f"✗ {name} failed: {event.error}")
            return ("bad", f"✗ {name} failed: {event.error} after {_seconds(event)} "
                           f"(log: {event.log})")
        if isinstance(event, JobSkipped):
            return ("warn", f"⊘ {name} skipped: {event.reason}")
        if isinstance(event, JobCancelled):
            return ("warn", f"■ {name} cancelled: {event.reason}")
        if isinstance(event, JobInterrupted):
            return ("warn", f"⚡ {name} was running when the previous runner ended")
        if isinstance(event, JobRequeued):
            return ("info", f"↺ {name} requeued (was {event.previous})")
        if isinstance(event, JobAwaitingApproval):
            self._stage_header(event.stage)
            command = self._approve.format(job=event.job, run_id=event.originator_id)
            refuse = command.replace(" approve ", " reject ")
            return ("warn", f"✋ {name} waits for approval. To release it run:\n"
                            f"           {command}\n"
                            f"           (or refuse it: {refuse})")
        if isinstance(event, JobApproved | JobRejected | JobApprovalRefused):
            return _decision(name, event)
        return None

    def _stage_header(self, stage: str) -> None:
        if stage != self._stage:
            self._stage = stage
            self._write(click.style(f"── stage {stage}", bold=True))

    def _print(self, at: datetime, kind: str, text: str) -> None:
        stamp = click.style(at.astimezone().strftime("%H:%M:%S"), fg=_COLOURS["dim"])
        self._write(f"{stamp}  {click.style(text, fg=_COLOURS[kind])}")

    def _write(self, text: str) -> None:
        with self._lock:
            click.echo(text, file=self._stream, color=self._colour)


def _seconds(event: JobEvent) -> str:
    if not event.started_at or not event.finished_at:
        return "?"
    delta = parse_time(event.finished_at) - parse_time(event.started_at)
    return f"{delta.total_seconds():.1f}s"


def _decision(name: str, event: JobApproved | JobRejected | JobApprovalRefused) -> tuple[str, str]:
    if isinstance(event, JobApproved):
        return ("ok", f"✓ {name} approved by {event.by}{_said(event.reason)}")
    if isinstance(event, JobRejected):
        return ("bad", f"✗ {name} rejected by {event.by}{_said(event.reason)}")
    return ("warn", f"✋ {name} {event.decision} by {event.by} refused: {event.reason}")


def _said(reason: str) -> str:
    return f": {reason}" if reason else ""
