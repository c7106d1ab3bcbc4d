#!/usr/bin/env python3
"""Per-job overhead of `pt pipeline run` beside GNU make, doit, luigi, snakemake and prefect.

The same DAGs of `true` commands as bench_engine.py (lanes 250x4 = 1000 jobs, a 200-job
chain), each written once per tool with the same dependencies, then run by every tool as a real
subprocess, repeats interleaved (tool after tool on the same DAG, so all of them see the same
machine load):

* pt:        `pt pipeline run FILE -q --parallelism 4` (fresh --state-dir every repeat);
* make:      `make -s -j4 all` (every target .PHONY, recipe `true`);
* doit:      `doit -n 4 -P process` on a dodo.py of tasks with `task_dep`s (fresh dep file);
* luigi:     `luigi.build(..., workers=4, local_scheduler=True)`; a task runs `true` and
             writes its marker file, as luigi decides completeness by outputs (fresh folder);
* snakemake: `snakemake --cores 4`, one wildcard rule whose inputs are the markers of the
             job's needs, `touch()` output, `shell: "true"` (fresh folder);
* prefect:   a flow of tasks submitted to a `ThreadPoolTaskRunner(max_workers=4)` with
             `wait_for=` the futures of the job's needs; each task runs `true`. Prefect 3 with
             no PREFECT_API_URL starts its own temporary local API server in each flow process
             (its "ephemeral" mode); PREFECT_HOME is a folder of this benchmark, whose database
             is created by one untimed run before the timed ones.

The Python tools run from a separate virtual environment (`--compare-venv`, default
bench/.venv-compare), so none of them is a dependency of the project:

    python3 -m venv bench/.venv-compare
    bench/.venv-compare/bin/pip install doit luigi snakemake prefect

Each job's command is `true` started through `/bin/sh -c` (pt, doit, luigi, prefect), by
snakemake through bash, and by make directly. As in bench_engine.py, the baseline of each tool
is a 1-job DAG, and

    per-job overhead = (median(DAG) - median(1-job DAG)) / (jobs - 1)

ratio pt/X = pt's per-job overhead / X's on the same DAG (below 1: pt costs less per job).
Slow tools can be given smaller DAGs (`--small TOOL,...` with `--small-lanes`,
`--small-chain`); pt then also runs those DAGs, so every ratio compares the same DAG.

    .venv/bin/python bench/bench_orchestrators.py [--repeats 3] [--tools pt,make,...] [--save]

Timing never goes into the test suite; this is run by hand.
"""

from __future__ import annotations

import argparse
import json
import os
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
from bench_engine import (  # type: ignore[import-not-found]  # the script next to this one
    BenchError,
    Dag,
    ToolRuns,
    chain_dag,
    children_cpu,
    lanes_dag,
    machine,
    makefile,
    pipeline_yaml,
    single_dag,
)

BENCH_DIR = Path(__file__).resolve().parent
TOOLS = ("pt", "make", "doit", "luigi", "snakemake", "prefect")


# ---- the DAG written for each tool -----------------------------------------------------------


def dag_json(dag: Dag) -> str:
    """[[job, [needs...]], ...] in file order (needs always come earlier)."""
    return json.dumps([[job, list(needs)] for job, _, needs in dag.jobs])


def leaves(dag: Dag) -> list[str]:
    """Jobs no other job needs: the targets that pull in the whole DAG."""
    needed = {n for _, _, needs in dag.jobs for n in needs}
    return [job for job, _, _ in dag.jobs if job not in needed]


DODO = """\
import json

DOIT_CONFIG = {"verbosity": 0}
DAG = json.load(open("dag.json"))


def task_job():
    for name, needs in DAG:
        yield {"name": name, "actions": ["true"], "task_dep": [f"job:{n}" for n in needs]}
"""

LUIGI = """\
import json
import subprocess
import sys

import luigi

DAG = dict(json.load(open("dag.json")))
NEEDED = {n for needs in DAG.values() for n in needs}


class Job(luigi.Task):
    job = luigi.Parameter()

    def requires(self):
        return [Job(job=n) for n in DAG[self.job]]

    def output(self):
        return luigi.LocalTarget(f"{sys.argv[1]}/{self.job}")

    def run(self):
        subprocess.run("true", shell=True, check=True)
        with self.output().open("w"):
            pass


ok = luigi.build([Job(job=j) for j in DAG if j not in NEEDED], workers=4,
                 local_scheduler=True, log_level="WARNING")
sys.exit(0 if ok else 1)
"""

