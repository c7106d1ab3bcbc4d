#!/usr/bin/env python3
"""Time to rebuild a run's state from a large run file, against the raw parsing floor.

Generates (not timed) a valid run file of about `--lines` lines with the engine's own writer:
a pipeline of `--jobs` jobs (4 stages of lanes, each job needing its lane's job of the previous
stage), every job going through many attempts (JobStarted, JobRetrying, ..., JobStarted,
JobSucceeded), jobs of a stage interleaved by groups of 4 as a parallel run writes them, then
RunFinished. Events are real event objects written by `RunFile.append` (engine.lines.encode,
SHA-256 chain), so the store and the transition table accept every line. Then measures:

  (i)   replay(RunFile.open(path, run_id))        lines/s, the state rebuilt in-process;
  (ii)  the floor: read the file, orjson.loads every line (and, second floor, also sha256 it,
        which the hash chain needs anyway);
  (iii) `pt pipeline status FILE --run-id ID` wall time (a real process), with its peak RSS.

Ratios replay/floor tell how much the engine adds to reading the bytes.

    .venv/bin/python bench/bench_replay.py [--lines 1000000] [--repeats 3] [--json] [--save]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import io
import os
import platform
import pstats
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import harness  # type: ignore[import-not-found]  # the script next to this one
import orjson

from pulsaride.engine.aggregate import PipelineRun
from pulsaride.engine.events import (
    JobRetrying,
    JobStarted,
    JobSucceeded,
    RecordedEvent,
    RunFinished,
)
from pulsaride.engine.jsonl_store import RunFile
from pulsaride.engine.loader import load_pipeline_file
from pulsaride.engine.replay import replay
from pulsaride.engine.times import format_time

RUN_ID = "bench-replay"
STAGES = ("extract", "load", "validate", "switch")
GROUP = 4  # jobs of a stage interleaved as with --parallelism 4
BATCH = 10_000  # events per RunFile.append (one write + fdatasync each)


# ---- generation ------------------------------------------------------------------------------


def plan(lines: int, jobs: int) -> list[int]:
    """Attempts of each job so that the file has exactly `lines` lines (give or take one).

    Each attempt is two lines (JobStarted, then JobRetrying or JobSucceeded); with RunStarted
    and RunFinished, the first jobs take one attempt more to make up the count.
    """
    pairs = max(jobs, (lines - 2) // 2)
    base, extra = divmod(pairs, jobs)
    return [base + 1 if index < extra else base for index in range(jobs)]


def write_pipeline(folder: Path, jobs: int, attempts: int) -> Path:
    """A pipeline file of `jobs` jobs in lanes over STAGES; retry allows `attempts` attempts."""
    lanes = -(-jobs // len(STAGES))
    retry = min(100, attempts - 1)  # the schema's maximum; replay does not re-check budgets
    lines = ['version: "1.0"', f"stages: [{', '.join(STAGES)}]", "jobs:"]
    count = 0
    for s, stage in enumerate(STAGES):
        for lane in range(1, lanes + 1):
            if count == jobs:
                break
            count += 1
            needs = f", needs: [{STAGES[s - 1]}-{lane}]" if s else ""
            lines.append(f'  {stage}-{lane}: {{stage: {stage}, command: "./step.sh {stage} '
                         f'table_{lane} --batch 5000", retry: {{max: {retry}, delay: 5s}}'
                         f"{needs}}}")
    path = folder / "pulsaride-pipeline.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


def make(cls: type[RecordedEvent], **fields: Any) -> RecordedEvent:
    """An event object, as `engine.lines.decode` builds them."""
    return cls(**fields)


class Clock:
    """A fake clock ticking 1 ms per event."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def tick(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


def job_events(run_id: str, definition: dict[str, Any], attempts: dict[str, int],
               clock: Clock, first_seq: int) -> Iterator[RecordedEvent]:
    """Every job's attempts, stage by stage, groups of GROUP jobs interleaved."""
    seq = first_seq
    fake_log_sha = hashlib.sha256(b"log").hexdigest()
    by_stage: dict[str, list[str]] = {}
    for name, spec in definition["jobs"].items():
        by_stage.setdefault(spec["stage"], []).append(name)
    for stage in definition["stages"]:
        names = by_stage.get(stage, [])
        for first in range(0, len(names), GROUP):
            group = names[first:first + GROUP]
            started: dict[str, str] = {}
            for attempt in range(1, max(attempts[job] for job in group) + 1):
                group = [job for job in group if attempts[job] >= attempt]
                for job in group:
                    at = clock.tick()
                    started[job] = format_time(at)
                    yield make(JobStarted, originator_id=run_id, originator_version=seq,
                               timestamp=at, job=job, stage=stage, attempt=attempt,
                               started_at=started[job])
                    seq += 1
                for job in group:
                    at = clock.tick()
                    common: dict[str, Any] = {
                        "originator_id": run_id, "originator_version": seq, "timestamp": at,
                        "job": job, "stage": stage, "attempt": attempt,
                        "started_at": started[job], "finished_at": format_time(at),
                        "log": f"{run_id}/logs/{job}/attempt-{attempt}.log",
                        "log_sha256": fake_log_sha,
                    }
                    if attempt < attempts[job]:
                        yield make(JobRetrying, exit_code=1, error="exit code 1",
                                   retry_at=format_time(at + timedelta(seconds=5)), **common)
                    else:
                        yield make(JobSucceeded, exit_code=0, error="", **common)
                    seq += 1


