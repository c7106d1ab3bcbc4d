"""A deterministic, in-process stand-in for job processes, and a harness that drives runs
through the engine's real operations (start_run, resume_run, decide_gate) and real run files.

- `SimulatedExecutor` implements the engine's Executor protocol: outcomes come from a drawn
  table, the order in which running jobs end from a seeded RNG; every launch is recorded in the
  `World` and checked against the run file on disk at that moment (a DONE job is never launched).
- Crashes: `SimulatedCrash` is raised from the executor (before or after a launch, or while
  collecting exits) or from the observer (right after a batch was written). `Runner.execute`
  then closes the run file and releases its lock on the way out, as the kernel would for a
  killed process; the harness may leave a torn half-line at the end of the file.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pulsaride.engine.aggregate import PipelineRun
from pulsaride.engine.commands import RunRequest, decide_gate, resume_run, start_run
from pulsaride.engine.executor import Executor, JobExit, Launch
from pulsaride.engine.jsonl_store import RunFile, RunLock
from pulsaride.engine.layout import StateDir
from pulsaride.engine.masking import Masker
from pulsaride.engine.replay import replay
from pulsaride.engine.run_views import read_run
from pulsaride.engine.runner import Runner, RunObserver, RunResult
from pulsaride.engine.services import Identity, Services
from pulsaride.engine.transitions import WAITING

from .invariants import file_lines
from .strategies import CrashPoint, Outcomes, PipelineSpec

RUN_ID = "prop-run"
IDENTITY = Identity(user="tester", host="sim", pid=1)


class SimulatedCrash(BaseException):
    """The runner process 'dies' here (BaseException: nothing in the engine may swallow it)."""


class FakeClock:
    """Deterministic time: every reading is one millisecond after the previous one, and
    waiting (`sleep`) makes time pass without sleeping."""

    def __init__(self) -> None:
        self._now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self._now += timedelta(milliseconds=1)
        return self._now

    def sleep(self, seconds: float) -> None:
        self._now += timedelta(seconds=max(seconds, 0.0))


@dataclass
class World:
    """What outlives runner processes: the run file, every launch, gate decisions made."""

    run_file: Path
    launches: list[tuple[str, int]] = field(default_factory=list)
    decisions: Counter[str] = field(default_factory=Counter)

    def check_launch(self, launch: Launch) -> None:
        """(b) at the moment of launching: the job's JobStarted for this attempt is on disk,
        and the job never succeeded before (no JobSucceeded line for it)."""
        lines = [line for line in file_lines(self.run_file) if line.get("job") == launch.job]
        succeeded = [line["seq"] for line in lines if line["event"] == "JobSucceeded"]
        assert not succeeded, (
            f"{launch.job} launched (attempt {launch.attempt}) although it is DONE "
            f"(JobSucceeded at line {succeeded[0]})")
        starts = [line for line in lines if line["event"] == "JobStarted"]
        assert starts and starts[-1]["attempt"] == launch.attempt, (
            f"{launch.job} attempt {launch.attempt} launched without its durable JobStarted")


class SimulatedExecutor:
    """Executor protocol over a table of exit codes; ends a random subset of running jobs
    at each `wait`."""

    def __init__(self, world: World, outcomes: Outcomes, rng: random.Random, clock: FakeClock,
                 crash: CrashPoint | None = None,
                 on_idle: Callable[[], bool] | None = None) -> None:
        self.world = world
        self.clock = clock
        self.outcomes = outcomes
        self.rng = rng
        self.crash = crash
        self.on_idle = on_idle
        self._running: dict[str, Launch] = {}
        self._stops: dict[str, str] = {}
        self._calls: Counter[str] = Counter()
        self.idle_seconds = 0.0

    def _crash_point(self, where: str) -> None:
        if self.crash is None or self.crash.where != where:
            return
        self._calls[where] += 1
        if self._calls[where] > self.crash.after:
            raise SimulatedCrash(f"{where} #{self._calls[where]}")

    def launch(self, launch: Launch) -> None:
        self.world.check_launch(launch)
        assert launch.job not in self._running, f"{launch.job} launched twice at once"
        self._crash_point("launch-before")
        self.world.launches.append((launch.job, launch.attempt))
        self._running[launch.job] = launch
        self._crash_point("launch-after")

    def wait(self, timeout: float) -> list[JobExit]:
        if not self._running:
            # Nothing runs: time passes (a retry may become due), or a gate is decided.
            self.clock.sleep(timeout)
            self.idle_seconds += max(timeout, 0.001)
            assert self.idle_seconds < 60, "the runner waits with nothing running, due or gated"
            if self.on_idle is not None and self.on_idle():
                self.idle_seconds = 0.0
            return []
        self.idle_seconds = 0.0
        names = list(self._running)
        ending = self.rng.sample(names, self.rng.randint(1, len(names)))
        exits = [self._exit(self._running.pop(name)) for name in ending]
        self._crash_point("wait")
        return exits

    def _exit(self, launch: Launch) -> JobExit:
        reason = self._stops.pop(launch.job, None)
        if reason is not None:
            return JobExit(launch.job, launch.attempt, 143, f"stopped: {reason}",
                           launch.log_path, "0" * 64, stopped=True)
        code = self.outcomes.exit_code(launch.job, launch.attempt)
        return JobExit(launch.job, launch.attempt, code, f"exit code {code}" if code else "",
                       launch.log_path, "0" * 64)

    def stop(self, job: str, reason: str) -> None:
        if job in self._running:
            self._stops.setdefault(job, reason)

    def running(self) -> int:
        return len(self._running)


class Observer:
    """RunObserver that can crash the runner right after a batch of events was made durable."""

    def __init__(self, crash: CrashPoint | None = None) -> None:
        self.crash = crash if crash is not None and crash.where == "observer" else None
        self.armed = False
        self.calls = 0

    def events_recorded(self, run: PipelineRun, events: Sequence[Any]) -> None:
        if self.crash is None or not self.armed:
            return
        self.calls += 1
        if self.calls > self.crash.after:
            raise SimulatedCrash(f"observer #{self.calls}")

    def job_output(self, job: str, attempt: int, line: str) -> None:
        pass


def tear(path: Path, size: int) -> None:
    """Leave the first `size` bytes of a would-be next line at the end of the run file."""
    if size <= 0:
        return
    lines = file_lines(path)
    fake = (b'{"seq":%d,"event":"JobSucceeded","at":"2026-01-01T00:00:00.000000Z",'
            b'"pipeline_run_id":"%s","job":"j0","stage":"x","status":"DONE"}'
            % (len(lines) + 1, RUN_ID.encode()))
    with path.open("ab") as handle:
        handle.write(fake[:min(size, len(fake) - 1)])


def replay_from_disk(path: Path) -> PipelineRun:
    """Engine replay of the run file, read-only (what status/resume would see)."""
    run_file = RunFile.open(path, RUN_ID)
    try:
        return replay(run_file)
    finally:
        run_file.close()


def assert_same_state(live: PipelineRun, path: Path) -> None:
    """(a): the live runner's state equals the state replayed from its file."""
    replayed = replay_from_disk(path)
    assert live.state_snapshot() == replayed.state_snapshot()


