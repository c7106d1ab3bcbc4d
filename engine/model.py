"""The pipeline as the user declared it: stages, jobs and their options (immutable)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

import orjson


class When(StrEnum):
    """When a job runs once its stage is current."""

    ON_SUCCESS = "on_success"
    ALWAYS = "always"
    MANUAL = "manual"


class OnFailure(StrEnum):
    """What a job's final failure does to the rest of the pipeline."""

    CONTINUE = "continue"
    ABORT = "abort"


class OnExpiry(StrEnum):
    """What an unanswered gate becomes when its approval window closes."""

    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class GatePolicy:
    """Who may decide a manual job, and for how long it waits."""

    approvers: tuple[str, ...] = ()  # empty: anyone
    separate_approver: bool = False  # the person who started the run may not decide
    expires_in: float | None = None  # seconds from when the gate starts waiting
    on_expiry: OnExpiry = OnExpiry.FAIL

    def refusal(self, who: str, started_by: str) -> str | None:
        """Why `who` may not decide this gate, or None if they may."""
        if self.approvers and who not in self.approvers:
            return f"{who} is not an approver of this gate (approvers: {', '.join(self.approvers)})"
        if self.separate_approver and who == started_by:
            return f"{who} started the run and this gate needs a separate approver"
        return None


@dataclass(frozen=True)
class RetryPolicy:
    """How many more times a failed job is tried, and how long to wait before each."""

    max: int = 0
    delay: float = 0.0
    backoff: float = 1.0

    def delay_before(self, retry_number: int) -> float:
        """Seconds to wait before retry number `retry_number` (1-based)."""
        return self.delay * (self.backoff ** (retry_number - 1))


@dataclass(frozen=True)
class Job:
    """One job of the pipeline file."""

    name: str
    stage: str
    command: str
    needs: tuple[str, ...] = ()
    when: When = When.ON_SUCCESS
    on_failure: OnFailure = OnFailure.CONTINUE
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    gate: GatePolicy | None = None  # set for manual jobs only
    resources: Mapping[str, float] = field(default_factory=dict)  # for distributed executors


@dataclass(frozen=True)
class Pipeline:
    """A validated pipeline: stages in order and jobs in file order."""

    stages: tuple[str, ...]
    jobs: Mapping[str, Job]
    variables: Mapping[str, str] = field(default_factory=dict)
    version: str = "1.0"

    def jobs_of(self, stage: str) -> tuple[Job, ...]:
        """The jobs of `stage`, in file order."""
        return self._by_stage.get(stage, ())

    def stage_index(self, stage: str) -> int:
        """Position of `stage` in the stage order."""
        return self.stages.index(stage)

    @cached_property
    def _by_stage(self) -> dict[str, tuple[Job, ...]]:
        grouped: dict[str, list[Job]] = {s: [] for s in self.stages}
        for job in self.jobs.values():
            grouped[job.stage].append(job)
        return {s: tuple(js) for s, js in grouped.items()}

    @cached_property
    def ordered(self) -> tuple[Job, ...]:
        """Every job with each job after the jobs it needs (stage order, then file order)."""
        placed: dict[str, Job] = {}
        for stage in self.stages:
            pending = list(self.jobs_of(stage))
            while pending:
                ready = [j for j in pending if all(n in placed for n in j.needs)]
                for job in ready:
                    placed[job.name] = job
                pending = [j for j in pending if j.name not in placed]
        return tuple(placed.values())

    def definition(self) -> dict[str, Any]:
        """The pipeline as a plain, JSON-ready mapping with every default filled in."""
        return {
            "version": self.version,
            "stages": list(self.stages),
            "variables": dict(self.variables),
            "jobs": {name: job_definition(job) for name, job in self.jobs.items()},
        }


def job_definition(job: Job) -> dict[str, Any]:
    """One job as a plain mapping (the shape recorded in a run's first line)."""
    return {
        "stage": job.stage,
        "command": job.command,
        "needs": list(job.needs),
        "when": job.when.value,
        "on_failure": job.on_failure.value,
        "retry": {"max": job.retry.max, "delay": job.retry.delay, "backoff": job.retry.backoff},
        "timeout": job.timeout,
        "variables": dict(job.variables),
        "description": job.description,
        "gate": None if job.gate is None else {
            "approvers": list(job.gate.approvers),
            "separate_approver": job.gate.separate_approver,
            "expires_in": job.gate.expires_in,
            "on_expiry": job.gate.on_expiry.value,
        },
        # Only when declared: runs of files without resources record what they always did.
        **({"resources": dict(job.resources)} if job.resources else {}),
    }


def pipeline_from_definition(definition: Mapping[str, Any]) -> Pipeline:
    """Rebuild a Pipeline from `Pipeline.definition()` output (as recorded in a run file)."""
    jobs = {}
    for name, spec in definition["jobs"].items():
        retry = spec.get("retry") or {}
        jobs[name] = Job(
            name=name,
            stage=spec["stage"],
            command=spec["command"],
            needs=tuple(spec.get("needs", ())),
            when=When(spec.get("when", When.ON_SUCCESS)),
            on_failure=OnFailure(spec.get("on_failure", OnFailure.CONTINUE)),
            retry=RetryPolicy(
                max=int(retry.get("max", 0)),
                delay=float(retry.get("delay", 0.0)),
                backoff=float(retry.get("backoff", 1.0)),
            ),
            timeout=spec.get("timeout"),
            variables=dict(spec.get("variables", {})),
            description=spec.get("description", ""),
            gate=_gate(spec.get("gate")),
            resources={k: float(v) for k, v in (spec.get("resources") or {}).items()},
        )
    return Pipeline(
        stages=tuple(definition["stages"]),
        jobs=jobs,
        variables=dict(definition.get("variables", {})),
        version=str(definition.get("version", "1.0")),
    )


def _gate(spec: Mapping[str, Any] | None) -> GatePolicy | None:
    if spec is None:
        return None
    return GatePolicy(
        approvers=tuple(spec.get("approvers", ())),
        separate_approver=bool(spec.get("separate_approver", False)),
        expires_in=spec.get("expires_in"),
        on_expiry=OnExpiry(spec.get("on_expiry", OnExpiry.FAIL)),
    )


def definition_digest(definition: Mapping[str, Any]) -> str:
    """SHA-256 of a definition in canonical JSON (sorted keys), as recorded in run files."""
    return hashlib.sha256(orjson.dumps(definition, option=orjson.OPT_SORT_KEYS)).hexdigest()