def generate(folder: Path, lines: int, jobs: int) -> tuple[Path, Path, int]:
    """Write the pipeline and its run file; return (pipeline path, run file, line count)."""
    counts = plan(lines, jobs)
    pipeline_path = write_pipeline(folder, jobs, max(counts))
    pipeline_file = load_pipeline_file(pipeline_path)
    definition = pipeline_file.pipeline.definition()
    attempts = dict(zip(definition["jobs"], counts, strict=True))
    clock = Clock(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
    state = folder / ".pulsaride"
    run = PipelineRun.start(
        RUN_ID, clock.tick(),
        pipeline={"path": str(pipeline_file.path), "sha256": pipeline_file.sha256,
                  "definition": definition},
        parameters={"parallelism": GROUP, "wait_for_approval": True, "state_dir": str(state)},
        started_by="bench", host=platform.node(), pid=os.getpid(), tool_version="bench",
    )
    run_path = state / "pipeline-runs" / f"{RUN_ID}.jsonl"
    run_file = RunFile.create(run_path, RUN_ID)
    try:
        with run_file.locked():
            run_file.append(run.pending())
            batch: list[RecordedEvent] = []
            for event in job_events(RUN_ID, definition, attempts, clock, first_seq=2):
                batch.append(event)
                if len(batch) == BATCH:
                    run_file.append(batch)
                    batch = []
            run_file.append(batch)
            finished = make(RunFinished, originator_id=RUN_ID,
                            originator_version=run_file.seq + 1, timestamp=clock.tick(),
                            outcome="succeeded", counts={"DONE": len(definition["jobs"])})
            run_file.append([finished])
        count = run_file.lines
    finally:
        run_file.close()
    return pipeline_path, run_path, count


# ---- measurements ----------------------------------------------------------------------------


def measure_replay(path: Path, expected_lines: int) -> float:
    """Seconds to rebuild the run from its file (checks the result)."""
    gc.collect()
    start = time.perf_counter()
    run_file = RunFile.open(path, RUN_ID)
    try:
        run = replay(run_file)
    finally:
        run_file.close()
    elapsed = time.perf_counter() - start
    if run.version != expected_lines or run.outcome != "succeeded" or run_file.tail is not None:
        raise RuntimeError(f"replay gave version {run.version}, outcome {run.outcome}")
    return elapsed


def read_lines(path: Path) -> Iterator[bytes]:
    """The file's lines, read in 8 MiB chunks as the store reads them."""
    with path.open("rb", buffering=0) as handle:
        pending = b""
        while chunk := handle.read(8 * 1024 * 1024):
            pending += chunk
            *complete, pending = pending.split(b"\n")
            yield from complete


def measure_floor(path: Path, with_hash: bool) -> float:
    """Seconds to read the file and orjson.loads every line (and sha256 it if `with_hash`)."""
    gc.collect()
    loads, sha256 = orjson.loads, hashlib.sha256
    start = time.perf_counter()
    if with_hash:
        for raw in read_lines(path):
            loads(raw)
            sha256(raw).hexdigest()
    else:
        for raw in read_lines(path):
            loads(raw)
    return time.perf_counter() - start


def measure_status(pt: str, pipeline: Path, log: Path) -> float:
    """Wall seconds of `pt pipeline status FILE --run-id ID` (a real process)."""
    with log.open("wb") as out:
        start = time.perf_counter()
        proc = subprocess.run([pt, "pipeline", "status", str(pipeline), "--run-id", RUN_ID],
                              stdout=out, stderr=subprocess.STDOUT, check=False)
        elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"pt pipeline status exited {proc.returncode}: "
                           f"{log.read_text(errors='replace')[-2000:]}")
    return elapsed


_PEAK_RSS = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def status_peak_rss_mb(pt: str, pipeline: Path) -> float:
    """Peak RSS of `pt pipeline status`, run from a small fresh launcher process.

    (Not from this process: a child's peak RSS counts what it inherited at fork, and this
    process is large after generating the file.)
    """
    out = subprocess.run([sys.executable, "-c", _PEAK_RSS, pt, "pipeline", "status",
                          str(pipeline), "--run-id", RUN_ID],
                         capture_output=True, text=True, check=True).stdout
    return int(out.strip()) / 1024


def measure_startup(pt: str, log: Path) -> float:
    with log.open("wb") as out:
        start = time.perf_counter()
        subprocess.run([pt, "--version"], stdout=out, stderr=subprocess.STDOUT, check=True)
        return time.perf_counter() - start