SNAKEFILE = """\
import json

NEEDS = dict(json.load(open("dag.json")))
NEEDED = {n for needs in NEEDS.values() for n in needs}
OUT = config["out"]

wildcard_constraints:
    job="[^/]+"

rule all:
    input: [f"{OUT}/{j}" for j in NEEDS if j not in NEEDED]

rule job:
    input: lambda wc: [f"{OUT}/{n}" for n in NEEDS[wc.job]]
    output: touch(OUT + "/{job}")
    shell: "true"
"""

PREFECT = """\
import json
import subprocess

from prefect import flow, task
from prefect.task_runners import ThreadPoolTaskRunner

DAG = json.load(open("dag.json"))


@task(persist_result=False)
def job(name):
    subprocess.run("true", shell=True, check=True)


@flow(task_runner=ThreadPoolTaskRunner(max_workers=4), persist_result=False, log_prints=False)
def dag():
    futures = {}
    for name, needs in DAG:
        futures[name] = job.with_options(name=name).submit(
            name, wait_for=[futures[n] for n in needs])
    for future in futures.values():
        future.result()


dag()
"""


# ---- tools -----------------------------------------------------------------------------------


@dataclass
class Tools:
    """Where the executables are, and the environment the Python tools run in."""

    pt: str
    make: str
    compare_bin: Path
    prefect_home: Path
    parallelism: int

    def python(self) -> str:
        return str(self.compare_bin / "python")

    def env(self, tool: str) -> dict[str, str]:
        """The environment of `tool`: quiet, no telemetry, prefect's home in the work dir."""
        env = {**os.environ, "DO_NOT_TRACK": "1"}
        if tool == "prefect":
            env.update({
                "PREFECT_HOME": str(self.prefect_home),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_LOGGING_LEVEL": "WARNING",
            })
            env.pop("PREFECT_API_URL", None)  # no server configured: prefect's own
        return env


def write_tool_files(folder: Path, dag: Dag) -> None:
    """The DAG once per tool, in `folder`."""
    folder.mkdir(parents=True)
    (folder / "pulsaride-pipeline.yml").write_text(pipeline_yaml(dag))
    (folder / "Makefile").write_text(makefile(dag))
    (folder / "dag.json").write_text(dag_json(dag))
    (folder / "dodo.py").write_text(DODO)
    (folder / "luigi_dag.py").write_text(LUIGI)
    (folder / "Snakefile").write_text(SNAKEFILE)
    (folder / "prefect_dag.py").write_text(PREFECT)


def argv_of(tool: str, tools: Tools, folder: Path, repeat: int) -> list[str]:
    """The command that runs the DAG of `folder` once with `tool` (fresh state for `repeat`)."""
    j = str(tools.parallelism)
    if tool == "pt":
        return [tools.pt, "pipeline", "run", str(folder / "pulsaride-pipeline.yml"), "-q",
                "--parallelism", j, "--run-id", f"bench-{repeat}",
                "--state-dir", str(folder / f"state-{repeat}")]
    if tool == "make":
        return [tools.make, "-s", f"-j{j}", "-f", "Makefile", "all"]
    if tool == "doit":
        return [str(tools.compare_bin / "doit"), "-f", "dodo.py", "--db-file",
                f".doit-{repeat}.db", "-n", j, "-P", "process"]
    if tool == "luigi":
        return [tools.python(), "luigi_dag.py", f"luigi-{repeat}"]
    if tool == "snakemake":
        return [str(tools.compare_bin / "snakemake"), "all", "-s", "Snakefile", "--cores", j,
                "--quiet", "all", "--config", f"out=snake-{repeat}"]
    if tool == "prefect":
        return [tools.python(), "prefect_dag.py"]
    raise ValueError(tool)


def cleanup(tool: str, folder: Path, repeat: int) -> None:
    """Remove what a run left, so the disk footprint stays flat across repeats."""
    for name in (f"state-{repeat}", f"luigi-{repeat}", f"snake-{repeat}", ".snakemake"):
        shutil.rmtree(folder / name, ignore_errors=True)
    for path in folder.glob(f".doit-{repeat}.db*"):
        path.unlink()


def run_file_lines(folder: Path, repeat: int) -> int:
    """Lines of pt's run file for `repeat`."""
    path = folder / f"state-{repeat}" / "pipeline-runs" / f"bench-{repeat}.jsonl"
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def version_of(tool: str, tools: Tools) -> str:
    """The version of `tool`, for the record."""
    if tool == "pt":
        argv = [tools.pt, "--version"]
    elif tool == "make":
        argv = [tools.make, "--version"]
    else:
        code = (f"import importlib.metadata as m; print(m.version({tool!r}))")
        argv = [tools.python(), "-c", code]
    out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    return out.splitlines()[0].strip() if out.strip() else "?"


