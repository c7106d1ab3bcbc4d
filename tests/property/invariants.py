"""Checks of the execution model read straight from a run file, independently of the engine.

`check_run_file` folds the file's lines in order with its own small model (statuses from the
`status` field every job line carries) and asserts, line by line:
- stage order: a job starts (or waits at its gate) only when every job of every earlier stage is
  terminal;
- needs: `on_success` / `manual` start only once every need is DONE, `always` once every need
  is terminal; a manual job starts only after an approval (or as a retry);
- the parallelism bound (of the RunStarted / latest RunResumed parameters) is never exceeded;
- DONE is final: after a job's JobSucceeded, no line of that job except none at all;
- skip propagation: a JobSkipped names, in `cause`, a job it needs (transitively) that is then
  unsuccessful and is the root (failed, cancelled, interrupted, or a rejected gate), never for
  an `always` job; at every RunFinished every job is terminal, and a non-`always` job with an
  unsuccessful need is SKIPPED (or CANCELLED by an abort).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from pulsaride.engine.aggregate import PipelineRun
from pulsaride.engine.transitions import TERMINAL, UNSUCCESSFUL, JobStatus

from .strategies import JobSpec, PipelineSpec

DONE, SKIPPED, RUNNING, WAITING = (JobStatus.DONE, JobStatus.SKIPPED, JobStatus.RUNNING,
                                   JobStatus.WAITING)


def file_lines(path: Path) -> list[dict[str, Any]]:
    """Every complete line of a run file (a torn last line, if any, is left out)."""
    data = path.read_bytes()
    return [orjson.loads(raw) for raw in data.split(b"\n")[:-1]]


@dataclass
class Folded:
    """What the independent fold saw (and the state it keeps while folding)."""

    spec: PipelineSpec  # the definition in force
    status: dict[str, JobStatus]
    started: Counter[str] = field(default_factory=Counter)
    succeeded: Counter[str] = field(default_factory=Counter)
    finished: list[str] = field(default_factory=list)  # outcomes of RunFinished lines
    max_running: int = 0
    done_ever: set[str] = field(default_factory=set)
    parallelism: int = 0
    aborted: bool = False
    rejected: set[str] = field(default_factory=set)
    touched: set[str] = field(default_factory=set)  # jobs with a line since the last take-over

    def run_line(self, line: dict[str, Any], where: str) -> None:
        """A line about the run (not about one job)."""
        event = line["event"]
        if event == "RunStarted":
            assert spec_of(line["pipeline"]["definition"]) == self.spec, "not the drawn pipeline"
        if event == "RunResumed" and line["pipeline"] is not None:
            self.spec = spec_of(line["pipeline"]["definition"])
            for name in self.spec.by_name:
                self.status.setdefault(name, JobStatus.PENDING)
        if event in ("RunStarted", "RunResumed"):
            self.parallelism = line["parameters"]["parallelism"]
            self.aborted = False
            self.touched.clear()
        elif event == "RunAborted":
            self.aborted = True
        elif event == "RunFinished":
            _check_finished(self.spec, self.status, self.aborted, self.touched, where)
            self.finished.append(line["outcome"])

    def job_line(self, line: dict[str, Any], where: str) -> None:
        """A transition of one job."""
        event, name, status = line["event"], line["job"], self.status
        self.touched.add(name)
        assert status[name] is not DONE, f"{where}: a line for {name}, which is DONE"
        if event in ("JobStarted", "JobAwaitingApproval"):
            _check_start(self.spec, status, line, where)
            self.started[name] += event == "JobStarted"
        elif event == "JobSucceeded":
            self.succeeded[name] += 1
            self.done_ever.add(name)
        elif event == "JobSkipped":
            _check_skip(self.spec, status, self.rejected, name, line["cause"], where)
        elif event == "JobRejected":
            self.rejected.add(name)
        elif event == "JobRequeued":
            self.rejected.discard(name)
        status[name] = JobStatus(line["status"])
        running = sum(1 for s in status.values() if s is RUNNING)
        assert running <= self.parallelism, (
            f"{where}: {running} jobs running, parallelism is {self.parallelism}")
        self.max_running = max(self.max_running, running)


def spec_of(definition: dict[str, Any]) -> PipelineSpec:
    """The pipeline a run file records (RunStarted, or a RunResumed that accepted a change)."""
    return PipelineSpec(stages=tuple(definition["stages"]), jobs=tuple(
        JobSpec(name=name, stage=job["stage"], needs=tuple(job["needs"]), when=job["when"],
                on_failure=job["on_failure"], retry=job["retry"]["max"],
                retry_delay=job["retry"]["delay"], command=job["command"])
        for name, job in definition["jobs"].items()))


def check_run_file(path: Path, spec: PipelineSpec) -> Folded:
    """Fold the run file at `path` and assert the execution model on every line.

    The rules follow the definition the file records (it must be `spec` at first; a resume
    with --allow-changed may replace it)."""
    folded = Folded(spec=spec, status=dict.fromkeys(spec.by_name, JobStatus.PENDING))
    for line in file_lines(path):
        where = f"line {line['seq']} ({line['event']} {line.get('job', '')})"
        if line["event"].startswith("Job"):
            folded.job_line(line, where)
        else:
            folded.run_line(line, where)
    return folded


def _check_start(spec: PipelineSpec, status: dict[str, JobStatus], line: dict[str, Any],
                 where: str) -> None:
    """A job starts, or its gate begins to wait: its stage is current and its needs allow it."""
    name = line["job"]
    job = spec.by_name[name]
    if line["event"] == "JobAwaitingApproval":
        assert job.when == "manual", f"{where}: only manual jobs wait for approval"
    elif job.when == "manual":
        assert status[name] in (JobStatus.APPROVED, JobStatus.RETRYING), (
            f"{where}: manual job started from {status[name]} without an approval")
    index = spec.stage_index(job.stage)
    early = [other.name for other in spec.jobs
             if spec.stage_index(other.stage) < index and status[other.name] not in TERMINAL]
    assert not early, (
        f"{where}: stage {job.stage} started while {early} of earlier stages are not terminal")
    if job.when == "always":
        unmet = [n for n in job.needs if status[n] not in TERMINAL]
    else:
        unmet = [n for n in job.needs if status[n] is not DONE]
    assert not unmet, f"{where}: {name} ({job.when}) started while its needs {unmet} are not met"


def _check_skip(spec: PipelineSpec, status: dict[str, JobStatus], rejected: set[str],
                name: str, cause: str, where: str) -> None:
    job = spec.by_name[name]
    assert job.when != "always", f"{where}: an `always` job was skipped"
    assert any(status[n] in UNSUCCESSFUL for n in job.needs), (
        f"{where}: skipped while no need of {name} is unsuccessful")
    assert cause in spec.ancestors(name), f"{where}: cause {cause!r} is not a need of {name}"
    assert status[cause] in UNSUCCESSFUL, f"{where}: cause {cause} is {status[cause]}"
    assert status[cause] is not SKIPPED or cause in rejected, (
        f"{where}: cause {cause} was itself skipped because of another job (not the root)")


def _check_finished(spec: PipelineSpec, status: dict[str, JobStatus], aborted: bool,
                    touched: set[str], where: str) -> None:
    open_jobs = {n: status[n].value for n in spec.by_name if status[n] not in TERMINAL}
    assert not open_jobs, f"{where}: the run finished with jobs not terminal: {open_jobs}"
    for job in spec.jobs:
        if job.when == "always":
            continue
        failed_needs = [n for n in job.needs if status[n] in UNSUCCESSFUL]
        if failed_needs:
            # CANCELLED: by this runner's abort, or by an earlier one if the job was left as
            # it was (a resume --from a later stage).
            cancelled = aborted or job.name not in touched
            allowed = {SKIPPED, JobStatus.CANCELLED} if cancelled else {SKIPPED}
            assert status[job.name] in allowed, (
                f"{where}: {job.name} is {status[job.name]} though its needs {failed_needs} "
                "did not succeed")


def check_final_state(run: PipelineRun, spec: PipelineSpec, outcome: str) -> None:
    """(c): once a runner returned (not interrupted), every job is terminal, or waiting at a
    gate if the run stopped there; the outcome agrees with the jobs. Jobs a changed pipeline
    dropped are not RUNNING either (no runner runs them)."""
    dropped = {n: j.status for n, j in run.jobs.items() if n not in run.active_jobs}
    assert RUNNING not in dropped.values(), f"jobs no longer defined are RUNNING: {dropped}"
    statuses = {name: state.status for name, state in run.active_jobs.items()}
    if outcome == "waiting":
        _check_waiting(spec, statuses)
        return
    assert all(s in TERMINAL for s in statuses.values()), statuses
    assert run.outcome == outcome
    if outcome == "succeeded":
        assert all(s is DONE for s in statuses.values()), statuses
    else:
        assert not all(s is DONE for s in statuses.values()), statuses
    for name, state in run.active_jobs.items():
        if state.status is SKIPPED and state.approval is None:
            assert state.cause in spec.ancestors(name), (name, state.cause)
            assert statuses[state.cause] in UNSUCCESSFUL, (name, state.cause)


def _check_waiting(spec: PipelineSpec, statuses: dict[str, JobStatus]) -> None:
    """A run stopped at a gate: some gate waits, nothing runs or retries, and every other job
    that is not terminal is blocked behind a gate (a later stage, or an open need)."""
    assert any(s is WAITING for s in statuses.values()), statuses
    current = min((spec.stage_index(spec.by_name[n].stage) for n, s in statuses.items()
                   if s not in TERMINAL), default=len(spec.stages))
    for name, state in statuses.items():
        if state in TERMINAL or state is WAITING:
            continue
        job = spec.by_name[name]
        # APPROVED: a gate of a later stage, approved before a resume reopened an earlier one.
        assert state in (JobStatus.PENDING, JobStatus.APPROVED), (name, statuses)
        blocked = spec.stage_index(job.stage) > current or (
            state is JobStatus.PENDING and any(statuses[n] not in TERMINAL for n in job.needs))
        assert blocked, f"{name} is PENDING and could start, yet the run stopped: {statuses}"
