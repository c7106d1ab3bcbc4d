#!/usr/bin/env python3
"""Latency of appending one event to a run file with the engine's own writer, fsync included.

Creates a run file with `RunFile.create`, records RunStarted (not timed), then appends
`--events` real job events (JobStarted, JobRetrying, ..., JobSucceeded from bench_replay.py's
generator) one at a time, as the runner's `transact` does for a batch of one:

    with run_file.locked():          # flock
        run_file.append([event])     # encode, SHA-256 chain, one write(), fdatasync

Each append is timed on its own (perf_counter around the two lines above). Reported: p50, p90,
p99, p99.9 and the maximum, in microseconds, and appends per second. For reference, the same
appends are timed again in a second file with `os.fdatasync` replaced by a no-op, which shows
what the sync costs (that variant is not durable and the engine never runs that way).

    .venv/bin/python bench/bench_append.py [--events 10000] [--json] [--save]

The file lives in `--workdir` (default: a temporary folder under $TMPDIR): put it on the disk
whose latency you want to know. Timing never goes into the test suite; this is run by hand.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import harness  # type: ignore[import-not-found]  # the script next to this one
from bench_replay import (  # type: ignore[import-not-found]  # the script next to this one
    Clock,
    job_events,
    plan,
    write_pipeline,
)

from pulsaride.engine.aggregate import PipelineRun
from pulsaride.engine.jsonl_store import RunFile
from pulsaride.engine.loader import load_pipeline_file

RUN_ID = "bench-append"
JOBS = 100


def appended(folder: Path, events: int) -> list[float]:
    """Seconds of each single-event append of a fresh run of about `events` job events."""
    folder.mkdir(parents=True)
    counts = plan(events + 2, JOBS)
    pipeline_path = write_pipeline(folder, JOBS, max(counts))
    pipeline_file = load_pipeline_file(pipeline_path)
    definition = pipeline_file.pipeline.definition()
    clock = Clock(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
    run = PipelineRun.start(
        RUN_ID, clock.tick(),
        pipeline={"path": str(pipeline_file.path), "sha256": pipeline_file.sha256,
                  "definition": definition},
        parameters={"parallelism": 4, "wait_for_approval": True, "state_dir": str(folder)},
        started_by="bench", host=platform.node(), pid=os.getpid(), tool_version="bench",
    )
    run_file = RunFile.create(folder / "pipeline-runs" / f"{RUN_ID}.jsonl", RUN_ID)
    times = []
    try:
        with run_file.locked():
            run_file.append(run.pending())
        attempts = dict(zip(definition["jobs"], counts, strict=True))
        perf = time.perf_counter
        for event in job_events(RUN_ID, definition, attempts, clock, first_seq=2):
            start = perf()
            with run_file.locked():
                run_file.append([event])
            times.append(perf() - start)
    finally:
        run_file.close()
    return times


def summary(times: list[float]) -> dict[str, float]:
    """Percentiles of `times`, in microseconds."""
    ordered = sorted(times)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e6

    return {"count": len(times), "p50_us": at(0.50), "p90_us": at(0.90), "p99_us": at(0.99),
            "p999_us": at(0.999), "max_us": ordered[-1] * 1e6,
            "mean_us": statistics.fmean(times) * 1e6, "per_s": len(times) / sum(times)}


def run_benchmark(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    load_start = os.getloadavg()
    print(f"appending {args.events:,} events one by one, fdatasync each ...", file=sys.stderr)
    synced = summary(appended(work / "synced", args.events))
    print("same appends, fdatasync replaced by a no-op ...", file=sys.stderr)
    with mock.patch("os.fdatasync", lambda fd: None):
        unsynced = summary(appended(work / "unsynced", args.events))
    return {
        "benchmark": "append",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"host": platform.node(), "cpus": os.cpu_count(),
                    "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_start": load_start, "load_average": os.getloadavg()},
        "workdir": str(work),
        "synced": synced,
        "no_fdatasync": unsynced,
    }


def render(doc: dict[str, Any]) -> str:
    m = doc["machine"]

    def row(label: str, s: dict[str, float]) -> str:
        return (f"  {label:<28}{s['p50_us']:>8.0f}{s['p90_us']:>8.0f}{s['p99_us']:>8.0f}"
                f"{s['p999_us']:>8.0f}{s['max_us']:>9.0f}{s['per_s']:>10,.0f}")

    return "\n".join([
        f"RunFile.append of one event at a time, {doc['synced']['count']:,} events "
        f"({m['cpus']} CPUs, Python {m['python']}; load average at the start "
        f"{', '.join(f'{x:.2f}' for x in m['load_average_start'])}, at the end "
        f"{', '.join(f'{x:.2f}' for x in m['load_average'])})",
        f"  {'microseconds':<28}{'p50':>8}{'p90':>8}{'p99':>8}{'p99.9':>8}{'max':>9}"
        f"{'appends/s':>10}",
        row("flock + append + fdatasync", doc["synced"]),
        row("same, fdatasync a no-op", doc["no_fdatasync"]),
    ])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000, help="events appended")
    parser.add_argument("--workdir", type=Path, help="where to write the run [default: temp dir]")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    harness.add_report_options(parser)
    args = parser.parse_args(argv)
    if args.events < 2 * JOBS:
        parser.error(f"need --events >= {2 * JOBS}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return harness.main("append", parse_args(argv), run_benchmark, render)


if __name__ == "__main__":
    sys.exit(main())