# ---- cases -----------------------------------------------------------------------------------


@dataclass
class Case:
    """One DAG, written for every tool, and the times of the tools that run it."""

    dag: Dag
    folder: Path
    tools: tuple[str, ...]
    runs: dict[str, ToolRuns] = field(default_factory=dict)
    lines: list[int] = field(default_factory=list)

    def run(self, tool: str, tools: Tools, repeat: int) -> None:
        argv = argv_of(tool, tools, self.folder, repeat)
        log = self.folder / f"{tool}-{repeat}.log"
        try:
            measured = timed_env(argv, self.folder, log, tools.env(tool))
        finally:
            if tool == "pt" and (self.folder / f"state-{repeat}").exists():
                self.lines.append(run_file_lines(self.folder, repeat))
            cleanup(tool, self.folder, repeat)
        self.runs.setdefault(tool, ToolRuns()).add(measured)


def timed_env(argv: list[str], cwd: Path, log: Path, env: dict[str, str]) -> tuple[float, float]:
    """bench_engine.timed, with `env` as the child's environment."""
    with log.open("wb") as out:
        cpu = children_cpu()
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, env=env, check=False)
        elapsed = time.perf_counter() - start
        cpu = children_cpu() - cpu
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise BenchError(f"{' '.join(argv)} exited {proc.returncode} in {cwd}:\n{tail}")
    return elapsed, cpu


def per_job(case: Case, base: Case, tool: str) -> tuple[float, float]:
    """(wall ms/job, CPU ms/job) of `tool` on `case` against its 1-job baseline."""
    jobs = case.dag.size - 1
    runs, single = case.runs[tool], base.runs[tool]
    return ((runs.median - single.median) / jobs * 1000,
            (runs.cpu_median - single.cpu_median) / jobs * 1000)


def case_rows(case: Case, base: Case) -> list[dict[str, Any]]:
    """One row per tool that ran `case`, with its ratio to pt on the same DAG."""
    pt_wall, pt_cpu = per_job(case, base, "pt")
    rows = []
    for tool in case.tools:
        wall, cpu = per_job(case, base, tool)
        rows.append({
            "dag": case.dag.name, "jobs": case.dag.size, "tool": tool,
            "wall_s": case.runs[tool].median, "times_s": case.runs[tool].times,
            "cpu_s": case.runs[tool].cpu_median,
            "per_job_ms": wall, "cpu_per_job_ms": cpu,
            "ratio_pt_to_tool": pt_wall / wall if wall > 0 else None,
            "cpu_ratio_pt_to_tool": pt_cpu / cpu if cpu > 0 else None,
        })
    return rows


# ---- output ----------------------------------------------------------------------------------


