"""Scheduling decisions: given a run's job states, what happens next. Pure; no I/O, no clock.

`decide` answers with intents (event class + fields) that the runner records through the
aggregate. The rules are DESIGN.md's execution model:
1. Stages run in order: jobs of stage N+1 start only when every job of stage N is terminal.
2. In the current stage a job starts once its needs allow, at most `parallelism` at a time.
3. on_success runs when every need is DONE; always when every need is terminal; manual
   waits for approval once every need is DONE.
4. A job whose need ended unsuccessfully (and that is not `always`) is SKIPPED, transitively,
   naming the job that caused it.
5. DONE is final; nothing here ever starts a job that is not PENDING, APPROVED or RETRYING.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .aggregate import JobState
from .events import (
    JobAwaitingApproval,
    JobFailed,
    JobSkipped,
    JobStarted,
    RunEvent,
    RunFinished,
)
from .gates import expected_expiry
from .model import Job, OnExpiry, Pipeline, When
from .times import format_time, parse_time
from .transitions import (
    APPROVED,
    DONE,
    PENDING,
    RETRYING,
    RUNNING,
    SKIPPED,
    TERMINAL,
    UNSUCCESSFUL,
    WAITING,
    JobStatus,
)


@dataclass(frozen=True)
class Intent:
    """An event the scheduler wants recorded."""

    event: type[RunEvent]
    fields: dict[str, Any] = field(default_factory=dict)


def decide(jobs: Mapping[str, JobState], pipeline: Pipeline, now: datetime,
           parallelism: int, *, aborted: bool = False) -> list[Intent]:
    """The next events of a run whose jobs stand as `jobs`; empty when nothing can happen now."""
    status = {name: jobs[name].status for name in pipeline.jobs}
    intents = [] if aborted else _skips(jobs, pipeline, status)
    stage = current_stage(pipeline, status)
    if stage is None:
        # Skips decided just now are not in `jobs` yet: their causes decide the outcome too.
        causes = {i.fields["job"]: i.fields["cause"] for i in intents if i.event is JobSkipped}
        return [*intents, _finished(jobs, pipeline, status, aborted, causes)]
    if aborted:
        return intents
    slots = parallelism - sum(1 for s in status.values() if s is RUNNING)
    started_at = format_time(now)
    for job in pipeline.jobs_of(stage):
        state = jobs[job.name]
        if slots <= 0 and not (job.when is When.MANUAL and state.status in (PENDING, WAITING)):
            continue  # with no slot free, only a gate can still move (to WAITING, or expire)
        intent = _next_step(job, state, status, now, started_at)
        if intent is None:
            continue
        if intent.event is JobStarted:
            slots -= 1
        intents.append(intent)
    return intents


def current_stage(pipeline: Pipeline, status: Mapping[str, JobStatus]) -> str | None:
    """The first stage with a job that is not terminal (None when every job is)."""
    for stage in pipeline.stages:
        if any(status[job.name] not in TERMINAL for job in pipeline.jobs_of(stage)):
            return stage
    return None


def next_timer(jobs: Mapping[str, JobState]) -> datetime | None:
    """When the earliest retry is due or the earliest approval window closes."""
    due = [parse_time(j.retry_at) for j in jobs.values() if j.status is RETRYING and j.retry_at]
    due += [parse_time(j.expires_at) for j in jobs.values()
            if j.status is WAITING and j.expires_at]
    return min(due, default=None)


def _next_step(job: Job, state: JobState, status: Mapping[str, JobStatus],
               now: datetime, started_at: str) -> Intent | None:
    needs = [status[n] for n in job.needs]
    ready = all(s in TERMINAL for s in needs) if job.when is When.ALWAYS else all(
        s is DONE for s in needs)
    if state.status is PENDING:
        if job.when is When.MANUAL:
            if ready:
                return _job_intent(JobAwaitingApproval, state,
                                   expires_at=expected_expiry(job.gate, now))
            return None
        return _start(state, started_at) if ready else None
    if state.status is WAITING:
        return _expired(job, state, now)
    if state.status is APPROVED:
        return _start(state, started_at)
    # An `always` job waiting to retry may see a need requeued by a resume: it waits again.
    due = state.retry_at is None or parse_time(state.retry_at) <= now
    if state.status is RETRYING and due and ready:
        return _start(state, started_at)
    return None


def _expired(job: Job, state: JobState, now: datetime) -> Intent | None:
    """The end of a gate nobody decided in time: FAILED or SKIPPED, as configured."""
    if state.expires_at is None or parse_time(state.expires_at) > now:
        return None
    assert job.gate is not None
    why = f"no decision within {job.gate.expires_in:g}s (approval window closed " \
          f"at {state.expires_at})"
    if job.gate.on_expiry is OnExpiry.SKIP:
        return _job_intent(JobSkipped, state, reason=why, cause=state.name)
    return _job_intent(JobFailed, state, error=why, finished_at=format_time(now))


def _start(state: JobState, started_at: str) -> Intent:
    return Intent(JobStarted, {"job": state.name, "stage": state.stage,
                               "attempt": state.attempt + 1, "started_at": started_at})


def _job_intent(event: type[RunEvent], state: JobState, **extra: Any) -> Intent:
    return Intent(event, {"job": state.name, "stage": state.stage, "attempt": state.attempt,
                          **extra})


def _skips(jobs: Mapping[str, JobState], pipeline: Pipeline,
           status: dict[str, JobStatus]) -> list[Intent]:
    """SKIPPED for every pending job a failed need blocks, transitively; updates `status`."""
    if UNSUCCESSFUL.isdisjoint(status.values()):
        return []
    causes = {name: state.cause or name for name, state in jobs.items()}
    intents = []
    for job in pipeline.ordered:
        if status[job.name] is not PENDING or job.when is When.ALWAYS:
            continue
        blocker = next((n for n in job.needs if status[n] in UNSUCCESSFUL), None)
        if blocker is None:
            continue
        cause = causes[blocker] if status[blocker] is SKIPPED else blocker
        reason = f"needs {blocker} ({status[blocker].value})"
        if cause != blocker:
            reason += f"; cause: {cause} ({status.get(cause, jobs[cause].status).value})"
        intents.append(_job_intent(JobSkipped, jobs[job.name], reason=reason, cause=cause))
        status[job.name] = SKIPPED
        causes[job.name] = cause
    return intents


def _finished(jobs: Mapping[str, JobState], pipeline: Pipeline,
              status: Mapping[str, JobStatus], aborted: bool,
              causes: Mapping[str, str]) -> Intent:
    counts = Counter(s.value for s in status.values())
    return Intent(RunFinished, {"outcome": outcome(jobs, pipeline, status, aborted, causes),
                                "counts": dict(sorted(counts.items()))})


def outcome(jobs: Mapping[str, JobState], pipeline: Pipeline,
            status: Mapping[str, JobStatus], aborted: bool,
            causes: Mapping[str, str] | None = None) -> str:
    """succeeded | aborted | rejected (only refused gates kept it from succeeding) | failed.

    `causes` holds the causes of skips decided but not yet applied to `jobs`.
    """
    if aborted:
        return "aborted"
    if all(status[name] is DONE for name in pipeline.jobs):
        return "succeeded"
    rejected = {name for name in pipeline.jobs
                if (a := jobs[name].approval) is not None and a.decision == "rejected"
                and status[name] is SKIPPED}
    unsuccessful = [name for name in pipeline.jobs if status[name] is not DONE]
    cause = {name: (causes or {}).get(name) or jobs[name].cause for name in unsuccessful}
    if all(name in rejected or cause[name] in rejected for name in unsuccessful):
        return "rejected"
    return "failed"
