"""The pipeline as the user declared it: stages, jobs and their options (immutable)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

import orjson

from .approvers import Approver, approvers_from_recorded
from .errors import PipelineDefinitionError
from .masking import mask_variables

MAX_DURATION_SECONDS = 366 * 24 * 3600
"""The longest timeout, retry delay or gate expiry a pipeline may give: 366 days. Anything
longer is a typo, and overflows the clock arithmetic (a run that crashed on every resume)."""
DURATION_LIMIT = f"366 days ({MAX_DURATION_SECONDS} s, 8784h)"
BACKOFF_RANGE = (1.0, 10.0)


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

    approvers: tuple[str, ...] = ()  # names; empty: anyone
    separate_approver: bool = False  # the person who started the run may not decide
    expires_in: float | None = None  # seconds from when the gate starts waiting
    on_expiry: OnExpiry = OnExpiry.FAIL
    keys: tuple[Approver, ...] = ()  # approvers with a key; any: decisions must be signed
    required: int | None = None  # distinct keys that must approve (None: 1, not declared)

    @property
    def keyed(self) -> bool:
        """Whether a decision counts only when signed by one of `keys`."""
        return bool(self.keys)

    @property
    def approvals_needed(self) -> int:
        """How many distinct keys must approve before the gate is released."""
        return self.required or 1

    def recorded_approvers(self) -> list[str | dict[str, Any]]:
        """`approvers` as RunStarted records them: names, then keyed approvers in full."""
        keyed = {a.name for a in self.keys}
        return [*[n for n in self.approvers if n not in keyed],
                *[a.as_json() for a in self.keys]] if self.keys else list(self.approvers)

    def refusal(self, who: str, started_by: str) -> str | None:
        """Why `who` may not decide this gate, or None if they may (names only; a keyed gate
        is checked by engine/gates.py against the signature)."""
        if self.keyed:
            return None
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
        """Seconds to wait before retry number `retry_number` (1-based), at most
        MAX_DURATION_SECONDS (a backoff of 10 over 100 retries would be 1e99 times the delay)."""
        try:
            delay = self.delay * (self.backoff ** (retry_number - 1))
        except OverflowError:
            delay = math.inf
        return min(delay, float(MAX_DURATION_SECONDS))


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
    secret_variables: frozenset[str] = frozenset()  # declared `secret: true` in the file
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
    secret_variables: frozenset[str] = frozenset()  # declared `secret: true` in the file

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

    def declared_secrets(self) -> list[str]:
        """The values of the variables declared `secret: true` (pipeline and jobs)."""
        values = [self.variables[n] for n in self.secret_variables if n in self.variables]
        return values + [job.variables[n] for job in self.jobs.values()
                         for n in job.secret_variables if n in job.variables]

    def masked_definition(self) -> dict[str, Any]:
        """`definition()` with the values of secret-looking and declared-secret variables
        replaced by MASK: what a run records."""
        definition = self.definition()
        definition["variables"] = mask_variables(self.variables, self.secret_variables)
        for name, spec in definition["jobs"].items():
            job = self.jobs[name]
            spec["variables"] = mask_variables(job.variables, job.secret_variables)
        return definition

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
            "approvers": job.gate.recorded_approvers(),
            "separate_approver": job.gate.separate_approver,
            "expires_in": job.gate.expires_in,
            "on_expiry": job.gate.on_expiry.value,
            # Only when declared: runs of files without keys record what they always did.
            **({"required": job.gate.required} if job.gate.required is not None else {}),
        },
        # Only when declared: runs of files without resources record what they always did.
        **({"resources": dict(job.resources)} if job.resources else {}),
    }


def duration_problem(seconds: Any) -> str | None:
    """Why `seconds` cannot be a timeout, retry delay or gate expiry; None if it can."""
    if type(seconds) not in (int, float) or not math.isfinite(seconds) or seconds < 0:
        return f"{seconds!r} is not a number of seconds"
    if seconds > MAX_DURATION_SECONDS:
        return f"{seconds:g} s is longer than the limit of {DURATION_LIMIT}"
    return None


def number_problem(value: Any, low: float, high: float) -> str | None:
    """Why `value` is not a finite number in [low, high]; None if it is."""
    if type(value) not in (int, float) or not math.isfinite(value) or not low <= value <= high:
        return f"{value!r} is not a number from {low:g} to {high:g}"
    return None


def definition_bounds_problems(definition: Mapping[str, Any]) -> list[str]:
    """Every duration or number of a (recorded) definition outside its bounds, by job and key:
    a run file written before the bounds existed, or edited, may hold one."""
    problems = []
    for name, spec in definition["jobs"].items():
        retry = spec.get("retry") or {}
        gate = spec.get("gate") or {}
        checks = [("timeout", spec.get("timeout"), duration_problem),
                  ("retry.delay", retry.get("delay", 0.0), duration_problem),
                  ("retry.backoff", retry.get("backoff", 1.0),
                   lambda v: number_problem(v, *BACKOFF_RANGE)),
                  ("expires_in", gate.get("expires_in"), duration_problem)]
        checks += [(f"resources.{k}", v, lambda v: number_problem(v, 0.0, 1e12))
                   for k, v in (spec.get("resources") or {}).items()]
        problems += [f"job '{name}': {key}: {problem}" for key, value, check in checks
                     if value is not None and (problem := check(value)) is not None]
    return problems


def pipeline_from_definition(definition: Mapping[str, Any]) -> Pipeline:
    """Rebuild a Pipeline from `Pipeline.definition()` output (as recorded in a run file);
    PipelineDefinitionError if a duration or number is out of bounds."""
    problems = definition_bounds_problems(definition)
    if problems:
        raise PipelineDefinitionError("the recorded definition", problems)
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
            gate=gate_policy(spec.get("gate")),
            resources={k: float(v) for k, v in (spec.get("resources") or {}).items()},
        )
    return Pipeline(
        stages=tuple(definition["stages"]),
        jobs=jobs,
        variables=dict(definition.get("variables", {})),
        version=str(definition.get("version", "1.0")),
    )


def gate_policy(spec: Mapping[str, Any] | None) -> GatePolicy | None:
    """The GatePolicy of a recorded job's `gate` mapping (None: not a manual job)."""
    if spec is None:
        return None
    approvers = approvers_from_recorded(spec.get("approvers", ()))
    required = spec.get("required")
    return GatePolicy(
        approvers=tuple(a.name for a in approvers),
        separate_approver=bool(spec.get("separate_approver", False)),
        expires_in=spec.get("expires_in"),
        on_expiry=OnExpiry(spec.get("on_expiry", OnExpiry.FAIL)),
        keys=tuple(a for a in approvers if a.key is not None),
        required=int(required) if required is not None else None,
    )


def definition_digest(definition: Mapping[str, Any]) -> str:
    """SHA-256 of a definition in canonical JSON (sorted keys), as recorded in run files."""
    return hashlib.sha256(orjson.dumps(definition, option=orjson.OPT_SORT_KEYS)).hexdigest()