def profile_replay(path: Path, top: int) -> str:
    """cProfile of one replay: the `top` functions by own time."""
    profiler = cProfile.Profile()
    run_file = RunFile.open(path, RUN_ID)
    try:
        profiler.runcall(replay, run_file)
    finally:
        run_file.close()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


# ---- main ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="about this many lines")
    parser.add_argument("--jobs", type=int, default=5000,
                        help="jobs in the pipeline (attempts per job follow from --lines)")
    parser.add_argument("--repeats", "-n", type=int, default=3)
    parser.add_argument("--pt", default=harness.default_pt(), help="the pt executable")
    parser.add_argument("--workdir", type=Path, help="where to write the run [default: temp dir]")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    parser.add_argument("--profile", type=int, metavar="TOP", default=0,
                        help="also print a cProfile of one replay (TOP functions, to stderr)")
    harness.add_report_options(parser)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.jobs < 1 or args.lines < 2 * args.jobs + 2:
        parser.error("need --repeats >= 1, --jobs >= 1, --lines >= 2 * jobs + 2")
    return args


def run_benchmark(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    print(f"generating about {args.lines:,} lines ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    pipeline, run_path, lines = generate(work, args.lines, args.jobs)
    generated = time.perf_counter() - start
    size = run_path.stat().st_size
    print(f"  {lines:,} lines, {size / 1e6:.0f} MB in {generated:.1f} s", file=sys.stderr)

    replay_s, floor_s, floor_hash_s, status_s, startup_s = [], [], [], [], []
    for repeat in range(args.repeats):
        print(f"  repeat {repeat + 1}/{args.repeats} ...", file=sys.stderr, flush=True)
        floor_s.append(measure_floor(run_path, with_hash=False))
        floor_hash_s.append(measure_floor(run_path, with_hash=True))
        replay_s.append(measure_replay(run_path, lines))
        startup_s.append(measure_startup(args.pt, work / "version.log"))
        status_s.append(measure_status(args.pt, pipeline, work / "status.log"))
    status_rss_mb = status_peak_rss_mb(args.pt, pipeline)
    if args.profile:
        print(profile_replay(run_path, args.profile), file=sys.stderr)

    med = statistics.median
    return {
        "benchmark": "replay",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"host": platform.node(), "cpus": os.cpu_count(),
                    "platform": platform.platform(), "python": platform.python_version(),
                    "load_average": os.getloadavg()},
        "repeats": args.repeats,
        "lines": lines,
        "jobs": args.jobs,
        "attempts_per_job": sorted(set(plan(args.lines, args.jobs))),
        "file_mb": size / 1e6,
        "generation_s": generated,
        "replay_s": med(replay_s),
        "replay_lines_per_s": lines / med(replay_s),
        "floor_loads_s": med(floor_s),
        "floor_loads_sha256_s": med(floor_hash_s),
        "ratio_replay_floor": med(replay_s) / med(floor_s),
        "ratio_replay_floor_sha256": med(replay_s) / med(floor_hash_s),
        "status_s": med(status_s),
        "pt_version_s": med(startup_s),
        "status_minus_startup_s": med(status_s) - med(startup_s),
        "status_peak_rss_mb": status_rss_mb,
        "times_s": {"replay": replay_s, "floor_loads": floor_s,
                    "floor_loads_sha256": floor_hash_s, "status": status_s},
    }


def render(doc: dict[str, Any]) -> str:
    lines = doc["lines"]

    def row(label: str, seconds: float, note: str = "") -> str:
        return f"  {label:<34}{seconds:>8.2f} s{lines / seconds:>12,.0f} lines/s  {note}"

    return "\n".join([
        f"replay of a {lines:,}-line run file ({doc['file_mb']:.0f} MB, {doc['jobs']} jobs x "
        f"{'-'.join(map(str, doc['attempts_per_job']))} attempts), median of {doc['repeats']} "
        f"({doc['machine']['cpus']} CPUs, Python {doc['machine']['python']}, load average at "
        f"the end {', '.join(f'{x:.2f}' for x in doc['machine']['load_average'])})",
        row("floor: read + orjson.loads", doc["floor_loads_s"]),
        row("floor: read + loads + sha256", doc["floor_loads_sha256_s"]),
        row("replay(RunFile.open(...))", doc["replay_s"],
            f"= {doc['ratio_replay_floor']:.1f}x loads floor, "
            f"{doc['ratio_replay_floor_sha256']:.1f}x loads+sha256 floor"),
        row("pt pipeline status (process)", doc["status_s"],
            f"(pt --version {doc['pt_version_s'] * 1000:.0f} ms; "
            f"peak RSS {doc['status_peak_rss_mb']:.0f} MB)"),
    ])


def main(argv: Sequence[str] | None = None) -> int:
    return harness.main("replay", parse_args(argv), run_benchmark, render, errors=(RuntimeError,))


if __name__ == "__main__":
    sys.exit(main())
