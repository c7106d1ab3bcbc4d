"""Property-based tests of the engine's invariants over random DAGs, outcomes and crash points.

Runs go through the real operations (start_run, resume_run, decide_gate), the real Runner and
real run files; only job processes are simulated (see sim.py). Properties:
(a) the live runner's state equals the state replayed from its file, after every runner ends
    (normally or by a crash);
(b) resume never re-executes a DONE job (checked at every launch against the file on disk,
    and by counting launches of jobs that were DONE at a crash);
(c) once a runner returns, every job is terminal, or the run waits at a gate;
(d) skip propagation, stage order, needs and the parallelism bound, line by line of the file.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pulsaride.engine.transitions import DONE

from .invariants import check_final_state, check_run_file
from .sim import Scenario, replay_from_disk
from .strategies import Outcomes, RunPlan, changed_pipelines, examples, run_plans

SETTINGS = settings(max_examples=examples(200), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@dataclass
class Driven:
    """How a plan ended: the final outcome and, for every crash, the jobs DONE on disk right
    after it with how many launches each job had by then; torn tails left behind."""

    outcome: str = ""
    at_crashes: list[tuple[set[str], Counter[str]]] = field(default_factory=list)
    torn: int = 0


def drive(plan: RunPlan, scenario: Scenario) -> Driven:
    """Run the plan to its end through its crashes, gate decisions and resumes."""
    crashes = list(plan.crashes)
    extra_resumes = plan.extra_resumes
    driven = Driven()
    from_stage: str | None = None
    for _ in range(40):
        crash = crashes.pop(0) if crashes else None
        segment = scenario.segment(crash, torn=crash.torn if crash else 0, from_stage=from_stage)
        from_stage = None
        if segment.result is None:
            done = {n for n, j in replay_from_disk(scenario.run_file).jobs.items()
                    if j.status.value == "DONE"}
            driven.at_crashes.append((done, Counter(job for job, _ in scenario.world.launches)))
            driven.torn += bool(crash and crash.torn)
            continue
        outcome = segment.result.outcome
        assert outcome != "interrupted"
        check_final_state(segment.live or replay_from_disk(scenario.run_file), plan.spec,
                          outcome)
        if outcome == "waiting":
            assert not plan.wait_for_approval
            while scenario.decide_next_gate():
                pass
            continue
        if outcome == "succeeded" or extra_resumes == 0:
            event(f"outcome: {outcome}")
            event(f"crashes: {len(driven.at_crashes)}, torn: {driven.torn}")
            driven.outcome = outcome
            return driven
        extra_resumes -= 1
        from_stage = plan.from_stage
    raise AssertionError("the run did not end within 40 runner processes")


def check_whole_run(plan: RunPlan, scenario: Scenario, outcome: str) -> None:
    folded = check_run_file(scenario.run_file, plan.spec)
    replayed = replay_from_disk(scenario.run_file)
    check_final_state(replayed, plan.spec, outcome)
    assert folded.finished[-1] == outcome
    # (b) from the file: a job succeeds at most once, and every launch had its own JobStarted.
    assert all(count == 1 for count in folded.succeeded.values()), folded.succeeded
    launches = Counter(job for job, _ in scenario.world.launches)
    assert len(set(scenario.world.launches)) == len(scenario.world.launches)
    for job, count in launches.items():
        assert count <= folded.started[job], (job, count, folded.started[job])


@pytest.mark.slow
@SETTINGS
@given(plan=run_plans(max_crashes=0))
def test_live_state_matches_replay_and_the_execution_model(plan: RunPlan) -> None:
    """No crashes: (a), (c) after each runner, (d) over the whole file."""
    with Scenario(plan.spec, plan.outcomes, parallelism=plan.parallelism,
                  wait_for_approval=plan.wait_for_approval, seed=plan.seed) as scenario:
        outcome = drive(plan, scenario).outcome
        check_whole_run(plan, scenario, outcome)
        if plan.extra_resumes == 0 and not plan.spec.gates:
            # One runner, no resume: every job started at most 1 + retry times.
            folded = check_run_file(scenario.run_file, plan.spec)
            for job in plan.spec.jobs:
                assert folded.started[job.name] <= 1 + job.retry


@pytest.mark.slow
@SETTINGS
@given(plan=run_plans(min_crashes=1, max_crashes=4))
def test_resume_never_reexecutes_done_jobs(plan: RunPlan) -> None:
    """Random crash points (torn tails included), then resume until the run ends: no job DONE
    at a crash is ever launched again; (a), (c), (d) hold throughout."""
    with Scenario(plan.spec, plan.outcomes, parallelism=plan.parallelism,
                  wait_for_approval=plan.wait_for_approval, seed=plan.seed) as scenario:
        driven = drive(plan, scenario)
        check_whole_run(plan, scenario, driven.outcome)
        final = Counter(job for job, _ in scenario.world.launches)
        for done, launched in driven.at_crashes:
            for job in done:
                assert final[job] == launched[job], (
                    f"{job} was DONE at a crash and was launched again after it")
        replayed = replay_from_disk(scenario.run_file)
        assert replayed.quarantined_tails == driven.torn


@pytest.mark.slow
@SETTINGS
@given(plan=run_plans(min_crashes=1, max_crashes=1), data=st.data())
def test_resume_with_a_changed_pipeline_never_reexecutes_done_jobs(
        plan: RunPlan, data: st.DataObject) -> None:
    """A crash, then the operator edits the pipeline file and resumes with --allow-changed:
    jobs DONE before stay DONE and are never launched again, dropped jobs never run again, and
    the file obeys the execution model of whichever definition was in force."""
    with Scenario(plan.spec, plan.outcomes, parallelism=plan.parallelism,
                  wait_for_approval=plan.wait_for_approval, seed=plan.seed) as scenario:
        crash = plan.crashes[0]
        first = scenario.segment(crash, torn=crash.torn)
        if first.result is not None and first.result.outcome == "waiting":
            while scenario.decide_next_gate():
                pass
        new_spec, new_outcomes = data.draw(changed_pipelines(plan.spec), label="changed")
        new_spec.write(scenario.folder)
        scenario.outcomes = Outcomes(codes={**plan.outcomes.codes, **new_outcomes.codes},
                                     gates=plan.outcomes.gates)
        before = replay_from_disk(scenario.run_file)
        done_before = {n for n, j in before.jobs.items() if j.status is DONE}
        launched_before = Counter(job for job, _ in scenario.world.launches)
        for _ in range(20):
            segment = scenario.segment(allow_changed=True)
            assert segment.result is not None
            if segment.live is not None:
                check_final_state(segment.live, new_spec, segment.result.outcome)
            if segment.result.outcome != "waiting":
                break
            while scenario.decide_next_gate():
                pass
        else:
            raise AssertionError("the changed run did not end")
        check_run_file(scenario.run_file, plan.spec)
        final = replay_from_disk(scenario.run_file)
        launches = Counter(job for job, _ in scenario.world.launches)
        for name in done_before:
            if name in new_spec.by_name:
                assert final.jobs[name].status is DONE, name
            assert launches[name] == launched_before[name], f"{name} ran again after DONE"
        for name in set(plan.spec.by_name) - set(new_spec.by_name):
            assert launches[name] == launched_before[name], f"dropped {name} ran again"
