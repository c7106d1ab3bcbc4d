"""decide(): the execution model as a pure function of job states."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from pulsaride.engine.aggregate import Approval, JobState
from pulsaride.engine.events import (
    JobAwaitingApproval,
    JobSkipped,
    JobStarted,
    RunFinished,
)
from pulsaride.engine.loader import parse_pipeline
from pulsaride.engine.model import Pipeline
from pulsaride.engine.scheduler import decide, outcome
from pulsaride.engine.times import format_time
from pulsaride.engine.transitions import (
    DONE,
    FAILED,
    RETRYING,
    RUNNING,
    SKIPPED,
    WAITING,
    JobStatus,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)

PIPELINE = b"""
stages: [a, b, c]
jobs:
  a1: {stage: a, command: "true"}
  a2: {stage: a, command: "true"}
  a3: {stage: a, command: "true", needs: [a1]}
  b1: {stage: b, command: "true", needs: [a1]}
  b2: {stage: b, command: "true", needs: [b1]}
  b3: {stage: b, command: "true", needs: [a2], when: always}
  c1: {stage: c, command: "true", needs: [b2], when: manual}
"""


def pipeline() -> Pipeline:
    return parse_pipeline(PIPELINE, "test")


def states(p: Pipeline, **status: JobStatus) -> dict[str, JobState]:
    jobs = {name: JobState(name=name, stage=job.stage) for name, job in p.jobs.items()}
    for name, value in status.items():
        jobs[name] = replace(jobs[name], status=value, attempt=1 if value is not None else 0)
    return jobs


def started(intents: list) -> list[str]:  # type: ignore[type-arg]
    return [i.fields["job"] for i in intents if i.event is JobStarted]


def test_first_stage_starts_jobs_without_needs_in_file_order() -> None:
    p = pipeline()
    assert started(decide(states(p), p, NOW, 4)) == ["a1", "a2"]


def test_parallelism_bounds_the_starts() -> None:
    p = pipeline()
    assert started(decide(states(p), p, NOW, 1)) == ["a1"]
    assert started(decide(states(p, a1=RUNNING), p, NOW, 1)) == []


def test_next_stage_waits_until_every_job_of_the_stage_is_terminal() -> None:
    p = pipeline()
    intents = decide(states(p, a1=DONE, a2=DONE), p, NOW, 4)
    assert started(intents) == ["a3"]  # b1's need is met, but stage a is not finished
    assert started(decide(states(p, a1=DONE, a2=DONE, a3=DONE), p, NOW, 4)) == ["b1", "b3"]


def test_failed_need_skips_dependents_transitively_naming_the_cause() -> None:
    p = pipeline()
    intents = decide(states(p, a1=FAILED, a2=DONE), p, NOW, 4)
    skipped = {i.fields["job"]: i.fields for i in intents if i.event is JobSkipped}
    assert set(skipped) == {"a3", "b1", "b2", "c1"}
    assert all(fields["cause"] == "a1" for fields in skipped.values())
    assert "needs b2 (SKIPPED); cause: a1 (FAILED)" in skipped["c1"]["reason"]


def test_always_runs_after_a_failed_need() -> None:
    p = pipeline()
    jobs = states(p, a1=DONE, a2=FAILED, a3=DONE)
    assert "b3" in started(decide(jobs, p, NOW, 4))


def test_manual_job_waits_for_approval_when_its_needs_are_done() -> None:
    p = pipeline()
    jobs = states(p, a1=DONE, a2=DONE, a3=DONE, b1=DONE, b2=DONE, b3=DONE)
    intents = decide(jobs, p, NOW, 4)
    assert [i.event for i in intents] == [JobAwaitingApproval]
    assert decide(states(p, a1=DONE, a2=DONE, a3=DONE, b1=DONE, b2=DONE, b3=DONE, c1=WAITING),
                  p, NOW, 4) == []


def test_retry_waits_for_its_time() -> None:
    p = pipeline()
    jobs = states(p, a1=RETRYING, a2=DONE)
    jobs["a1"] = replace(jobs["a1"], retry_at=format_time(NOW + timedelta(seconds=5)))
    assert started(decide(jobs, p, NOW, 4)) == []
    assert started(decide(jobs, p, NOW + timedelta(seconds=5), 4)) == ["a1"]
    assert decide(jobs, p, NOW, 4, aborted=True) == []


def test_done_jobs_are_never_started() -> None:
    p = pipeline()
    all_done = states(p, **dict.fromkeys(p.jobs, DONE))
    intents = decide(all_done, p, NOW, 4)
    assert [i.event for i in intents] == [RunFinished]
    assert intents[0].fields["outcome"] == "succeeded"


def test_outcome_rejected_when_only_a_refused_gate_is_missing() -> None:
    p = pipeline()
    jobs = states(p, **dict.fromkeys(p.jobs, DONE))
    jobs["c1"] = replace(jobs["c1"], status=SKIPPED, cause="c1",
                         approval=Approval("rejected", "bob", "t", "no"))
    status = {n: j.status for n, j in jobs.items()}
    assert outcome(jobs, p, status, aborted=False) == "rejected"
    status["b3"] = FAILED
    assert outcome(jobs, p, status, aborted=False) == "failed"
    assert outcome(jobs, p, status, aborted=True) == "aborted"
