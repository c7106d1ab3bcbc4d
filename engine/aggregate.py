"""The PipelineRun aggregate: a run's state, rebuilt only by folding its events.

`evolve_job(job, event)` is the pure transition function for one job (legal moves come from
transitions.TABLE); `PipelineRun.apply_event` is the only place a run's state changes (its
phase moves by transitions.RUN_TABLE).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from typing import Any, cast

from eventsourcing.domain import BaseAggregate

from .errors import IllegalTransitionError, PipelineDefinitionError
from .events import (
    JobApprovalRefused,
    JobApprovalSigned,
    JobApproved,
    JobAwaitingApproval,
    JobEvent,
    JobRejected,
    JobRequeued,
    JobRetrying,
    JobSkipped,
    JobStarted,
    RecordedEvent,
    RunAborted,
    RunEvent,
    RunFinished,
    RunResumed,
    RunStarted,
    TailQuarantined,
)
from .masking import Masker
from .model import GatePolicy, Pipeline, gate_policy, pipeline_from_definition
from .times import format_time
from .transitions import JOB_EVENT, PENDING, TERMINAL, JobStatus, RunPhase, next_phase, next_status

FREE_TEXT = frozenset({"reason", "error", "changes", "parameters"})
"""Event fields whose text comes from people or processes, masked by `PipelineRun.record`."""


@dataclass(frozen=True, slots=True)
class Approval:
    """Who decided a gate, when, and why."""

    decision: str  # "approved" | "rejected"
    by: str
    at: str
    reason: str
    key_fingerprint: str = ""  # the key that signed it; empty: unauthenticated (a name only)
    signers: tuple[str, ...] = ()  # every key that approved, for `required: N` gates

    @property
    def authenticated(self) -> bool:
        """Whether the decision was signed by a key on the gate's list."""
        return bool(self.key_fingerprint)


@dataclass(frozen=True)
class JobState:
    """One job's state in a run."""

    name: str
    stage: str
    status: JobStatus = PENDING
    attempt: int = 0  # attempts ever started in this run (log files are numbered by it)
    budget_start: int = 0  # value of `attempt` when the current retry budget began
    started_at: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    error: str = ""
    reason: str = ""
    cause: str = ""
    retry_at: str | None = None
    approval: Approval | None = None
    expires_at: str | None = None  # when a waiting gate's approval window closes
    signed_by: tuple[str, ...] = ()  # keys that approved the waiting gate so far (required: N)
    log: str | None = None
    log_sha256: str | None = None

    @property
    def attempts_in_budget(self) -> int:
        """Attempts started since the job was last (re)queued."""
        return self.attempt - self.budget_start

    @property
    def terminal(self) -> bool:
        """True when the job will not move again unless a resume requeues it."""
        return self.status in TERMINAL


