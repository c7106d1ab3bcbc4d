"""The events of a pipeline run: frozen, past-tense facts, one per line of the run file.

Built on the `eventsourcing` library: `originator_id` is the run id, `originator_version` the
line's `seq`, `timestamp` its `at`. Every other dataclass field is written to the line as is.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from eventsourcing.domain import CanInitAggregate, CanMutateAggregate, MetaDomainEvent

if TYPE_CHECKING:
    from .aggregate import PipelineRun


class RunEvent(CanMutateAggregate[str], metaclass=MetaDomainEvent):
    """Base of every event after the first."""

    originator_id: str
    originator_version: int
    timestamp: datetime

    def apply(self, aggregate: Any) -> None:
        run: PipelineRun = aggregate
        run.apply_event(self)


# ---- the run -------------------------------------------------------------------------------


class RunStarted(CanInitAggregate[str], metaclass=MetaDomainEvent):
    """A run began: what was run (file path, its SHA-256, parsed definition), by whom, where."""

    originator_id: str
    originator_version: int
    timestamp: datetime
    originator_topic: str
    pipeline: dict[str, Any]
    parameters: dict[str, Any]
    started_by: str
    host: str
    pid: int
    tool_version: str

    def apply(self, aggregate: Any) -> None:
        run: PipelineRun = aggregate
        run.apply_event(self)


class RunResumed(RunEvent):
    """A new process took the run over; `pipeline` is set when a changed file was accepted."""

    by: str
    host: str
    pid: int
    tool_version: str
    parameters: dict[str, Any]
    from_stage: str
    pipeline: dict[str, Any] | None = None
    changes: list[str] | None = None


class RunSuspended(RunEvent):
    """The runner stopped on purpose while gates wait for approval (`--no-wait`)."""

    reason: str
    waiting: list[str]


class RunAborted(RunEvent):
    """A job with `on_failure: abort` failed: nothing new starts, running jobs are stopped."""

    job: str
    reason: str


class RunInterrupted(RunEvent):
    """The runner was asked to stop (signal); running jobs were stopped."""

    reason: str


class RunFinished(RunEvent):
    """Every job is terminal; `outcome` is succeeded, failed, rejected or aborted."""

    outcome: str
    counts: dict[str, int]


class RunCheckpoint(RunEvent):
    """A point worth sealing (a runner stopped, a gate was decided); the chain head is `prev`."""

    reason: str


class TailQuarantined(RunEvent):
    """Bytes after the last whole line (a torn write) were moved aside to `path`."""

    path: str
    size: int
    sha256: str


# ---- jobs ----------------------------------------------------------------------------------


class JobEvent(RunEvent):
    """Base of job transitions; carries the fields of the mission's state-file lines."""

    job: str
    stage: str
    attempt: int
    started_at: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    error: str = ""


class JobStarted(JobEvent):
    """An attempt of the job is about to start (written and synced before the process starts)."""


class JobSucceeded(JobEvent):
    """The attempt exited 0. Final."""

    log: str | None = None
    log_sha256: str | None = None


class JobRetrying(JobEvent):
    """The attempt failed; another attempt will start at `retry_at`."""

    retry_at: str | None = None
    log: str | None = None
    log_sha256: str | None = None


class JobFailed(JobEvent):
    """The attempt failed and no retry is left."""

    log: str | None = None
    log_sha256: str | None = None


class JobSkipped(JobEvent):
    """The job will not run because `cause` (a job it needs, maybe transitively) did not succeed."""

    reason: str = ""
    cause: str = ""


class JobAwaitingApproval(JobEvent):
    """A manual gate's needs are met; it waits for `pt pipeline approve` (until `expires_at`)."""

    expires_at: str | None = None


class GateDecision(JobEvent):
    """Base of a decision on a gate, made having seen the run up to the line whose digest is
    `head`. On a keyed gate `signature` is the approver's SSHSIG signature of the decision
    (engine/signatures.py) by the key `key_fingerprint`, signed at `signed_at` (the line's
    own `at` is later); both empty on a gate without keys (an unauthenticated decision)."""

    by: str = ""
    reason: str = ""
    host: str = ""
    head: str = ""
    signature: str = ""
    key_fingerprint: str = ""
    signed_at: str | None = None


class JobApproved(GateDecision):
    """Someone released the gate."""


class JobApprovalSigned(GateDecision):
    """One signed approval of a gate that needs more (`required: N`); the gate still waits."""


class JobRejected(GateDecision):
    """Someone refused the gate; it and what needs it are SKIPPED."""


class JobApprovalRefused(JobEvent):
    """An approval or rejection that the gate's policy did not allow (the gate still waits)."""

    by: str = ""
    decision: str = ""  # what was asked: approve | reject
    reason: str = ""  # why it was refused
    host: str = ""
    key_fingerprint: str = ""  # the key that signed it, if any


ADDED_FIELDS: dict[str, dict[str, str | None]] = {
    name: {"signature": "", "key_fingerprint": "", "signed_at": None}
    for name in ("JobApproved", "JobRejected")
} | {"JobApprovalRefused": {"key_fingerprint": ""}}
"""Fields added to an event type after run files of it existed: a line may lack them (it was
written before, or the value is the default, which is not written), and means the default."""


class JobCancelled(JobEvent):
    """The run was aborted or interrupted before or while the job ran."""

    reason: str = ""
    log: str | None = None
    log_sha256: str | None = None


class JobInterrupted(JobEvent):
    """The job was RUNNING when its runner process died; its outcome is unknown."""

    reason: str = ""


class JobRequeued(JobEvent):
    """A resume put the job back to PENDING with a fresh retry budget."""

    reason: str = ""
    previous: str = ""


RecordedEvent = RunEvent | RunStarted
"""Any event that can be a line of a run file."""

EVENT_TYPES: dict[str, type[RunEvent] | type[RunStarted]] = {
    cls.__name__: cls
    for cls in (
        RunStarted, RunResumed, RunSuspended, RunAborted, RunInterrupted, RunFinished,
        RunCheckpoint, TailQuarantined, JobStarted, JobSucceeded, JobRetrying, JobFailed,
        JobSkipped, JobAwaitingApproval, JobApproved, JobApprovalSigned, JobRejected,
        JobApprovalRefused, JobCancelled, JobInterrupted, JobRequeued,
    )
}
"""Every event by the name written in a line's `event` field."""
