"""Driving a run: get its state (replay), decide (scheduler), save (store), act (executor).

The runner owns the loop of one process working on one run. Every decision is taken under the
run file's append lock, after folding in lines other processes wrote (approvals), and every
batch of events is synced to disk before anything acts on it: a JobStarted line is durable
before its process starts, a DONE line before anything that needs the job starts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from .aggregate import PipelineRun
from .errors import EXIT_FAILED, EXIT_OK, EXIT_WAITING
from .events import (
    JobCancelled,
    JobFailed,
    JobRetrying,
    JobStarted,
    JobSucceeded,
    RunAborted,
    RunCheckpoint,
    RunEvent,
    RunInterrupted,
    RunStarted,
    RunSuspended,
)
from .executor import Executor, JobExit, Launch
from .layout import StateDir
from .loader import PipelineFile
from .model import Job, OnFailure
from .replay import fold_new_lines, quarantine_tail
from .runstore import RunLog, RunOwnership
from .scheduler import decide, next_timer
from .times import format_time
from .transitions import RETRYING, RUNNING, TERMINAL, WAITING

POLL_SECONDS = 0.2
EXIT_INTERRUPTED = 130

Clock = Callable[[], datetime]
RecordedEvent = RunEvent | RunStarted


class Closeable(Protocol):
    """What the runner closes when it is done (the store it works in)."""

    def close(self) -> None:
        """Let go of resources."""


class RunObserver(Protocol):
    """Receives what happens in a run, to show it (the CLI's progress display)."""

    def events_recorded(self, run: PipelineRun, events: Sequence[RecordedEvent]) -> None:
        """Events just made durable (own decisions and lines other processes wrote)."""

    def job_output(self, job: str, attempt: int, line: str) -> None:
        """One line of a job's (masked) output."""


class NullObserver:
    """An observer that shows nothing (approvals, sealing, tests)."""

    def events_recorded(self, run: PipelineRun, events: Sequence[RecordedEvent]) -> None:
        """Nothing to show."""

    def job_output(self, job: str, attempt: int, line: str) -> None:
        """Nothing to show."""


@dataclass(frozen=True)
class RunResult:
    """How a runner's work on a run ended."""

    run_id: str
    outcome: str  # succeeded | failed | aborted | rejected | waiting | interrupted
    exit_code: int


@dataclass(frozen=True)
class JobEnvironment:
    """What every job process gets besides its command."""

    base: Mapping[str, str]
    tool_bin: Path | None
    workdir: Path

    def for_job(self, job: Job, variables: Mapping[str, str], run_id: str, attempt: int,
                state: StateDir) -> dict[str, str]:
        """The environment of one attempt. The file's variables are defaults: the job's override
        the pipeline's, and the environment pt runs in overrides both (as CI variables do)."""
        env = {**variables, **job.variables, **self.base}
        env.update(PT_RUN_ID=run_id, PT_JOB=job.name, PT_STAGE=job.stage,
                   PT_ATTEMPT=str(attempt), PT_STATE_DIR=str(state.root),
                   PT_RUN_DIR=str(state.run_folder(run_id)))
        if self.tool_bin is not None:
            env["PATH"] = os.pathsep.join([str(self.tool_bin), env.get("PATH", os.defpath)])
        return env


class Runner:
    """Executes one run until it finishes, waits at a gate (--no-wait), or is stopped."""

    def __init__(self, *, run: PipelineRun, run_file: RunLog, lock: RunOwnership,
                 pipeline_file: PipelineFile, state: StateDir, executor: Executor,
                 environment: JobEnvironment, clock: Clock, observer: RunObserver,
                 parallelism: int, wait_for_approval: bool,
                 on_checkpoint: Callable[[RunLog, datetime], None] | None = None,
                 store: Closeable | None = None) -> None:
        self.run = run
        self._store = store
        self._file = run_file
        self._lock = lock
        self._pipeline = pipeline_file.pipeline
        self._state = state
        self._executor = executor
        self._environment = environment
        self._clock = clock
        self._observer = observer
        self._parallelism = parallelism
        self._wait = wait_for_approval
        self._stop_reason: str | None = None
        self._observer_failed = False
        self._on_checkpoint = on_checkpoint
        self._stopping = False

    def request_stop(self, reason: str) -> None:
        """Ask the loop to stop running jobs and end the run as interrupted (signal-safe)."""
        self._stop_reason = reason

    def execute(self) -> RunResult:
        """Run until finished, suspended at a gate, or stopped; release the run afterwards."""
        try:
            return self._loop()
        finally:
            self._file.close()
            self._lock.release()
            if self._store is not None:
                self._store.close()

    # ---- the loop ------------------------------------------------------------------------

    def _loop(self) -> RunResult:
        self._step([])
        while self.run.outcome is None:
            if self._stop_reason is not None and not self._stopping:
                self._begin_stop()
            if self._stopping and self._executor.running() == 0:
                self.transact(lambda now: self._end_session(
                    now, RunInterrupted, reason=self._stop_reason or "stopped"))
                return self._result("interrupted", EXIT_INTERRUPTED)
            if not self._wait and self._only_gates_left():
                self._suspend()
                return self._result("waiting", EXIT_WAITING)
            timer = next_timer(self.run.active_jobs)
            exits = self._executor.wait(self._timeout(timer))
            timer_due = timer is not None and timer <= self._clock()
            if exits or timer_due or self._stopping or self._foreign_lines():
                self._step(exits)
        outcome = self.run.outcome
        return self._result(outcome, EXIT_OK if outcome == "succeeded" else EXIT_FAILED)

    def _step(self, exits: Sequence[JobExit]) -> None:
        recorded = self.transact(lambda now: self._decide(exits, now))
        for event in recorded:
            if isinstance(event, JobStarted):
                self._launch(event)
            elif isinstance(event, RunAborted):
                self._stop_running(f"pipeline aborted: {event.reason}")

    def _decide(self, exits: Sequence[JobExit], now: datetime) -> None:
        for ended in exits:
            self._record_exit(ended, now)
        if self._stopping:
            return
        while True:
            intents = decide(self.run.jobs, self._pipeline, now, self._parallelism,
                             aborted=self.run.aborted is not None)
            if not intents:
                return
            for intent in intents:
                self.run.record(intent.event, now, **intent.fields)
            if self.run.outcome is not None:
                self.run.record(RunCheckpoint, now, reason=f"run {self.run.outcome}")
                return

    def transact(self, produce: Callable[[datetime], None]) -> list[RecordedEvent]:
        """Under the append lock: fold in others' lines, let `produce` record, save, sync."""
        with self._file.locked():
            now = self._clock()
            foreign = self._catch_up(now)
            produce(now)
            events = self.run.pending()
            self._file.append(events)
            if self._on_checkpoint and any(isinstance(e, RunCheckpoint) for e in events):
                self._on_checkpoint(self._file, now)
        self._show(foreign)
        self._show(events)
        return events

    def _show(self, events: Sequence[RecordedEvent]) -> None:
        """Tell the observer; a display failure (a closed terminal) never stops the run."""
        if not events or self._observer_failed:
            return
        try:
            self._observer.events_recorded(self.run, events)
        except Exception:  # the run's integrity outranks its display
            self._observer_failed = True

    def _catch_up(self, now: datetime) -> list[RecordedEvent]:
        if not self._file.has_new():
            return []
        foreign = fold_new_lines(self._file, self.run)
        quarantine_tail(self._file, self.run, now)
        return foreign

    # ---- job outcomes --------------------------------------------------------------------

    def _record_exit(self, ended: JobExit, now: datetime) -> None:
        state = self.run.jobs[ended.job]
        if state.status is not RUNNING or state.attempt != ended.attempt:
            return
        fields: dict[str, Any] = {
            "job": ended.job, "stage": state.stage, "attempt": ended.attempt,
            "started_at": state.started_at, "finished_at": format_time(now),
            "exit_code": ended.exit_code, "error": ended.error,
            "log": str(self._state.log_path(self.run.id, ended.job, ended.attempt)),
            "log_sha256": ended.log_sha256,
        }
        job = self._pipeline.jobs[ended.job]
        if ended.exit_code == 0 and not ended.stopped:
            self.run.record(JobSucceeded, now, **fields)
        elif ended.stopped or self.run.aborted is not None or self._stopping:
            reason = self._stop_reason or self._abort_reason() or "stopped"
            self.run.record(JobCancelled, now, reason=reason, **fields)
        elif state.attempts_in_budget <= job.retry.max:
            delay = job.retry.delay_before(state.attempts_in_budget)
            self.run.record(JobRetrying, now, retry_at=format_time(now + timedelta(seconds=delay)),
                            **fields)
        else:
            self.run.record(JobFailed, now, **fields)
            if job.on_failure is OnFailure.ABORT and self.run.aborted is None:
                self._abort(job, ended, now)

    def _abort(self, job: Job, ended: JobExit, now: datetime) -> None:
        reason = f"{job.name} failed ({ended.error}) and has on_failure: abort"
        self.run.record(RunAborted, now, job=job.name, reason=reason)
        for name, state in self.run.active_jobs.items():
            if state.status not in TERMINAL and state.status is not RUNNING:
                self.run.record(JobCancelled, now, job=name, stage=state.stage,
                                attempt=state.attempt, reason=f"pipeline aborted: {reason}")

    def _abort_reason(self) -> str | None:
        aborted = self.run.aborted
        return f"pipeline aborted: {aborted.reason}" if aborted is not None else None

    # ---- processes -----------------------------------------------------------------------

    def _launch(self, event: JobStarted) -> None:
        job = self._pipeline.jobs[event.job]
        env = self._environment.for_job(job, self._pipeline.variables, self.run.id,
                                        event.attempt, self._state)
        self._executor.launch(Launch(
            job=job.name, attempt=event.attempt, command=job.command,
            cwd=self._environment.workdir, env=env,
            log_path=self._state.runs / self._state.log_path(self.run.id, job.name, event.attempt),
            timeout=job.timeout, resources=job.resources,
        ))

    def _begin_stop(self) -> None:
        self._stopping = True
        self._stop_running(self._stop_reason or "stopped")

    def _stop_running(self, reason: str) -> None:
        for name, state in self.run.active_jobs.items():
            if state.status is RUNNING:
                self._executor.stop(name, reason)

    # ---- waiting ---------------------------------------------------------------------------

    def _only_gates_left(self) -> bool:
        """True when nothing runs or will start by itself, and some gate waits for approval."""
        if self._executor.running() or self._stopping:
            return False
        jobs = self.run.active_jobs.values()
        return any(j.status is WAITING for j in jobs) and not any(
            j.status is RETRYING for j in jobs)

    def _suspend(self) -> None:
        waiting = [n for n, j in self.run.active_jobs.items() if j.status is WAITING]
        self.transact(lambda now: self._end_session(
            now, RunSuspended, reason="waiting for approval", waiting=waiting))

    def _end_session(self, now: datetime, event: type[RunEvent], **fields: Any) -> None:
        """Record why this runner stops before the run finished, and a checkpoint after it."""
        self.run.record(event, now, **fields)
        self.run.record(RunCheckpoint, now, reason=f"runner stopped: {fields['reason']}")

    def _timeout(self, timer: datetime | None) -> float:
        if timer is None:
            return POLL_SECONDS
        return max(0.0, min(POLL_SECONDS, (timer - self._clock()).total_seconds()))

    def _foreign_lines(self) -> bool:
        return self._file.has_new()

    def _result(self, outcome: str, exit_code: int) -> RunResult:
        return RunResult(run_id=self.run.id, outcome=outcome, exit_code=exit_code)