def evolve_job(job: JobState, event: JobEvent, at: str) -> JobState:
    """The job's state after `event` (which happened at `at`); raises on an illegal move."""
    name = type(event).__name__
    status = next_status(job.name, job.status, name)
    if isinstance(event, JobStarted):
        if event.attempt != job.attempt + 1:
            raise IllegalTransitionError(
                job.name, job.status.value, f"{name} of attempt {event.attempt}")
        return _evolved(
            job, status=status, attempt=event.attempt, started_at=event.started_at,
            finished_at=None, exit_code=None, error="", reason="", retry_at=None,
            log=None, log_sha256=None,
        )
    if event.attempt != job.attempt:
        raise IllegalTransitionError(
            job.name, job.status.value, f"{name} of attempt {event.attempt}")
    if isinstance(event, JobRequeued):
        return _evolved(
            job, status=status, budget_start=job.attempt, started_at=None, finished_at=None,
            exit_code=None, error="", reason=event.reason, cause="", retry_at=None,
            approval=None, expires_at=None, signed_by=(),
        )
    if isinstance(event, JobApprovalRefused):
        return job  # recorded for the evidence; the gate keeps waiting
    if isinstance(event, JobApprovalSigned):
        return _evolved(job, status=status, signed_by=(*job.signed_by, event.key_fingerprint))
    if isinstance(event, JobAwaitingApproval):
        return _evolved(job, status=status, expires_at=event.expires_at, reason="",
                        signed_by=())
    if isinstance(event, JobApproved | JobRejected):
        decision = "approved" if isinstance(event, JobApproved) else "rejected"
        signers = (*job.signed_by, event.key_fingerprint) if event.key_fingerprint else ()
        approval = Approval(decision=decision, by=event.by, at=at, reason=event.reason,
                            key_fingerprint=event.key_fingerprint,
                            signers=signers if decision == "approved" else ())
        return _evolved(job, status=status, approval=approval,
                       reason=f"{decision} by {event.by}" if decision == "rejected" else "",
                       cause=job.name if decision == "rejected" else "")
    return _evolved(
        job, status=status, finished_at=event.finished_at, exit_code=event.exit_code,
        error=event.error,
        reason=getattr(event, "reason", ""),
        cause=event.cause if isinstance(event, JobSkipped) else job.cause,
        retry_at=event.retry_at if isinstance(event, JobRetrying) else None,
        log=getattr(event, "log", None) or job.log,
        log_sha256=getattr(event, "log_sha256", None) or job.log_sha256,
    )


def _evolved(job: JobState, **changes: Any) -> JobState:
    """A copy of `job` with `changes` (like dataclasses.replace, without re-running __init__:
    replay does this once per line, and the fields are already checked)."""
    new = object.__new__(JobState)
    new.__dict__.update(job.__dict__)
    new.__dict__.update(changes)
    return new


