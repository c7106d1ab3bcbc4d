#!/usr/bin/env python3
"""Per-job overhead of `pt pipeline run` beside GNU make on the same DAG of `true` commands.

Two DAGs, each run by both tools as real subprocesses, repeats interleaved:

* lanes: 4 stages x 250 lanes = 1000 jobs; job lane-I-S (stage S) needs lane-I-(S-1);
* chain: 200 jobs in one stage, each needing the previous one.

`pt pipeline run FILE -q --parallelism 4` (fresh state dir every repeat) and `make -j4` (every
target .PHONY, recipe `true`) are timed wall-clock; the median of N repeats is kept. The
baseline of each tool is the same measurement on a 1-job DAG (interpreter start, imports,
loading, one job, summary for pt; start and one recipe for make), so

    per-job overhead = (median(DAG) - median(1-job DAG)) / (jobs - 1)

Also reported: `pt --version` and `make -n` on an empty Makefile (bare start-up), and events
written per second (lines of the run file / wall time of the run).

    .venv/bin/python bench/bench_engine.py [--repeats 3] [--json] [--save]

Timing never goes into the test suite; this is run by hand.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import harness  # type: ignore[import-not-found]  # the script next to this one

# ---- the DAGs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dag:
    """Jobs with their stage and needs, in file order."""

    name: str
    stages: tuple[str, ...]
    jobs: tuple[tuple[str, str, tuple[str, ...]], ...]  # (job, stage, needs)

    @property
    def size(self) -> int:
        return len(self.jobs)


def lanes_dag(lanes: int, stages: int) -> Dag:
    """`lanes` chains of `stages` jobs, one job per stage (lane-I-S needs lane-I-(S-1))."""
    names = tuple(f"s{s}" for s in range(1, stages + 1))
    jobs = []
    for s in range(1, stages + 1):
        for i in range(1, lanes + 1):
            needs = (f"lane-{i}-{s - 1}",) if s > 1 else ()
            jobs.append((f"lane-{i}-{s}", f"s{s}", needs))
    return Dag(f"lanes {lanes}x{stages}", names, tuple(jobs))


def chain_dag(length: int) -> Dag:
    """`length` jobs in one stage, each needing the previous one."""
    jobs = [(f"c{i}", "chain", (f"c{i - 1}",) if i > 1 else ()) for i in range(1, length + 1)]
    return Dag(f"chain {length}", ("chain",), tuple(jobs))


def single_dag() -> Dag:
    """One job: the baseline of a tool (start-up, loading, one job, shutdown)."""
    return Dag("single", ("only",), (("j1", "only", ()),))


def pipeline_yaml(dag: Dag) -> str:
    """The pipeline file of `dag` (flow-style YAML, one line per job)."""
    lines = ['version: "1.0"', f"stages: [{', '.join(dag.stages)}]", "jobs:"]
    for job, stage, needs in dag.jobs:
        need = f", needs: [{', '.join(needs)}]" if needs else ""
        lines.append(f'  {job}: {{stage: {stage}, command: "true"{need}}}')
    return "\n".join(lines) + "\n"


def makefile(dag: Dag) -> str:
    """A Makefile with the same dependencies; every target .PHONY, recipe `true`."""
    needed = {n for _, _, needs in dag.jobs for n in needs}
    leaves = [job for job, _, _ in dag.jobs if job not in needed]
    lines = [f"all: {' '.join(leaves)}", ""]
    for job, _, needs in dag.jobs:
        lines += [f"{job}: {' '.join(needs)}".rstrip(), "\ttrue", ""]
    lines.append(f".PHONY: all {' '.join(job for job, _, _ in dag.jobs)}")
    return "\n".join(lines) + "\n"


# ---- running ---------------------------------------------------------------------------------


class BenchError(RuntimeError):
    """A tool failed during the benchmark."""


def children_cpu() -> float:
    """CPU seconds (user + system) of every child process waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: Sequence[str], cwd: Path, log: Path) -> tuple[float, float]:
    """Run `argv` with output to `log`; (wall seconds, CPU seconds of it and its children)."""
    with log.open("wb") as out:
        cpu = children_cpu()
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, check=False)
        elapsed = time.perf_counter() - start
        cpu = children_cpu() - cpu
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise BenchError(f"{' '.join(argv)} exited {proc.returncode} in {cwd}:\n{tail}")
    return elapsed, cpu


