"""Semantic checks of a pipeline that a JSON Schema cannot express (stages, needs, cycles)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from graphlib import CycleError, TopologicalSorter

from .model import Job


def pipeline_problems(stages: Sequence[str], jobs: Mapping[str, Job]) -> list[str]:
    """Every semantic problem of the pipeline, one message each, in file order."""
    problems: list[str] = []
    for job in jobs.values():
        problems.extend(_job_problems(job, stages, jobs))
    problems.extend(_cycle_problems(jobs))
    return problems


def _job_problems(job: Job, stages: Sequence[str], jobs: Mapping[str, Job]) -> list[str]:
    where = f"job '{job.name}'"
    if job.stage not in stages:
        hint = _suggest(job.stage, stages)
        return [f"{where}: unknown stage '{job.stage}'{hint} "
                f"(stages: {', '.join(stages)})"]
    problems = []
    for need in job.needs:
        if need == job.name:
            problems.append(f"{where}: needs itself")
        elif need not in jobs:
            problems.append(f"{where}: needs '{need}', which is not defined{_suggest(need, jobs)}")
        elif (jobs[need].stage in stages  # an unknown stage has its own message
              and stages.index(jobs[need].stage) > stages.index(job.stage)):
            problems.append(
                f"{where}: needs '{need}' of the later stage '{jobs[need].stage}' "
                f"(stage '{job.stage}' runs first)"
            )
    return problems


def _cycle_problems(jobs: Mapping[str, Job]) -> list[str]:
    # Only needs inside one stage can close a cycle that is not already reported: a cycle
    # across stages has a need on a later stage, and self-needs and undefined needs have
    # their own messages. So cycles are found even when other problems exist.
    sorter = TopologicalSorter({
        name: [n for n in job.needs if n != name and n in jobs and jobs[n].stage == job.stage]
        for name, job in jobs.items()})
    try:
        sorter.prepare()
    except CycleError as exc:
        cycle: list[str] = list(exc.args[1])
        # graphlib lists the cycle against the edge direction (a needs b needs ... a).
        path = " → ".join(reversed(cycle))
        return [f"needs form a cycle: {path}"]
    return []


def _suggest(word: str, candidates: object) -> str:
    names = [str(c) for c in candidates] if isinstance(candidates, Sequence | Mapping) else []
    close = difflib.get_close_matches(word, names, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
