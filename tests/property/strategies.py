"""Hypothesis strategies: random pipelines (acyclic, needs only to same or earlier stages),
random job outcomes per attempt, random gate decisions and random crash points.

A drawn pipeline is a `PipelineSpec`; `to_yaml()` gives the text of a pipeline file that the
real loader reads (strict YAML, JSON Schema, semantic checks), so every example also exercises
the loader.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml
from hypothesis import strategies as st

STAGE_NAMES = ("preflight", "migrate", "validate", "cutover")
WHEN_VALUES = ("on_success", "always", "manual")


@dataclass(frozen=True)
class JobSpec:
    """One job as the generator drew it."""

    name: str
    stage: str
    needs: tuple[str, ...] = ()
    when: str = "on_success"
    on_failure: str = "continue"
    retry: int = 0
    retry_delay: float = 0.0  # seconds before each retry (backoff 2), 0 for none
    command: str = "true"


@dataclass(frozen=True)
class PipelineSpec:
    """A drawn pipeline: stages in order and jobs in file order."""

    stages: tuple[str, ...]
    jobs: tuple[JobSpec, ...]

    @property
    def by_name(self) -> dict[str, JobSpec]:
        return {job.name: job for job in self.jobs}

    @property
    def gates(self) -> list[str]:
        return [job.name for job in self.jobs if job.when == "manual"]

    def stage_index(self, stage: str) -> int:
        return self.stages.index(stage)

    def ancestors(self, name: str) -> set[str]:
        """Every job `name` needs, directly or transitively."""
        jobs = self.by_name
        seen: set[str] = set()
        todo = list(jobs[name].needs)
        while todo:
            need = todo.pop()
            if need not in seen:
                seen.add(need)
                todo.extend(jobs[need].needs)
        return seen

    def to_yaml(self) -> str:
        document: dict[str, object] = {"version": "1.0", "stages": list(self.stages), "jobs": {}}
        jobs: dict[str, object] = {}
        for job in self.jobs:
            spec: dict[str, object] = {"stage": job.stage, "command": job.command}
            if job.needs:
                spec["needs"] = list(job.needs)
            if job.when != "on_success":
                spec["when"] = job.when
            if job.on_failure != "continue":
                spec["on_failure"] = job.on_failure
            if job.retry and job.retry_delay:
                spec["retry"] = {"max": job.retry, "delay": f"{job.retry_delay:g}s", "backoff": 2}
            elif job.retry:
                spec["retry"] = job.retry
            jobs[job.name] = spec
        document["jobs"] = jobs
        return yaml.safe_dump(document, sort_keys=False)

    def write(self, folder: Path, name: str = "pulsaride-pipeline.yml") -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        path.write_text(self.to_yaml())
        return path


@st.composite
def pipelines(draw: st.DrawFn, *, max_jobs: int = 7, max_stages: int = 3,
              manual: bool = True, abort: bool = True, delays: bool = True,
              commands: st.SearchStrategy[str] | None = None) -> PipelineSpec:
    """A valid pipeline: jobs drawn in topological order, each needing only earlier jobs of the
    same or an earlier stage; file order is a random permutation of that order."""
    n_stages = draw(st.integers(1, max_stages))
    stages = STAGE_NAMES[:n_stages]
    n_jobs = draw(st.integers(1, max_jobs))
    # Non-decreasing stage indexes: a job may need any earlier-drawn job.
    stage_of = sorted(draw(st.lists(st.integers(0, n_stages - 1), min_size=n_jobs,
                                    max_size=n_jobs)))
    whens = st.sampled_from(WHEN_VALUES if manual else WHEN_VALUES[:2])
    jobs: list[JobSpec] = []
    for index in range(n_jobs):
        name = f"j{index}"
        earlier = [job.name for job in jobs]
        needs = draw(st.lists(st.sampled_from(earlier), unique=True, max_size=3)) if earlier else []
        retry = draw(st.integers(0, 2))
        jobs.append(JobSpec(
            name=name,
            stage=stages[stage_of[index]],
            needs=tuple(needs),
            when=draw(st.one_of(st.just("on_success"), whens)),
            on_failure=draw(st.sampled_from(("continue", "abort"))) if abort else "continue",
            retry=retry,
            retry_delay=draw(st.sampled_from((0.0, 0.0, 0.5, 1.0))) if delays and retry else 0.0,
            command=draw(commands) if commands is not None else "true",
        ))
    order = draw(st.permutations(range(n_jobs)))
    return PipelineSpec(stages=stages, jobs=tuple(jobs[i] for i in order))


@dataclass(frozen=True)
class Outcomes:
    """What each attempt of each job exits with (attempt n uses codes[n-1], then the last code),
    and how each manual gate is decided (approve or reject, in turn per decision)."""

    codes: dict[str, tuple[int, ...]]
    gates: dict[str, tuple[bool, ...]] = field(default_factory=dict)

    def exit_code(self, job: str, attempt: int) -> int:
        codes = self.codes.get(job) or (0,)
        return codes[min(attempt, len(codes)) - 1]

    def approve(self, job: str, decision_number: int) -> bool:
        decisions = self.gates.get(job) or (True,)
        return decisions[min(decision_number, len(decisions)) - 1]


@st.composite
def outcomes(draw: st.DrawFn, spec: PipelineSpec) -> Outcomes:
    """Per job, exit codes of its first attempts (mostly 0), and gate decisions."""
    code = st.sampled_from((0, 0, 0, 1, 3))
    codes = {job.name: tuple(draw(st.lists(code, min_size=1, max_size=4))) for job in spec.jobs}
    gates = {name: tuple(draw(st.lists(st.booleans(), min_size=1, max_size=3)))
             for name in spec.gates}
    return Outcomes(codes=codes, gates=gates)


@dataclass(frozen=True)
class CrashPoint:
    """Where a simulated runner crash happens.

    `where`: "launch-before" (JobStarted is durable, the process never starts),
    "launch-after" (the process started, then the runner died), "wait" (a job ended but the
    runner died before recording it), "observer" (a batch was written, the runner died before
    acting on it). `after`: how many calls of that kind pass first. `torn`: bytes of a
    half-written line left at the end of the file (0 for none).
    """

    where: str
    after: int
    torn: int = 0


CRASH_PLACES = ("launch-before", "launch-after", "wait", "observer")


def crash_points() -> st.SearchStrategy[CrashPoint]:
    return st.builds(CrashPoint, where=st.sampled_from(CRASH_PLACES), after=st.integers(0, 3),
                     torn=st.one_of(st.just(0), st.integers(1, 60)))


@dataclass(frozen=True)
class RunPlan:
    """Everything one simulated run needs: pipeline, outcomes, settings, crash points."""

    spec: PipelineSpec
    outcomes: Outcomes
    parallelism: int
    wait_for_approval: bool
    seed: int
    crashes: tuple[CrashPoint, ...] = ()
    extra_resumes: int = 0  # operator resumes after a failed/aborted/rejected end
    from_stage: str | None = None  # their --from (None: the first stage not all DONE)


@st.composite
def run_plans(draw: st.DrawFn, *, min_crashes: int = 0, max_crashes: int = 0,
              max_jobs: int = 7) -> RunPlan:
    spec = draw(pipelines(max_jobs=max_jobs))
    return RunPlan(
        spec=spec,
        outcomes=draw(outcomes(spec)),
        parallelism=draw(st.integers(1, 4)),
        wait_for_approval=draw(st.booleans()),
        seed=draw(st.integers(0, 2**32 - 1)),
        crashes=tuple(draw(st.lists(crash_points(), min_size=min_crashes, max_size=max_crashes))),
        extra_resumes=draw(st.integers(0, 2)),
        from_stage=draw(st.none() | st.sampled_from(spec.stages)),
    )


def examples(default: int) -> int:
    """Examples per property: `default`, or PT_PROPERTY_EXAMPLES for a thorough hunt."""
    return int(os.environ.get("PT_PROPERTY_EXAMPLES", default))


@st.composite
def changed_pipelines(draw: st.DrawFn, spec: PipelineSpec) -> tuple[PipelineSpec, Outcomes]:
    """`spec` edited as an operator might between a crash and `resume --allow-changed`:
    commands and retries changed, maybe a job nothing needs (and not a gate) removed, maybe a
    job moved to another (allowed) stage, maybe the last stage renamed, up to two jobs added
    (needing existing jobs of the same or earlier stages); with outcomes for the new jobs."""
    jobs = list(spec.jobs)
    for index, job in enumerate(jobs):
        if draw(st.booleans()):
            retry = draw(st.integers(0, 2))
            jobs[index] = replace(job, command=f"{job.command} # changed", retry=retry,
                                  retry_delay=job.retry_delay if retry else 0.0)
    needed = {need for job in jobs for need in job.needs}
    # A gate stays a gate until it has run (its policy is fixed when the run starts, ADR
    # 0017): only jobs that are not manual are ever removed.
    leaves = [job.name for job in jobs if job.name not in needed and job.when != "manual"]
    if len(jobs) > 1 and leaves and draw(st.booleans()):
        gone = draw(st.sampled_from(leaves))
        jobs = [job for job in jobs if job.name != gone]
    if draw(st.booleans()):
        jobs = _move_a_job(draw, spec, jobs)
    stages = spec.stages
    if draw(st.booleans()):  # rename the last stage
        stages = (*stages[:-1], "renamed")
        jobs = [replace(job, stage="renamed") if job.stage == spec.stages[-1] else job
                for job in jobs]
    new = PipelineSpec(stages=stages, jobs=tuple(jobs))
    codes: dict[str, tuple[int, ...]] = {}
    for number in range(draw(st.integers(0, 2))):
        stage = draw(st.sampled_from(new.stages))
        candidates = [job.name for job in jobs
                      if new.stage_index(job.stage) <= new.stage_index(stage)]
        needs = draw(st.lists(st.sampled_from(candidates), unique=True, max_size=2)
                     ) if candidates else []
        name = f"new{number}"
        jobs.append(JobSpec(name=name, stage=stage, needs=tuple(needs),
                            when=draw(st.sampled_from(("on_success", "always"))),
                            retry=draw(st.integers(0, 1))))
        codes[name] = tuple(draw(st.lists(st.sampled_from((0, 0, 1)), min_size=1, max_size=2)))
    return PipelineSpec(stages=stages, jobs=tuple(jobs)), Outcomes(codes=codes)


def _move_a_job(draw: st.DrawFn, spec: PipelineSpec, jobs: list[JobSpec]) -> list[JobSpec]:
    """Move one job to another stage where its needs and its dependents still allow it."""
    index = draw(st.integers(0, len(jobs) - 1))
    job = jobs[index]
    lowest = max((spec.stage_index(j.stage) for j in jobs if j.name in job.needs), default=0)
    highest = min((spec.stage_index(j.stage) for j in jobs if job.name in j.needs),
                  default=len(spec.stages) - 1)
    target = draw(st.integers(lowest, highest))
    return [*jobs[:index], replace(job, stage=spec.stages[target]), *jobs[index + 1:]]