def render(doc: dict[str, Any]) -> str:
    """A readable table of `doc`."""
    m = doc["machine"]
    start = ", ".join(f"{x:.2f}" for x in doc["load_average_start"])
    end = ", ".join(f"{x:.2f}" for x in m["load_average"])
    versions = ", ".join(f"{tool} {version}" for tool, version in doc["versions"].items())
    out = [
        f"pt vs other orchestrators, parallelism {doc['parallelism']}, median of "
        f"{doc['repeats']} repeats, real processes, interleaved",
        f"({m['cpus']} CPUs, Python {m['python']}; load average at the start {start}, "
        f"at the end {end})",
        f"versions: {versions}",
        "",
        "1-job DAG (start-up, one job, shutdown): " + ", ".join(
            f"{tool} {single * 1000:.0f} ms" for tool, single in doc["single_s"].items()),
        "",
        f"{'DAG':<14}{'jobs':>6}  {'tool':<10}{'wall':>9}{'ms/job':>9}{'pt/X':>8}"
        f"{'CPU ms/job':>12}{'pt/X CPU':>10}",
    ]
    for row in doc["rows"]:
        ratio = f"{row['ratio_pt_to_tool']:.2f}" if row["ratio_pt_to_tool"] else "n/a"
        cpu_ratio = (f"{row['cpu_ratio_pt_to_tool']:.2f}" if row["cpu_ratio_pt_to_tool"]
                     else "n/a")
        out.append(f"{row['dag']:<14}{row['jobs']:>6}  {row['tool']:<10}{row['wall_s']:>8.2f}s"
                   f"{row['per_job_ms']:>9.2f}{ratio:>8}{row['cpu_per_job_ms']:>12.2f}"
                   f"{cpu_ratio:>10}")
    for name, lines in doc["pt_run_file_lines"].items():
        out.append(f"pt run file of {name}: {lines:.0f} lines")
    out += [
        "",
        "ms/job = (median of the DAG - median of the 1-job DAG) / (jobs - 1); pt/X = pt's",
        "ms/job / X's on the same DAG (below 1: pt costs less per job); CPU = user + sys of",
        "the tool and every process it started and waited for",
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
    parser.add_argument("--tools", default=",".join(TOOLS),
                        help="comma-separated, among " + ", ".join(TOOLS) + " (pt always runs)")
    parser.add_argument("--small", default="",
                        help="comma-separated tools that run the small DAGs instead")
    parser.add_argument("--small-lanes", type=int, default=25)
    parser.add_argument("--small-chain", type=int, default=50)
    parser.add_argument("--pt", default=harness.default_pt(), help="the pt executable")
    parser.add_argument("--make", default=shutil.which("make") or "make")
    parser.add_argument("--compare-venv", type=Path, default=BENCH_DIR / ".venv-compare",
                        help="virtual environment holding doit, luigi, snakemake and prefect")
    parser.add_argument("--workdir", type=Path, help="where to build the DAGs [default: temp]")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    harness.add_report_options(parser)
    args = parser.parse_args(argv)
    args.tools = ["pt", *(t for t in args.tools.split(",") if t and t != "pt")]
    args.small = [t for t in args.small.split(",") if t]
    unknown = set(args.tools + args.small) - set(TOOLS)
    if unknown:
        parser.error(f"unknown tools: {', '.join(sorted(unknown))}")
    if args.repeats < 1 or args.lanes < 1 or args.stages < 2 or args.chain < 2:
        parser.error("need --repeats >= 1, --lanes >= 1, --stages >= 2, --chain >= 2")
    python_tools = set(args.tools) - {"pt", "make"}
    if python_tools and not (args.compare_venv / "bin" / "python").exists():
        parser.error(f"no virtual environment at {args.compare_venv}; create it with\n"
                     f"  python3 -m venv {args.compare_venv} && {args.compare_venv}/bin/pip "
                     "install doit luigi snakemake prefect")
    return args


def build_cases(args: argparse.Namespace, work: Path) -> tuple[Case, list[Case]]:
    """The 1-job baseline (every tool) and the DAGs, each with the tools that run it."""
    big = tuple(t for t in args.tools if t not in args.small)
    small = ("pt", *(t for t in args.tools if t in args.small))
    cases = [Case(lanes_dag(args.lanes, args.stages), work / "lanes", big),
             Case(chain_dag(args.chain), work / "chain", big)]
    if len(small) > 1:
        cases += [Case(lanes_dag(args.small_lanes, args.stages), work / "lanes-small", small),
                  Case(chain_dag(args.small_chain), work / "chain-small", small)]
    base = Case(single_dag(), work / "single", tuple(args.tools))
    for case in (base, *cases):
        write_tool_files(case.folder, case.dag)
    return base, cases


def run_benchmark(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    load_start = os.getloadavg()
    tools = Tools(pt=args.pt, make=args.make, compare_bin=args.compare_venv / "bin",
                  prefect_home=work / "prefect-home", parallelism=args.parallelism)
    base, cases = build_cases(args, work)
    if "prefect" in args.tools:  # create prefect's database before timing anything
        print("  untimed prefect run (creates its database) ...", file=sys.stderr, flush=True)
        base.run("prefect", tools, -1)
        base.runs.clear()
    for repeat in range(args.repeats):
        for case in (base, *cases):
            for tool in case.tools:
                print(f"  repeat {repeat + 1}/{args.repeats}: {case.dag.name}, {tool} ...",
                      file=sys.stderr, flush=True)
                case.run(tool, tools, repeat)
    return {
        "benchmark": "orchestrators",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "load_average_start": load_start,
        "versions": {tool: version_of(tool, tools) for tool in args.tools},
        "repeats": args.repeats,
        "parallelism": args.parallelism,
        "single_s": {tool: base.runs[tool].median for tool in args.tools},
        "rows": [row for case in cases for row in case_rows(case, base)],
        "pt_run_file_lines": {case.dag.name: statistics.median(case.lines) for case in cases},
    }


def main(argv: Sequence[str] | None = None) -> int:
    return harness.main("orchestrators", parse_args(argv), run_benchmark, render,
                        errors=(BenchError,))


if __name__ == "__main__":
    sys.exit(main())
