# ruff: noqa: E501  (pipeline files are written as readable one-line YAML jobs)
"""Jobs on a real Dask cluster (a `dask scheduler` and `dask worker` processes on loopback):
resources pin jobs to workers, output streams back into the run's logs (masked), the engine's
parallelism bound holds, and a worker killed mid-job fails the attempt: retried by the job's
policy, never DONE twice."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import orjson
import pytest

from tests.conftest import PT, run_pt
from tests.scale.conftest import Cluster, start_cluster

PINNED = """\
stages: [copy, check]
jobs:
  near-1: {stage: copy, command: "echo on $PT_WORKER; echo token=$PT_TEST_TOKEN", resources: {near_source: 1}}
  near-2: {stage: copy, command: "echo on $PT_WORKER", resources: {near_source: 1}}
  near-3: {stage: copy, command: "echo on $PT_WORKER", resources: {near_source: 1}}
  anywhere: {stage: check, command: "echo checked", needs: [near-1]}
"""


def lines(folder: Path, run_id: str) -> list[dict[str, object]]:
    path = folder / ".pulsaride/pipeline-runs" / f"{run_id}.jsonl"
    return [orjson.loads(raw) for raw in path.read_bytes().splitlines()]


def log(folder: Path, run_id: str, job: str, attempt: int = 1) -> str:
    return (folder / ".pulsaride/pipeline-runs" / run_id / "logs" / job /
            f"attempt-{attempt}.log").read_text()


def test_jobs_land_only_on_workers_offering_their_resources(tmp_path: Path, cluster: Cluster) -> None:
    (tmp_path / "p.yml").write_text(PINNED)
    near = next(iter(cluster.workers))  # w1, the worker started with near_source=1
    result = run_pt("pipeline", "run", "p.yml", "--run-id", "r1", "--executor",
                    f"dask://127.0.0.1:{cluster.port}", cwd=tmp_path,
                    env={"PT_TEST_TOKEN": "s3cr3t-value-42"})
    assert result.returncode == 0, result.stdout + result.stderr
    for job in ("near-1", "near-2", "near-3"):
        assert log(tmp_path, "r1", job) .startswith(f"on {near}\n")
    assert "token=***" in log(tmp_path, "r1", "near-1")  # masked on this side, as local logs
    assert "s3cr3t-value-42" not in result.stdout
    assert "near-1 | token=***" in result.stdout  # streamed back to the runner's display
    assert "checked" in log(tmp_path, "r1", "anywhere")
    verified = run_pt("pipeline", "verify", "p.yml", "--run-id", "r1", cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout  # log digests match the recorded ones
    started = next(line for line in lines(tmp_path, "r1") if line["event"] == "RunStarted")
    assert started["parameters"]["executor"] == f"dask://127.0.0.1:{cluster.port}"  # type: ignore[index]


def test_the_engine_keeps_its_parallelism_bound_on_the_cluster(tmp_path: Path, cluster: Cluster) -> None:
    jobs = "\n".join(
        f'  j{n}: {{stage: s, command: "echo start $(date +%s.%N) >> {tmp_path}/spans; sleep 0.4; echo end $(date +%s.%N) >> {tmp_path}/spans"}}'
        for n in range(6))
    (tmp_path / "p.yml").write_text(f"stages: [s]\njobs:\n{jobs}\n")
    result = run_pt("pipeline", "run", "p.yml", "-j", "2", "-q", "--executor",
                    f"dask://127.0.0.1:{cluster.port}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    running, most = 0, 0
    marks = sorted((float(t), kind) for kind, t in
                   (line.split() for line in (tmp_path / "spans").read_text().splitlines()))
    for _, kind in marks:  # "end" sorts before "start" at equal times: never over-counted
        running += 1 if kind == "start" else -1
        most = max(most, running)
    assert most == 2  # 8 worker threads, but never more than -j 2 jobs at once


def test_a_job_no_worker_can_take_fails_at_once_with_the_reason(tmp_path: Path, cluster: Cluster) -> None:
    (tmp_path / "p.yml").write_text('stages: [s]\njobs:\n  gpu: {stage: s, command: "true", resources: {gpu: 1}}\n')
    result = run_pt("pipeline", "run", "p.yml", "--run-id", "g", "-q", "--executor",
                    f"dask://127.0.0.1:{cluster.port}", cwd=tmp_path)
    assert result.returncode == 1
    failed = next(line for line in lines(tmp_path, "g") if line["event"] == "JobFailed")
    assert "no Dask worker offers the resources {'gpu': 1.0}" in str(failed["error"])


def _marked(marker: str) -> list[int]:
    """Live processes whose environment carries `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_timeout_and_abort_reach_processes_that_left_the_jobs_group(tmp_path: Path, cluster: Cluster) -> None:
    marker = f"pt-dask-mark-{os.getpid()}-{time.monotonic_ns()}"
    (tmp_path / "p.yml").write_text(f"""\
stages: [s]
variables: {{DASK_MARK: {marker}}}
jobs:
  timed-out: {{stage: s, command: "setsid sleep 120 > /dev/null 2>&1 & sleep 20; touch late-1", timeout: 1s}}
  aborted: {{stage: s, command: "setsid sleep 120 > /dev/null 2>&1 & sleep 20; touch late-2"}}
  fails: {{stage: s, command: "sleep 3; exit 1", on_failure: abort}}
""")
    try:
        result = run_pt("pipeline", "run", "p.yml", "--run-id", "t", "-q", "--executor",
                        f"dask://127.0.0.1:{cluster.port}", cwd=tmp_path)
        assert result.returncode == 1, result.stderr
        end = time.monotonic() + 10  # the kernel reaps; the signals were sent before the end
        while _marked(marker) and time.monotonic() < end:
            time.sleep(0.05)
        assert _marked(marker) == []
    finally:
        for pid in _marked(marker):
            os.kill(pid, 9)
    assert not list(tmp_path.glob("late-*"))  # both jobs were stopped, not waited for
    ended = {line["job"]: line for line in lines(tmp_path, "t") if line["event"] in ("JobFailed", "JobCancelled")}
    assert str(ended["timed-out"]["error"]).startswith("timed out after 1s")
    assert ended["aborted"]["event"] == "JobCancelled"


@pytest.mark.slow
def test_an_unreachable_scheduler_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "p.yml").write_text('stages: [s]\njobs:\n  a: {stage: s, command: "true"}\n')
    result = run_pt("pipeline", "run", "p.yml", "--executor", "dask://127.0.0.1:9", cwd=tmp_path)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("pt: error")]
    assert errors == [errors[0]] and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in errors[0]


KILLABLE = """\
stages: [copy]
jobs:
  copy: {{stage: copy, command: "echo attempt $PT_ATTEMPT on $PT_WORKER; echo $PT_WORKER > {folder}/started-$PT_ATTEMPT; sleep {sleep}; touch {folder}/done-$PT_ATTEMPT; echo finished", retry: {retry}{pin}}}
"""


def _run_and_kill(folder: Path, cluster: Cluster, retry: int, pin: str = "") -> tuple[int, str]:
    """Start the run, SIGKILL the worker that runs attempt 1 once it printed, wait for the end."""
    (folder / "p.yml").write_text(KILLABLE.format(sleep=3, folder=folder, retry=retry, pin=pin))
    runner = subprocess.Popen([PT, "pipeline", "run", "p.yml", "--run-id", "k", "-q",
                               "--executor", cluster.address.replace("tcp://", "dask://")],
                              cwd=folder, env=dict(os.environ), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        started = folder / "started-1"
        end = time.monotonic() + 30
        while not (started.exists() and started.read_text().endswith("\n")):
            assert time.monotonic() < end and runner.poll() is None, runner.communicate()
            time.sleep(0.05)
        victim = started.read_text().strip()
        cluster.kill(victim)
        runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
    time.sleep(3.5)  # longer than the job's sleep: a surviving attempt 1 would have finished
    return runner.returncode, victim


@pytest.mark.slow
def test_a_worker_killed_mid_job_fails_the_attempt_and_the_retry_runs_elsewhere(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path, "", "")
    try:
        code, victim = _run_and_kill(tmp_path, cluster, retry=1)
    finally:
        cluster.stop()
    assert code == 0
    events = [(line["event"], line.get("attempt")) for line in lines(tmp_path, "k")
              if line.get("job") == "copy"]
    assert events == [("JobQueued", 1), ("JobStarted", 1), ("JobRetrying", 1),
                      ("JobStarted", 2), ("JobSucceeded", 2)] or \
        [e for e in events if e[0] != "JobQueued"] == [("JobStarted", 1), ("JobRetrying", 1),
                                                       ("JobStarted", 2), ("JobSucceeded", 2)]
    retrying = next(line for line in lines(tmp_path, "k") if line["event"] == "JobRetrying")
    assert "KilledWorker" in str(retrying["error"])
    assert "KilledWorker" in log(tmp_path, "k", "copy", 1)
    assert victim not in log(tmp_path, "k", "copy", 2)  # not run again on the dead worker
    assert not (tmp_path / "done-1").exists()  # attempt 1 died with its worker
    assert (tmp_path / "done-2").exists()


@pytest.mark.slow
def test_a_worker_killed_mid_job_without_retries_leaves_the_job_failed_never_done(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path, "victim=1", "")
    try:
        code, _ = _run_and_kill(tmp_path, cluster, retry=0, pin=", resources: {victim: 1}")
    finally:
        cluster.stop()
    assert code == 1
    events = [line["event"] for line in lines(tmp_path, "k") if line.get("job") == "copy"]
    assert "JobSucceeded" not in events and events[-1] == "JobFailed"
    assert events.count("JobStarted") == 1  # the scheduler did not run it again elsewhere
    assert not (tmp_path / "done-1").exists()