@dataclass
class Segment:
    """How one runner process ended."""

    result: RunResult | None  # None: crashed
    live: PipelineRun | None


class Scenario:
    """A pipeline, its outcomes and a folder: runs it through crashes and resumes."""

    def __init__(self, spec: PipelineSpec, outcomes: Outcomes, *, parallelism: int,
                 wait_for_approval: bool, seed: int) -> None:
        self.spec = spec
        self.outcomes = outcomes
        self.parallelism = parallelism
        self.wait_for_approval = wait_for_approval
        self.rng = random.Random(seed)
        self.clock = FakeClock()
        self.folder = Path(tempfile.mkdtemp(prefix="pt-prop-"))
        self.pipeline_path = spec.write(self.folder)
        self.state = StateDir.for_pipeline(self.pipeline_path)
        self.world = World(run_file=self.state.run_file(RUN_ID))
        self.started = False

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Scenario:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def run_file(self) -> Path:
        return self.world.run_file

    def request(self) -> RunRequest:
        return RunRequest(pipeline_path=self.pipeline_path, parallelism=self.parallelism,
                          wait_for_approval=self.wait_for_approval)

    def services(self, observer: RunObserver,
                 factory: Callable[[Masker, RunObserver, RunLock], Executor]) -> Services:
        return Services(observer=observer, clock=self.clock, identity=IDENTITY,
                        executor_factory=factory)

    def decide_next_gate(self) -> bool:
        """Approve or reject (per the outcome table) the first gate waiting on disk."""
        view = read_run(self.pipeline_path, None, RUN_ID)
        waiting = [n for n, j in view.run.active_jobs.items() if j.status is WAITING]
        if not waiting:
            return False
        name = waiting[0]
        self.world.decisions[name] += 1
        approve = self.outcomes.approve(name, self.world.decisions[name])
        decide_gate(self.pipeline_path, state_dir=None, run_id=RUN_ID, job=name,
                    approve=approve, reason="property test",
                    services=Services(observer=Observer(), clock=self.clock, identity=IDENTITY))
        return True

    def segment(self, crash: CrashPoint | None = None, *, torn: int = 0,
                from_stage: str | None = None, allow_changed: bool = False) -> Segment:
        """One runner process: start (first time) or resume the run, execute until it returns
        or crashes; on a crash, check (a) on the dead runner's state and maybe tear the file."""
        observer = Observer(crash)
        executor = SimulatedExecutor(self.world, self.outcomes, self.rng, self.clock, crash,
                                     on_idle=self.decide_next_gate)
        services = self.services(observer, lambda _m, _o, _l: executor)
        runner: Runner | RunResult
        if not self.started:
            runner = start_run(self.request(), services, run_id=RUN_ID)
            self.started = True
        else:
            runner = resume_run(self.request(), services, RUN_ID, from_stage=from_stage,
                                allow_changed=allow_changed)
        if isinstance(runner, RunResult):
            return Segment(result=runner, live=None)
        observer.armed = True
        try:
            result = runner.execute()
        except SimulatedCrash:
            assert not RunLock.is_held(self.state.lock_file(RUN_ID)), "a dead runner's lock"
            assert_same_state(runner.run, self.run_file)
            tear(self.run_file, torn)
            return Segment(result=None, live=runner.run)
        assert not RunLock.is_held(self.state.lock_file(RUN_ID))
        assert_same_state(runner.run, self.run_file)
        return Segment(result=result, live=runner.run)


