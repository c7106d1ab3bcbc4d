#!/usr/bin/env python3
"""Time `pt pipeline verify` and `pt pipeline export` on a 100,000-transition run.

Generates (not timed) a valid run the way bench_replay.py does (its `plan`, `write_pipeline`,
`job_events`: jobs in lanes over 4 stages, every job through many attempts, real event objects
written by `RunFile.append`), but complete as evidence: RunStarted records the pipeline as the
engine does (path, sha256, the copy `<id>/pipeline.yml` and its digest, the definition and its
digest), every JobRetrying/JobSucceeded line names a real log file whose SHA-256 it records
(one file per attempt, about 50,000), and the run ends RunFinished, RunCheckpoint, sealed with a
fresh Ed25519 key. The clean file must verify: each timed command's result is checked.

Then times, as real processes (median of `--repeats`), in seconds and lines/s:

    pt pipeline verify --run-id ID [--json]        (hash chain, schema, replay, every log)
    pt pipeline verify --run-id ID --pubkey KEY    (the same, and the seal)
    pt pipeline export --run-id ID --format json|csv|bundle -o PATH

    .venv/bin/python bench/bench_evidence.py [--lines 100000] [--jobs 1000] [--repeats 3]
        [--profile TOP] [--json] [--save]

`--profile TOP` adds a cProfile of one in-process `verify_run` (TOP functions by own time).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import platform
import pstats
import resource
import statistics
import subprocess
import sys
import tarfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import harness  # type: ignore[import-not-found]  # the script next to this one
import orjson
from bench_replay import (  # type: ignore[import-not-found]  # the script next to this one
    BATCH,
    GROUP,
    Clock,
    job_events,
    make,
    plan,
    write_pipeline,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pulsaride.engine.aggregate import PipelineRun
from pulsaride.engine.commands import _recorded_pipeline, seal_head
from pulsaride.engine.events import RecordedEvent, RunCheckpoint, RunFinished
from pulsaride.engine.evidence import load_evidence
from pulsaride.engine.jsonl_store import RunFile
from pulsaride.engine.layout import StateDir
from pulsaride.engine.loader import load_pipeline_file
from pulsaride.engine.masking import Masker
from pulsaride.engine.seal import load_public_key
from pulsaride.projections.verify import verify_run

RUN_ID = "bench-evidence"
LOG_DATA = b"log"  # bench_replay.job_events records sha256(b"log") for every log


# ---- generation ------------------------------------------------------------------------------


def generate(folder: Path, lines: int, jobs: int) -> tuple[StateDir, Path, int, int]:
    """Write the pipeline, the run file, its logs and a seal; return (state dir, public key
    file, line count, log count)."""
    counts = plan(lines, jobs)  # RunStarted, 2 per attempt, RunFinished, RunCheckpoint
    pipeline_path = write_pipeline(folder, jobs, max(counts))
    pipeline_file = load_pipeline_file(pipeline_path)
    definition = pipeline_file.pipeline.definition()
    attempts = dict(zip(definition["jobs"], counts, strict=True))
    clock = Clock(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
    state = StateDir.for_pipeline(pipeline_path)
    run = PipelineRun.start(
        RUN_ID, clock.tick(),
        pipeline=_recorded_pipeline(pipeline_file, Masker([]), state, RUN_ID, "pipeline.yml"),
        parameters={"parallelism": GROUP, "wait_for_approval": True,
                    "state_dir": str(state.root)},
        started_by="bench", host=platform.node(), pid=os.getpid(), tool_version="bench",
    )
    run_file = RunFile.create(state.run_file(RUN_ID), RUN_ID)
    logs = 0
    key = Ed25519PrivateKey.generate()
    try:
        with run_file.locked():
            run_file.append(run.pending())
            batch: list[RecordedEvent] = []
            for event in job_events(RUN_ID, definition, attempts, clock, first_seq=2):
                log = getattr(event, "log", None)
                if log is not None:
                    path = state.runs / log
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(LOG_DATA)
                    logs += 1
                batch.append(event)
                if len(batch) == BATCH:
                    run_file.append(batch)
                    batch = []
            run_file.append(batch)
            at = clock.tick()
            run_file.append([
                make(RunFinished, originator_id=RUN_ID, originator_version=run_file.seq + 1,
                     timestamp=at, outcome="succeeded", counts={"DONE": len(definition["jobs"])}),
                make(RunCheckpoint, originator_id=RUN_ID, originator_version=run_file.seq + 2,
                     timestamp=at, reason="run succeeded"),
            ])
            seal_head(run_file, key, at, "bench")
        count = run_file.lines
    finally:
        run_file.close()
    public = folder / "seal.pem.pub"
    public.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return state, public, count, logs


# ---- measurements ----------------------------------------------------------------------------


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], log: Path) -> tuple[float, float]:
    """Wall and CPU (user + sys) seconds of one real process; RuntimeError unless it exits 0.
    CPU time varies less than wall time on a shared machine."""
    with log.open("wb") as out:
        cpu = _children_cpu()
        start = time.perf_counter()
        proc = subprocess.run(command, stdout=out, stderr=subprocess.PIPE, check=False)
        elapsed = time.perf_counter() - start
        cpu = _children_cpu() - cpu
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command[1:4])} exited {proc.returncode}: "
                           f"{proc.stderr.decode(errors='replace')[-2000:]}")
    return elapsed, cpu


def check_outputs(work: Path, lines: int, logs: int) -> None:
    """The timed commands did their job: a clean verdict, complete exports."""
    verdict = orjson.loads((work / "verify.json").read_bytes())
    if verdict["verdict"] != "verified" or verdict["lines"] != lines \
            or verdict["logs_checked"] != logs or verdict["sealed_up_to"] != lines:
        raise RuntimeError(f"unexpected verification: {verdict['findings'][:3]}")
    rows = (work / "export.csv").read_bytes().count(b"\n")
    if rows != lines + 1:
        raise RuntimeError(f"the CSV has {rows} lines for {lines} transitions")
    document = orjson.loads((work / "export.json").read_bytes())
    if document.get("verification", {}).get("verdict") != "verified":
        raise RuntimeError("the JSON export does not carry a clean verification")
    with tarfile.open(work / "export.tar.gz") as bundle:
        members = len(bundle.getmembers())
    if members < logs + 3:
        raise RuntimeError(f"the bundle has only {members} files")


def profile_verify(state: StateDir, public: Path, top: int) -> str:
    """cProfile of one in-process verify_run (with the seal), `top` functions by own time."""
    profiler = cProfile.Profile()
    key = load_public_key(public)
    profiler.runcall(lambda: verify_run(load_evidence(state, RUN_ID), public_key=key))
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


# ---- main ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=100_000, help="lines (transitions)")
    parser.add_argument("--jobs", type=int, default=1000,
                        help="jobs in the pipeline (attempts per job follow from --lines)")
    parser.add_argument("--repeats", "-n", type=int, default=3)
    parser.add_argument("--pt", default=harness.default_pt(), help="the pt executable")
    parser.add_argument("--workdir", type=Path, help="where to write the run [default: temp dir]")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    parser.add_argument("--profile", type=int, metavar="TOP", default=0,
                        help="also print a cProfile of one verify (TOP functions, to stderr)")
    harness.add_report_options(parser)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.jobs < 1 or args.lines < 2 * args.jobs + 3:
        parser.error("need --repeats >= 1, --jobs >= 1, --lines >= 2 * jobs + 3")
    return args


COMMANDS = ("verify", "verify --pubkey", "export json", "export csv", "export bundle")


def run_benchmark(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    print(f"generating {args.lines:,} lines ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    state, public, lines, logs = generate(work, args.lines, args.jobs)
    generated = time.perf_counter() - start
    size = state.run_file(RUN_ID).stat().st_size
    print(f"  {lines:,} lines, {size / 1e6:.0f} MB, {logs:,} logs in {generated:.1f} s",
          file=sys.stderr)

    base = [args.pt, "pipeline"]
    where = ["--state-dir", str(state.root), "--run-id", RUN_ID]
    commands = {
        "verify": ([*base, "verify", *where], work / "verify.txt"),
        "verify --pubkey": ([*base, "verify", *where, "--pubkey", str(public), "--json"],
                            work / "verify.json"),
        "export json": ([*base, "export", *where, "--format", "json", "-o",
                         str(work / "export.json")], work / "export-json.log"),
        "export csv": ([*base, "export", *where, "--format", "csv", "-o",
                        str(work / "export.csv")], work / "export-csv.log"),
        "export bundle": ([*base, "export", *where, "--format", "bundle", "-o",
                           str(work / "export.tar.gz")], work / "export-bundle.log"),
    }
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    cpu: dict[str, list[float]] = {name: [] for name in COMMANDS}
    startup: list[float] = []
    for repeat in range(args.repeats):
        print(f"  repeat {repeat + 1}/{args.repeats} ...", file=sys.stderr, flush=True)
        gc.collect()
        startup.append(timed([args.pt, "--version"], work / "version.log")[0])
        for name, (command, log) in commands.items():
            wall, used = timed(command, log)
            times[name].append(wall)
            cpu[name].append(used)
        check_outputs(work, lines, logs)
    bundle_mb = (work / "export.tar.gz").stat().st_size / 1e6
    if args.profile:
        print(profile_verify(state, public, args.profile), file=sys.stderr)

    med = statistics.median
    return {
        "benchmark": "evidence",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"host": platform.node(), "cpus": os.cpu_count(),
                    "platform": platform.platform(), "python": platform.python_version(),
                    "load_average": os.getloadavg()},
        "repeats": args.repeats,
        "lines": lines,
        "logs": logs,
        "jobs": args.jobs,
        "file_mb": size / 1e6,
        "bundle_mb": bundle_mb,
        "generation_s": generated,
        "pt_version_s": med(startup),
        "seconds": {name: med(values) for name, values in times.items()},
        "lines_per_s": {name: lines / med(values) for name, values in times.items()},
        "cpu_seconds": {name: med(values) for name, values in cpu.items()},
        "times_s": times,
        "cpu_s": cpu,
    }


def render(doc: dict[str, Any]) -> str:
    lines = doc["lines"]
    out = [
        f"verify and export of a {lines:,}-line run ({doc['file_mb']:.0f} MB, {doc['logs']:,} "
        f"logs, {doc['jobs']} jobs), real processes, median of {doc['repeats']} "
        f"({doc['machine']['cpus']} CPUs, Python {doc['machine']['python']}, load average at "
        f"the end {', '.join(f'{x:.2f}' for x in doc['machine']['load_average'])})",
    ]
    out.append(f"  {'command':<30}{'wall':>9}{'lines/s':>12}{'CPU':>9}")
    for name in COMMANDS:
        seconds = doc["seconds"][name]
        note = f"  ({doc['bundle_mb']:.1f} MB)" if name == "export bundle" else ""
        out.append(f"  pt pipeline {name:<18}{seconds:>8.2f}s{lines / seconds:>12,.0f}"
                   f"{doc['cpu_seconds'][name]:>8.2f}s{note}")
    out.append(f"  (pt --version {doc['pt_version_s'] * 1000:.0f} ms)")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    return harness.main("evidence", parse_args(argv), run_benchmark, render, errors=(RuntimeError,))


if __name__ == "__main__":
    sys.exit(main())