@dataclass
class ToolRuns:
    """Wall and CPU times of one tool on one DAG."""

    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)

    def add(self, measured: tuple[float, float]) -> None:
        self.times.append(measured[0])
        self.cpu.append(measured[1])


@dataclass
class Case:
    """One DAG prepared for both tools."""

    dag: Dag
    folder: Path
    pt: ToolRuns = field(default_factory=ToolRuns)
    make: ToolRuns = field(default_factory=ToolRuns)
    run_lines: list[int] = field(default_factory=list)

    @property
    def pipeline(self) -> Path:
        return self.folder / "pulsaride-pipeline.yml"

    def prepare(self) -> None:
        self.folder.mkdir(parents=True)
        self.pipeline.write_text(pipeline_yaml(self.dag))
        (self.folder / "Makefile").write_text(makefile(self.dag))

    def run_pt(self, pt: str, parallelism: int, repeat: int) -> None:
        state = self.folder / f"state-{repeat}"
        run_id = f"bench-{repeat}"
        argv = [pt, "pipeline", "run", str(self.pipeline), "-q",
                "--parallelism", str(parallelism), "--run-id", run_id, "--state-dir", str(state)]
        self.pt.add(timed(argv, self.folder, self.folder / f"pt-{repeat}.log"))
        run_file = state / "pipeline-runs" / f"{run_id}.jsonl"
        with run_file.open("rb") as handle:
            self.run_lines.append(sum(1 for _ in handle))
        shutil.rmtree(state)  # keep the disk footprint flat across repeats

    def run_make(self, make: str, parallelism: int, repeat: int) -> None:
        argv = [make, "-s", f"-j{parallelism}", "-f", "Makefile", "all"]
        self.make.add(timed(argv, self.folder, self.folder / f"make-{repeat}.log"))


def startup_times(pt: str, make: str, folder: Path, repeats: int) -> dict[str, float]:
    """Median bare start-up: `pt --version`, `make -n` on an empty Makefile."""
    folder.mkdir(parents=True)
    (folder / "Makefile").write_text("all:\n.PHONY: all\n")
    pt_times, make_times = [], []
    for _ in range(repeats):
        pt_times.append(timed([pt, "--version"], folder, folder / "pt.log")[0])
        make_times.append(timed([make, "-n", "-s"], folder, folder / "make.log")[0])
    return {"pt_version_s": statistics.median(pt_times),
            "make_n_empty_s": statistics.median(make_times)}


# ---- results ---------------------------------------------------------------------------------


def case_result(case: Case, baseline: Case) -> dict[str, Any]:
    """The figures of one DAG against the 1-job baseline."""
    jobs = case.dag.size
    pt_job = (case.pt.median - baseline.pt.median) / (jobs - 1)
    make_job = (case.make.median - baseline.make.median) / (jobs - 1)
    pt_cpu = (case.pt.cpu_median - baseline.pt.cpu_median) / (jobs - 1)
    make_cpu = (case.make.cpu_median - baseline.make.cpu_median) / (jobs - 1)
    lines = statistics.median(case.run_lines)
    return {
        "dag": case.dag.name,
        "jobs": jobs,
        "pt_wall_s": case.pt.median,
        "make_wall_s": case.make.median,
        "pt_times_s": case.pt.times,
        "make_times_s": case.make.times,
        "pt_per_job_ms": pt_job * 1000,
        "make_per_job_ms": make_job * 1000,
        "ratio_pt_make": pt_job / make_job if make_job > 0 else None,
        "pt_cpu_s": case.pt.cpu_median,
        "make_cpu_s": case.make.cpu_median,
        "pt_cpu_per_job_ms": pt_cpu * 1000,
        "make_cpu_per_job_ms": make_cpu * 1000,
        "run_file_lines": lines,
        "events_per_s": lines / case.pt.median,
    }


def machine() -> dict[str, Any]:
    """Where the figures come from."""
    make_version = subprocess.run(["make", "--version"], capture_output=True, text=True,
                                  check=False).stdout.splitlines()
    return {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "make": make_version[0] if make_version else "?",
        "load_average": os.getloadavg(),
    }


