"""The same properties with real job processes (LocalExecutor, `sh -c`), so the simulation is
not the only proof. Few examples: each one starts real processes.

Every job command appends its attempt number to `<job>.ran` in the pipeline's folder before
exiting with `true`, `false` or `exit 3`: that file is the evidence of what really ran. A
crash is an exception raised from the executor after a drawn number of launches (the process
of that launch is already running); the 'dead' runner's job processes are then waited for, as
the run's lock stays held by them until they end, and the run is resumed.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pulsaride.engine.commands import RunRequest, decide_gate, resume_run, start_run
from pulsaride.engine.executor import JobExit, Launch, LocalExecutor
from pulsaride.engine.jsonl_store import RunLock
from pulsaride.engine.layout import StateDir
from pulsaride.engine.masking import Masker
from pulsaride.engine.run_views import read_run
from pulsaride.engine.runner import RunObserver, RunResult
from pulsaride.engine.services import Services
from pulsaride.engine.transitions import DONE, WAITING

from .invariants import check_final_state, check_run_file, file_lines
from .sim import IDENTITY, RUN_ID, Observer, SimulatedCrash, assert_same_state
from .strategies import PipelineSpec, examples, pipelines

EXITS = st.sampled_from(["true", "true", "false", "exit 3"])
COMMANDS = EXITS.map(lambda tail: f'echo "$PT_ATTEMPT" >> "$PT_JOB.ran"; {tail}')


class CrashingLocalExecutor:
    """A LocalExecutor whose runner 'dies' right after the launch number `crash_after + 1`."""

    def __init__(self, inner: LocalExecutor, crash_after: int | None) -> None:
        self.inner = inner
        self.crash_after = crash_after
        self.launched = 0

    def launch(self, launch: Launch) -> None:
        self.inner.launch(launch)
        self.launched += 1
        if self.crash_after is not None and self.launched > self.crash_after:
            raise SimulatedCrash(f"after launch {self.launched}")

    def wait(self, timeout: float) -> list[JobExit]:
        return self.inner.wait(timeout)

    def stop(self, job: str, reason: str) -> None:
        self.inner.stop(job, reason)

    def running(self) -> int:
        return self.inner.running()

    def drain(self) -> None:
        """Wait for the dead runner's job processes to end (their outcomes are lost)."""
        for _ in range(600):
            if self.inner.running() == 0:
                return
            self.inner.wait(0.1)
        raise AssertionError("job processes of a crashed runner did not end")


def _factory(crash: int | None, made: list[CrashingLocalExecutor]
             ) -> Callable[[Masker, RunObserver, RunLock], CrashingLocalExecutor]:
    """An executor factory as the CLI's (the lock's fd inherited by jobs), crashing if asked."""
    def factory(masker: Masker, observer: RunObserver, lock: RunLock) -> CrashingLocalExecutor:
        inner = LocalExecutor(masker, inherit_fds=(lock.fd,), kill_grace=1.0)
        made.append(CrashingLocalExecutor(inner, crash))
        return made[-1]
    return factory


def ran(folder: Path, job: str) -> list[int]:
    path = folder / f"{job}.ran"
    return [int(n) for n in path.read_text().split()] if path.exists() else []


@settings(max_examples=examples(10), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(spec=pipelines(max_jobs=5, max_stages=2, delays=False, commands=COMMANDS),
       approve=st.booleans(),
       crashes=st.lists(st.integers(0, 3), max_size=2),
       parallelism=st.integers(1, 3))
def test_real_processes_resume_never_reexecutes_done_jobs(
        spec: PipelineSpec, approve: bool, crashes: list[int], parallelism: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="pt-prop-real-"))
    try:
        _run_real(spec, approve, list(crashes), parallelism, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run_real(spec: PipelineSpec, approve: bool, crashes: list[int], parallelism: int,
              folder: Path) -> None:
    path = spec.write(folder)
    state = StateDir.for_pipeline(path)
    request = RunRequest(pipeline_path=path, parallelism=parallelism, wait_for_approval=False)
    outcome = None
    for segment in range(12):
        executors: list[CrashingLocalExecutor] = []
        factory = _factory(crashes.pop(0) if crashes else None, executors)
        services = Services(observer=Observer(), identity=IDENTITY, executor_factory=factory)
        runner = (start_run(request, services, run_id=RUN_ID) if segment == 0
                  else resume_run(request, services, RUN_ID))
        if isinstance(runner, RunResult):
            outcome = runner.outcome
            break
        try:
            result = runner.execute()
        except SimulatedCrash:
            executors[0].drain()
            assert not RunLock.is_held(state.lock_file(RUN_ID))
            assert_same_state(runner.run, state.run_file(RUN_ID))
            continue
        assert_same_state(runner.run, state.run_file(RUN_ID))
        check_final_state(runner.run, spec, result.outcome)
        if result.outcome != "waiting":
            outcome = result.outcome
            break
        view = read_run(path, None, RUN_ID)
        for name, state_of_job in view.run.active_jobs.items():
            if state_of_job.status is WAITING:
                decide_gate(path, state_dir=None, run_id=RUN_ID, job=name, approve=approve,
                            reason="property test", services=services)
    assert outcome is not None, "the run did not end"

    folded = check_run_file(state.run_file(RUN_ID), spec)
    lines = file_lines(state.run_file(RUN_ID))
    final = read_run(path, None, RUN_ID).run
    for job in spec.jobs:
        attempts = ran(folder, job.name)
        started = [ln["attempt"] for ln in lines
                   if ln["event"] == "JobStarted" and ln["job"] == job.name]
        # Every process that ran had its durable JobStarted line first, once per attempt.
        assert len(attempts) == len(set(attempts)), (job.name, attempts)
        assert set(attempts) <= set(started), (job.name, attempts, started)
        if final.jobs[job.name].status is DONE:
            succeeded = [ln["attempt"] for ln in lines
                         if ln["event"] == "JobSucceeded" and ln["job"] == job.name]
            # (b): nothing of a DONE job ran after the attempt that made it DONE.
            assert succeeded == [max(attempts)], (job.name, attempts, succeeded)
    assert folded.finished, "no RunFinished line"
