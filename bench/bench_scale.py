#!/usr/bin/env python3
"""Running beyond one machine: the Dask executor and the PostgreSQL store against the defaults.

1. The 1000-job lanes DAG of bench_engine.py (4 stages x 250 lanes of `true`), run by
   `pt pipeline run -q -j4` with the local executor and with `--executor dask://...` on a
   `dask scheduler` and 2 `dask worker` processes (4 threads each, no nanny) on loopback,
   started by this script. Median wall time of N repeats, repeats interleaved.
2. Append and replay throughput of the two stores on the lines of such a run: every line
   appended as the runner does (one batch per decision: 1 line per batch) and in batches of
   100, each batch under the append lock and durable before the next (fsync / commit); then a
   fresh reader replays the whole run (read, check chain, fold into the aggregate).

    .venv/bin/python bench/bench_scale.py [--repeats 3] [--pg postgresql://postgres@127.0.0.1/test]

Timing never goes into the test suite; this is run by hand. The PostgreSQL database given is
only used through a schema of its own, dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import psycopg

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import harness  # noqa: E402
from bench_engine import lanes_dag, pipeline_yaml  # noqa: E402

from pulsaride.engine.events import RunEvent, RunStarted  # noqa: E402
from pulsaride.engine.jsonl_store import JsonlStore, RunFile  # noqa: E402
from pulsaride.engine.layout import StateDir  # noqa: E402
from pulsaride.engine.pgstore import PostgresStore  # noqa: E402
from pulsaride.engine.replay import replay  # noqa: E402
from pulsaride.engine.runstore import RunStore  # noqa: E402

BIN = Path(sys.executable).parent
OWNER = {"pid": os.getpid(), "host": "bench", "user": "bench", "since": "now"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_cluster(work: Path, workers: int) -> tuple[str, list[subprocess.Popen[bytes]]]:
    port = free_port()
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port",
                               str(port), "--no-dashboard"],
                              stdout=(work / "scheduler.log").open("wb"), stderr=subprocess.STDOUT)]
    time.sleep(2)
    for n in range(workers):
        procs.append(subprocess.Popen(
            [str(BIN / "dask"), "worker", f"tcp://127.0.0.1:{port}", "--nthreads", "4",
             "--no-nanny", "--no-dashboard", "--name", f"w{n}"],
            stdout=(work / f"w{n}.log").open("wb"), stderr=subprocess.STDOUT))
    from distributed import Client  # noqa: PLC0415

    with Client(f"tcp://127.0.0.1:{port}", timeout=30) as client:
        client.wait_for_workers(workers, timeout=60)
    return f"dask://127.0.0.1:{port}", procs


def run_pt(pipeline: Path, state: Path, extra: Sequence[str]) -> float:
    shutil.rmtree(state, ignore_errors=True)
    started = time.perf_counter()
    result = subprocess.run([str(BIN / "pt"), "pipeline", "run", str(pipeline), "-q", "-j", "4",
                             "--state-dir", str(state), *extra], capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"pt failed: {result.stderr.decode()[-2000:]}")
    return elapsed


def executors(work: Path, repeats: int) -> tuple[dict[str, float], Path]:
    pipeline = work / "lanes.yml"
    pipeline.write_text(pipeline_yaml(lanes_dag(250, 4)))
    address, procs = start_cluster(work, 2)
    times: dict[str, list[float]] = {"local": [], "dask (2 workers)": []}
    try:
        for _ in range(repeats):
            times["local"].append(run_pt(pipeline, work / "local", []))
            times["dask (2 workers)"].append(
                run_pt(pipeline, work / "dask", ["--executor", address]))
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    run_file = next((work / "local" / "pipeline-runs").glob("*.jsonl"))
    return {name: statistics.median(values) for name, values in times.items()}, run_file


def sample_events(run_file: Path) -> list[RunEvent | RunStarted]:
    reader = RunFile.open(run_file, run_file.stem)
    try:
        return [event for _, event in reader.read_new()]
    finally:
        reader.close()


def append_rate(store: RunStore, run_id: str, events: list[RunEvent | RunStarted],
                batch: int) -> float:
    lock = store.acquire(run_id, OWNER)
    log, _ = store.create(run_id)
    started = time.perf_counter()
    try:
        for first in range(0, len(events), batch):
            with log.locked():
                log.append(events[first:first + batch])
    finally:
        log.close()
        lock.release()
    return len(events) / (time.perf_counter() - started)


def replay_rate(store: RunStore, run_id: str, lines: int, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        log = store.open(run_id)
        try:
            replay(log)
        finally:
            log.close()
        times.append(time.perf_counter() - started)
    return lines / statistics.median(times)


def stores(work: Path, run_file: Path, pg: str) -> dict[str, dict[str, float]]:
    events = sample_events(run_file)
    run_id = run_file.stem
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    makers: dict[str, Callable[[str], RunStore]] = {
        "jsonl": lambda tag: JsonlStore(StateDir(work / f"jsonl-{tag}")),
        "postgresql": lambda tag: PostgresStore.connect(f"{pg}?schema={schema}_{tag}"),
    }
    results: dict[str, dict[str, float]] = {}
    try:
        for name, make in makers.items():
            row: dict[str, float] = {"lines": float(len(events))}
            for batch in (1, 100):
                store = make(f"b{batch}")
                try:
                    row[f"append/s (batch {batch})"] = append_rate(store, run_id, events, batch)
                    if batch == 1:
                        row["replay lines/s"] = replay_rate(store, run_id, len(events))
                finally:
                    store.close()
            results[name] = row
    finally:
        with psycopg.connect(pg, autocommit=True) as admin:
            for batch in (1, 100):
                admin.execute(f'DROP SCHEMA IF EXISTS "{schema}_b{batch}" CASCADE')
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args(argv)
    with harness.work_folder("scale") as work:
        walls, run_file = executors(work, args.repeats)
        print(f"1000-job lanes DAG (250x4, `true`), pt -j4, median of {args.repeats}:")
        for name, seconds in walls.items():
            print(f"  {name:18} {seconds:7.2f} s   {1000 / seconds:7.0f} jobs/s")
        ratio = walls["dask (2 workers)"] / walls["local"]
        print(f"  dask / local wall time: {ratio:.2f}x")
        figures = stores(work, run_file, args.pg)
        lines = int(figures["jsonl"]["lines"])
        print(f"\nstores, the {lines} lines of that run:")
        keys = ["append/s (batch 1)", "append/s (batch 100)", "replay lines/s"]
        print(f"  {'':12}" + "".join(f"{key:>22}" for key in keys))
        for name, row in figures.items():
            print(f"  {name:12}" + "".join(f"{row[key]:>22,.0f}" for key in keys))
        print("  postgresql / jsonl:" + "".join(
            f"  {key}: {figures['postgresql'][key] / figures['jsonl'][key]:.2f}x"
            for key in keys))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