def render(doc: dict[str, Any]) -> str:
    """A readable table of `doc`."""
    base = doc["baseline"]
    load = ", ".join(f"{x:.2f}" for x in doc["machine"]["load_average"])
    out = [
        f"pt vs GNU make, parallelism {doc['parallelism']}, median of {doc['repeats']} "
        f"repeats ({doc['machine']['cpus']} CPUs, {doc['machine']['make']}, "
        f"load average at the end {load})",
        f"start-up: pt --version {base['pt_version_s'] * 1000:.0f} ms, "
        f"make -n (empty) {base['make_n_empty_s'] * 1000:.1f} ms; "
        f"1-job DAG: pt {base['pt_single_s'] * 1000:.0f} ms, "
        f"make {base['make_single_s'] * 1000:.1f} ms",
        "",
        f"{'':<22}{' wall ':-^48}{' CPU ms/job ':-^25}",
        f"{'DAG':<16}{'jobs':>6}{'pt':>8}{'make':>8}{'pt ms/job':>11}{'make ms/job':>12}"
        f"{'pt/make':>9}{'pt':>8}{'make':>8}{'pt/make':>9}{'lines':>7}{'events/s':>10}",
    ]
    for row in doc["cases"]:
        ratio = f"{row['ratio_pt_make']:.1f}x" if row["ratio_pt_make"] else "n/a"
        cpu_ratio = (f"{row['pt_cpu_per_job_ms'] / row['make_cpu_per_job_ms']:.1f}x"
                     if row["make_cpu_per_job_ms"] > 0 else "n/a")
        out.append(
            f"{row['dag']:<16}{row['jobs']:>6}{row['pt_wall_s']:>7.2f}s"
            f"{row['make_wall_s']:>7.2f}s{row['pt_per_job_ms']:>11.2f}"
            f"{row['make_per_job_ms']:>12.2f}{ratio:>9}{row['pt_cpu_per_job_ms']:>8.2f}"
            f"{row['make_cpu_per_job_ms']:>8.2f}{cpu_ratio:>9}{row['run_file_lines']:>7.0f}"
            f"{row['events_per_s']:>10.0f}")
    out += [
        "",
        "ms/job = (median of the DAG - median of the 1-job DAG) / (jobs - 1); CPU = user + sys",
        "of the tool and every process it started; events/s = run-file lines / pt wall time",
    ]
    return "\n".join(out)


# ---- main ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", "-n", type=int, default=3, help="runs per tool and DAG")
    parser.add_argument("--parallelism", "-j", type=int, default=4)
    parser.add_argument("--lanes", type=int, default=250)
    parser.add_argument("--stages", type=int, default=4)
    parser.add_argument("--chain", type=int, default=200, help="length of the chain DAG")
    parser.add_argument("--pt", default=harness.default_pt(), help="the pt executable")
    parser.add_argument("--make", default=shutil.which("make") or "make")
    parser.add_argument("--workdir", type=Path,
                        help="where to build the DAGs [default: temp dir]")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    harness.add_report_options(parser)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.lanes < 1 or args.stages < 2 or args.chain < 2:
        parser.error("need --repeats >= 1, --lanes >= 1, --stages >= 2, --chain >= 2")
    return args


def run_benchmark(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    baseline = Case(single_dag(), work / "single")
    cases = [Case(lanes_dag(args.lanes, args.stages), work / "lanes"),
             Case(chain_dag(args.chain), work / "chain")]
    for case in (baseline, *cases):
        case.prepare()
    startup = startup_times(args.pt, args.make, work / "startup", max(args.repeats, 5))
    for repeat in range(args.repeats):
        for case in (baseline, *cases):
            print(f"  repeat {repeat + 1}/{args.repeats}: {case.dag.name} ...",
                  file=sys.stderr, flush=True)
            case.run_pt(args.pt, args.parallelism, repeat)
            case.run_make(args.make, args.parallelism, repeat)
    return {
        "benchmark": "engine",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "repeats": args.repeats,
        "parallelism": args.parallelism,
        "baseline": {**startup, "pt_single_s": baseline.pt.median,
                     "make_single_s": baseline.make.median,
                     "pt_single_times_s": baseline.pt.times},
        "cases": [case_result(case, baseline) for case in cases],
    }


def main(argv: Sequence[str] | None = None) -> int:
    return harness.main("engine", parse_args(argv), run_benchmark, render, errors=(BenchError,))


if __name__ == "__main__":
    sys.exit(main())
