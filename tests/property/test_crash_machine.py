"""A stateful property test: a run is stepped, jobs end with random outcomes, gates are
approved or rejected, and the runner CRASHES at random moments (thrown away with its file and
lock, maybe leaving a torn half-line) and is rebuilt from disk with `resume_run`.

The machine drives the real Runner one decision at a time (`Runner._step`, the body of its
loop) with a `ManualExecutor` whose jobs end only when a rule says so. Invariants, after every
rule, against the file on disk and a small model:
- the live runner's state is the state replayed from the file;
- DONE is final: a job DONE once stays DONE and is never launched again (each launch is also
  checked against the file at the moment it happens);
- the runner and its executor agree on what runs; the parallelism bound holds;
- the run is never stuck: while it is not finished, something runs or a gate waits;
- the file obeys the execution model line by line (stage order, needs, skips, parallelism);
- a finished run has every job terminal.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from pulsaride.engine.commands import RunRequest, decide_gate, resume_run, start_run
from pulsaride.engine.executor import JobExit
from pulsaride.engine.jsonl_store import RunLock
from pulsaride.engine.run_views import read_run
from pulsaride.engine.runner import Runner, RunResult
from pulsaride.engine.scheduler import next_timer
from pulsaride.engine.services import Services
from pulsaride.engine.transitions import DONE, RETRYING, RUNNING, TERMINAL, WAITING

from .invariants import check_run_file
from .sim import (
    IDENTITY,
    RUN_ID,
    CrashingObserver,
    FakeClock,
    ManualExecutor,
    SimulatedCrash,
    World,
    assert_same_state,
    replay_from_disk,
    tear,
)
from .strategies import PipelineSpec, examples, pipelines


class CrashAndResume(RuleBasedStateMachine):
    """One run of a random pipeline, driven rule by rule through crashes and resumes."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="pt-prop-machine-"))
        self.runner: Runner | None = None
        self.executor: ManualExecutor | None = None
        self.observer = CrashingObserver()
        self.clock = FakeClock()
        self.done_ever: dict[str, int] = {}  # job -> its launches when it became DONE
        self.finished_outcome: str | None = None

    # ---- setup and helpers -----------------------------------------------------------------

    @initialize(spec=pipelines(max_jobs=6), parallelism=st.integers(1, 3))
    def start(self, spec: PipelineSpec, parallelism: int) -> None:
        self.spec = spec
        self.parallelism = parallelism
        self.path = spec.write(self.folder)
        self.request = RunRequest(pipeline_path=self.path, parallelism=parallelism)
        self.world = World(run_file=self.path.parent / ".pulsaride/pipeline-runs"
                           / f"{RUN_ID}.jsonl")
        runner = start_run(self.request, self._services(), run_id=RUN_ID)
        self._take(runner)

    def _services(self) -> Services:
        def factory(*_: object) -> ManualExecutor:
            self.executor = ManualExecutor(self.world)
            return self.executor
        return Services(observer=self.observer, clock=self.clock, identity=IDENTITY,
                        executor_factory=factory)

    def _take(self, runner: Runner) -> None:
        """A runner process takes the run over: its loop begins with one step."""
        self.runner = runner
        self._step([])

    def _step(self, exits: list[JobExit]) -> None:
        assert self.runner is not None
        try:
            self.runner._step(exits)
        except SimulatedCrash:
            self._drop()
            return
        if self.runner.run.outcome is not None:  # the loop ends: the runner returns
            self.finished_outcome = self.runner.run.outcome
            self._drop()

    def _drop(self) -> None:
        """The runner process is gone: the kernel closes its file and frees its lock; its
        job processes are gone with it."""
        assert self.runner is not None
        self.runner._file.close()
        self.runner._lock.release()
        self.runner = None
        self.executor = None

    def _disk_waiting(self) -> list[str]:
        run = replay_from_disk(self.world.run_file)
        return [n for n, j in run.active_jobs.items() if j.status is WAITING]

    def _running(self) -> list[str]:
        return sorted(self.executor.jobs) if self.executor is not None else []

    def teardown(self) -> None:
        if self.runner is not None:
            self._drop()
        shutil.rmtree(self.folder, ignore_errors=True)

    # ---- rules ---------------------------------------------------------------------------------

    @precondition(lambda self: self.runner is not None and self._running())
    @rule(pick=st.integers(0, 10), code=st.sampled_from([0, 0, 1, 3]))
    def a_job_ends(self, pick: int, code: int) -> None:
        assert self.executor is not None
        running = self._running()
        self._step([self.executor.finish(running[pick % len(running)], code)])

    @precondition(lambda self: self.runner is not None and self._running())
    @rule(pick=st.integers(0, 10), code=st.sampled_from([0, 1]))
    def runner_dies_right_after_writing(self, pick: int, code: int) -> None:
        """A job ends; the runner writes what follows, then dies before acting on it."""
        assert self.executor is not None
        running = self._running()
        exit_ = self.executor.finish(running[pick % len(running)], code)
        self.observer.crash_next = True
        self._step([exit_])
        self.observer.crash_next = False
        if self.runner is not None:  # nothing was written, so nothing crashed
            self._drop()

    @precondition(lambda self: self.runner is not None)
    @rule(torn=st.one_of(st.just(0), st.integers(1, 60)))
    def runner_is_killed(self, torn: int) -> None:
        self._drop()
        tear(self.world.run_file, torn)

    @precondition(lambda self: self.runner is not None and not self._running()
                  and self.runner._only_gates_left())
    @rule()
    def runner_suspends_at_gates(self) -> None:
        """--no-wait: nothing left but gates, so the runner records that and ends."""
        assert self.runner is not None
        self.runner._suspend()
        self._drop()

    @precondition(lambda self: self._disk_waiting())
    @rule(pick=st.integers(0, 10), approve=st.booleans())
    def someone_decides_a_gate(self, pick: int, approve: bool) -> None:
        waiting = self._disk_waiting()
        decide_gate(self.path, state_dir=None, run_id=RUN_ID, job=waiting[pick % len(waiting)],
                    approve=approve, reason="machine", services=self._services_for_gate())
        if self.runner is not None:  # the waiting runner notices foreign lines
            self._step([])

    def _services_for_gate(self) -> Services:
        return Services(observer=CrashingObserver(), clock=self.clock, identity=IDENTITY)

    @precondition(lambda self: self.runner is not None and any(
        j.status is RETRYING for j in self.runner.run.jobs.values()))
    @rule(seconds=st.sampled_from([0.3, 1.0, 5.0]))
    def time_passes(self, seconds: float) -> None:
        """Time passes while a retry waits for its delay; the loop wakes when it is due."""
        assert self.runner is not None
        self.clock.sleep(seconds)
        due = next_timer(self.runner.run.active_jobs)
        if due is not None and due <= self.clock():
            self._step([])

    @precondition(lambda self: self.runner is not None)
    @rule()
    def idle_step(self) -> None:
        """The loop wakes with nothing new (a poll): nothing may change."""
        before = replay_from_disk(self.world.run_file).version
        self._step([])
        assert replay_from_disk(self.world.run_file).version == before

    @precondition(lambda self: self.runner is None and self.finished_outcome != "succeeded")
    @rule(from_stage=st.none() | st.integers(0, 3))
    def operator_resumes(self, from_stage: int | None) -> None:
        stage = None if from_stage is None else self.spec.stages[from_stage % len(self.spec.stages)]
        self.finished_outcome = None
        runner = resume_run(self.request, self._services(), RUN_ID, from_stage=stage)
        if isinstance(runner, RunResult):
            assert runner.outcome == "succeeded"
            self.finished_outcome = "succeeded"
            return
        self._take(runner)

    @rule()
    def someone_reads_the_status(self) -> None:
        """Always possible (also once the run succeeded): a reader sees the run as on disk,
        active exactly while a runner holds it."""
        view = read_run(self.path, None, RUN_ID)
        assert view.active == (self.runner is not None)
        assert view.run.state_snapshot() == replay_from_disk(self.world.run_file).state_snapshot()

    # ---- invariants --------------------------------------------------------------------------

    @invariant()
    def live_state_is_the_replayed_state(self) -> None:
        if self.runner is not None:
            assert_same_state(self.runner.run, self.world.run_file)
        else:
            assert not RunLock.is_held(self.world.run_file.with_suffix(".lock"))

    @invariant()
    def done_is_final_and_never_relaunched(self) -> None:
        run = replay_from_disk(self.world.run_file)
        launches = Counter(job for job, _ in self.world.launches)
        for name, at_done in self.done_ever.items():
            assert run.jobs[name].status is DONE, f"{name} was DONE, now {run.jobs[name].status}"
            assert launches[name] == at_done, f"{name} launched again after it was DONE"
        for name, job in run.jobs.items():
            if job.status is DONE and name not in self.done_ever:
                self.done_ever[name] = launches[name]

    @invariant()
    def runner_and_executor_agree(self) -> None:
        if self.runner is None:
            return
        running = {n for n, j in self.runner.run.jobs.items() if j.status is RUNNING}
        assert running == set(self._running())
        assert len(running) <= self.parallelism

    @invariant()
    def never_stuck(self) -> None:
        if self.runner is None:
            return
        run = self.runner.run
        assert run.outcome is None
        assert self._running() or any(j.status in (WAITING, RETRYING)
                                      for j in run.jobs.values()), (
            {n: j.status.value for n, j in run.jobs.items()})

    @invariant()
    def the_file_obeys_the_execution_model(self) -> None:
        folded = check_run_file(self.world.run_file, self.spec)
        assert all(count == 1 for count in folded.succeeded.values())

    @invariant()
    def a_finished_run_has_every_job_terminal(self) -> None:
        run = replay_from_disk(self.world.run_file)
        if run.outcome is not None:
            assert all(j.status in TERMINAL for j in run.jobs.values())
            assert (run.outcome == "succeeded") == all(j.status is DONE
                                                       for j in run.jobs.values())


CrashAndResume.TestCase.settings = settings(
    max_examples=examples(100), stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_crash_and_resume = pytest.mark.slow(CrashAndResume.TestCase)