class PipelineRun(BaseAggregate[str]):
    """One run of a pipeline file: its definition, its jobs, and how it stands."""

    def __init__(self, pipeline: dict[str, Any], started_by: str,
                 parameters: dict[str, Any]) -> None:
        self.definition: dict[str, Any] = pipeline["definition"]
        self.pipeline_path: str = pipeline["path"]
        self.pipeline_sha256: str = pipeline["sha256"]
        self.started_by = started_by
        self.parameters = parameters
        # The fingerprint of the key that signed the start (`pt pipeline run --key`), if any.
        started_key = parameters.get("started_key")
        self.started_key = str(started_key.get("fingerprint", "")) \
            if isinstance(started_key, dict) else ""
        self.jobs: dict[str, JobState] = {}
        self.phase = RunPhase.ACTIVE
        self.aborted: RunAborted | None = None  # the abort in force (ABORTING, or since then)
        self.outcome: str | None = None  # set in FINISHED
        self.resumes = 0
        self.quarantined_tails = 0
        # Each gate's policy as recorded when it first appeared: fixed for the run (ADR 0017).
        self.started_gates: dict[str, Any] = {}
        # Set by whoever records new events (the live secrets); never part of the state.
        self.masker: Masker | None = None
        self._reset_jobs()

    @cached_property
    def pipeline(self) -> Pipeline:
        """The pipeline definition in force (the first line's, or the last accepted change);
        PipelineDefinitionError, naming the run, if it holds a value out of bounds."""
        try:
            return pipeline_from_definition(self.definition)
        except PipelineDefinitionError as exc:
            problems = "; ".join(exc.problems)
            raise PipelineDefinitionError(f"run {self.id}", [
                f"the recorded definition holds {problems}; this run cannot go on: start a "
                "new run of a corrected file"]) from None

    @classmethod
    def start(cls, run_id: str, at: datetime, **fields: Any) -> PipelineRun:
        """Begin a new run; the RunStarted event is pending until collected."""
        return cls._create(RunStarted, id=run_id, timestamp=at, **fields)

    def pending(self) -> list[RecordedEvent]:
        """Collect the events recorded since the last call, for saving."""
        return cast("list[RecordedEvent]", list(self.collect_events()))

    def record(self, event_class: type[RunEvent], at: datetime, **fields: Any) -> None:
        """Decide-and-apply one new event; it stays pending until collected for saving. Free
        text (reasons, errors, changes, parameters) is masked first: secrets are masked
        wherever they arrive from (an approver's --reason, a job's error)."""
        masker = self.masker
        if masker is not None:
            fields = {name: masker.document(value) if name in FREE_TEXT else value
                      for name, value in fields.items()}
        self.trigger_event(event_class, timestamp=at, **fields)

    # ---- state changes -----------------------------------------------------------------

    def apply_event(self, event: RunStarted | RunEvent) -> None:
        """Fold one event into the state (called by the event's `mutate`); raises, changing
        nothing, on a move RUN_TABLE or the job's TABLE forbids."""
        if isinstance(event, RunStarted):
            return  # __init__ built the state
        is_job = isinstance(event, JobEvent)
        phase = next_phase(self.phase, JOB_EVENT if is_job else type(event).__name__)
        if isinstance(event, JobEvent):
            self._apply_job(event)
        elif isinstance(event, RunResumed):
            self._apply_resumed(event)
        elif isinstance(event, RunAborted):
            self.aborted = event
        elif isinstance(event, RunFinished):
            self.outcome = event.outcome
        elif isinstance(event, TailQuarantined):
            self.quarantined_tails += 1
        self.phase = phase

    def _apply_job(self, event: JobEvent) -> None:
        job = self.jobs.get(event.job)
        if job is None:
            raise IllegalTransitionError(event.job, "unknown", type(event).__name__)
        # Only a gate decision keeps its time in the job's state; formatting costs per line.
        at = format_time(event.timestamp) if isinstance(event, JobApproved | JobRejected) else ""
        self.jobs[event.job] = evolve_job(job, event, at)

    def _apply_resumed(self, event: RunResumed) -> None:
        self.resumes += 1
        self.aborted = None
        self.outcome = None
        if event.pipeline is not None:
            self.definition = event.pipeline["definition"]
            self.pipeline_sha256 = event.pipeline["sha256"]
            self.__dict__.pop("pipeline", None)
            self._reset_jobs()

    def _reset_jobs(self) -> None:
        """Add a PENDING state for jobs of the definition that have none yet; a job a changed
        definition moved to another stage is in that stage from now on. A gate seen for the
        first time keeps the policy it has now."""
        for name, spec in self.definition["jobs"].items():
            if name not in self.started_gates and spec.get("gate") is not None:
                self.started_gates[name] = spec["gate"]
            if name not in self.jobs:
                self.jobs[name] = JobState(name=name, stage=spec["stage"])
            elif self.jobs[name].stage != spec["stage"]:
                self.jobs[name] = replace(self.jobs[name], stage=spec["stage"])

    # ---- queries -----------------------------------------------------------------------

    @property
    def suspended(self) -> bool:
        """True when the last runner stopped because only gates waiting for approval were left."""
        return self.phase is RunPhase.SUSPENDED

    @property
    def interrupted(self) -> bool:
        """True when the last runner was stopped before the run finished."""
        return self.phase is RunPhase.INTERRUPTED

    def gate_policy(self, name: str) -> GatePolicy | None:
        """The policy gate `name` had when it first appeared in the run (None: no gate)."""
        return gate_policy(self.started_gates.get(name))

    @property
    def gate_policies(self) -> dict[str, GatePolicy]:
        """Every gate's fixed policy, by job name."""
        return {name: policy for name in self.started_gates
                if (policy := self.gate_policy(name)) is not None}

    @property
    def active_jobs(self) -> Mapping[str, JobState]:
        """States of the jobs of the definition in force, in file order."""
        return {name: self.jobs[name] for name in self.definition["jobs"]}

    def state_snapshot(self) -> dict[str, Any]:
        """A comparable picture of the whole state (for tests and consistency checks)."""
        return {
            "id": self.id,
            "version": self.version,
            "definition": self.definition,
            "sha256": self.pipeline_sha256,
            "jobs": dict(self.jobs),
            "aborted": self.aborted is not None,
            "outcome": self.outcome,
            "suspended": self.suspended,
            "resumes": self.resumes,
        }