class ManualExecutor:
    """Executor protocol for the state machine: jobs end only when a rule says so."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.jobs: dict[str, Launch] = {}
        self._stops: dict[str, str] = {}

    def launch(self, launch: Launch) -> None:
        self.world.check_launch(launch)
        assert launch.job not in self.jobs, f"{launch.job} launched twice at once"
        self.world.launches.append((launch.job, launch.attempt))
        self.jobs[launch.job] = launch

    def finish(self, job: str, exit_code: int) -> JobExit:
        """End a running job with `exit_code` (or as stopped, if the runner stopped it)."""
        launch = self.jobs.pop(job)
        reason = self._stops.pop(job, None)
        if reason is not None:
            return JobExit(job, launch.attempt, 143, f"stopped: {reason}", launch.log_path,
                           "0" * 64, stopped=True)
        return JobExit(job, launch.attempt, exit_code, f"exit code {exit_code}" * bool(exit_code),
                       launch.log_path, "0" * 64)

    def wait(self, timeout: float) -> list[JobExit]:
        return []

    def stop(self, job: str, reason: str) -> None:
        if job in self.jobs:
            self._stops.setdefault(job, reason)

    def running(self) -> int:
        return len(self.jobs)


class CrashingObserver:
    """RunObserver that crashes the runner after the next batch it is told about."""

    def __init__(self) -> None:
        self.crash_next = False

    def events_recorded(self, run: PipelineRun, events: Sequence[Any]) -> None:
        if self.crash_next:
            self.crash_next = False
            raise SimulatedCrash("after writing a batch")

    def job_output(self, job: str, attempt: int, line: str) -> None:
        pass
