"""Every legal transition of a job and of a run, as data. Everything that changes a job's
status or a run's phase lives here.

TABLE[status][event] is the status after `event`; a pair missing from the table is illegal and
raises without changing anything. DONE has no outgoing transition: a DONE job is final.
RUN_TABLE[phase][event] is the same for the run as a whole.
"""

from __future__ import annotations

from enum import StrEnum

from .errors import IllegalRunTransitionError, IllegalTransitionError


class JobStatus(StrEnum):
    """Where a job stands in a run."""

    PENDING = "PENDING"  # not started; waits for its stage and its needs
    WAITING = "WAITING"  # a manual gate whose needs are met; waits for approval
    APPROVED = "APPROVED"  # a gate released; starts when a slot is free
    RUNNING = "RUNNING"
    RETRYING = "RETRYING"  # an attempt failed; another will start at retry_at
    DONE = "DONE"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"  # a need failed, or the gate was rejected
    CANCELLED = "CANCELLED"  # stopped or never started because the run was aborted
    INTERRUPTED = "INTERRUPTED"  # was RUNNING when its runner process died


PENDING, WAITING, APPROVED, RUNNING, RETRYING = (
    JobStatus.PENDING, JobStatus.WAITING, JobStatus.APPROVED, JobStatus.RUNNING,
    JobStatus.RETRYING,
)
DONE, FAILED, SKIPPED, CANCELLED, INTERRUPTED = (
    JobStatus.DONE, JobStatus.FAILED, JobStatus.SKIPPED, JobStatus.CANCELLED,
    JobStatus.INTERRUPTED,
)

TERMINAL = frozenset({DONE, FAILED, SKIPPED, CANCELLED, INTERRUPTED})
"""Statuses in which a job stays unless a resume requeues it."""

UNSUCCESSFUL = frozenset({FAILED, SKIPPED, CANCELLED, INTERRUPTED})
"""Terminal statuses that make `on_success` and `manual` dependents SKIPPED."""

REQUEUEABLE = UNSUCCESSFUL
"""Statuses a resume puts back to PENDING, with a fresh retry budget."""

TABLE: dict[JobStatus, dict[str, JobStatus]] = {
    PENDING: {
        "JobStarted": RUNNING,
        "JobAwaitingApproval": WAITING,
        "JobSkipped": SKIPPED,
        "JobCancelled": CANCELLED,
    },
    WAITING: {
        "JobApproved": APPROVED,
        "JobRejected": SKIPPED,
        "JobApprovalRefused": WAITING,  # a refused attempt is recorded; the gate still waits
        "JobApprovalSigned": WAITING,  # one of the `required` signed approvals; still waits
        "JobFailed": FAILED,  # the approval window closed (on_expiry: fail)
        "JobSkipped": SKIPPED,  # the approval window closed (on_expiry: skip)
        "JobCancelled": CANCELLED,
    },
    APPROVED: {
        "JobStarted": RUNNING,
        "JobCancelled": CANCELLED,
    },
    RUNNING: {
        "JobSucceeded": DONE,
        "JobRetrying": RETRYING,
        "JobFailed": FAILED,
        "JobCancelled": CANCELLED,
        "JobInterrupted": INTERRUPTED,
    },
    RETRYING: {
        "JobStarted": RUNNING,
        "JobCancelled": CANCELLED,
    },
    DONE: {},
    FAILED: {"JobRequeued": PENDING},
    SKIPPED: {"JobRequeued": PENDING},
    CANCELLED: {"JobRequeued": PENDING},
    INTERRUPTED: {"JobRequeued": PENDING},
}

TARGET: dict[str, JobStatus] = {
    event: target for row in TABLE.values() for event, target in row.items()
}
"""The status every job event leads to (each event has exactly one target)."""

assert all(
    TARGET[event] == target for row in TABLE.values() for event, target in row.items()
), "each job event must lead to one status"


def next_status(job: str, status: JobStatus, event: str) -> JobStatus:
    """The status after `event`, or IllegalTransitionError if the table forbids it."""
    target = TABLE[status].get(event)
    if target is None:
        raise IllegalTransitionError(job, status.value, event)
    return target


class RunPhase(StrEnum):
    """Where a run as a whole stands (its jobs' statuses aside)."""

    ACTIVE = "active"  # a runner is at work, or was when the file ends (it may have died)
    ABORTING = "aborting"  # a job with on_failure: abort failed; the others are being stopped
    SUSPENDED = "suspended"  # the runner stopped because only gates waiting for approval are left
    INTERRUPTED = "interrupted"  # the runner was stopped before the run finished
    FINISHED = "finished"  # RunFinished recorded the outcome


JOB_EVENT = "JobEvent"
"""The RUN_TABLE key of every job event: the run reacts to them all alike."""

_ANY_TIME = {"RunCheckpoint": None, "TailQuarantined": None}  # None: the phase stays
_RESUMABLE = {"RunResumed": RunPhase.ACTIVE}

RUN_TABLE: dict[RunPhase, dict[str, RunPhase | None]] = {
    RunPhase.ACTIVE: {
        **_ANY_TIME, **_RESUMABLE,  # resumed without a line: the runner died
        JOB_EVENT: None,
        "RunAborted": RunPhase.ABORTING,
        "RunSuspended": RunPhase.SUSPENDED,
        "RunInterrupted": RunPhase.INTERRUPTED,
        "RunFinished": RunPhase.FINISHED,
    },
    RunPhase.ABORTING: {
        **_ANY_TIME, **_RESUMABLE,
        JOB_EVENT: None,
        "RunInterrupted": RunPhase.INTERRUPTED,  # stopped before the running jobs ended
        "RunFinished": RunPhase.FINISHED,
    },
    RunPhase.SUSPENDED: {
        **_ANY_TIME, **_RESUMABLE,
        JOB_EVENT: RunPhase.ACTIVE,  # a gate decided: the run is no longer only waiting
    },
    RunPhase.INTERRUPTED: {
        **_ANY_TIME, **_RESUMABLE,
        JOB_EVENT: None,  # a gate may be decided before the run is resumed
    },
    RunPhase.FINISHED: {**_ANY_TIME, **_RESUMABLE},
}


def next_phase(phase: RunPhase, event: str) -> RunPhase:
    """The run's phase after `event` (a job event counts as JOB_EVENT), or
    IllegalRunTransitionError if the table forbids it."""
    row = RUN_TABLE[phase]
    if event not in row:
        raise IllegalRunTransitionError(phase.value, event)
    return row[event] or phase
