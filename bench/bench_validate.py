#!/usr/bin/env python3
"""Seconds and rows/s of `pt validate counts`, `sample --sample 0.02` and `hash` on a
1,000,000-row table pair (SQLite source -> PostgreSQL target), each as a real process.

The pair is bench_migrate.py's: the same SQLite source table `items` (`--rows` rows of realistic
columns: integer key, four varchar, numeric(12,2), date, timestamp, a nullable varchar) and the
same target table `pt.items` in a fresh PostgreSQL database, filled by `pt migrate run` (timed
for reference, not a validation figure). Then, median of `--repeats`, interleaved:

  counts   `pt validate counts --table bench_items --json`: two count(*) queries plus pt's
           tables; PASS with source = target = rows.
  sample   `pt validate sample --table bench_items --sample 0.02 --json`: every source row is
           read and transformed to choose the 2% by key hash; those rows are fetched from the
           target by key and compared field by field; PASS with about 2% of the rows sampled.
  hash     `pt validate hash --table bench_items --json` (256 buckets): every row of both
           sides read, canonicalised and hashed; PASS.

and once, after one target value is changed (`--no-fault` leaves it out):

  hash (1 row changed)   the same, plus the drill-down into the one differing bucket; FAIL
                         with exactly that row reported.

Every result is checked (status, counts, the mismatch). Reports wall seconds, rows/s (table
rows / wall), the CPU seconds of the pt process and of the whole machine (the server runs on
it too). `--profile TOP` adds a cProfile of one `validate hash` process (to stderr).

    .venv/bin/python bench/bench_validate.py [--rows 1000000] [--repeats 1] [--json] [--save]
        [--profile TOP] [--no-fault]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import harness  # type: ignore[import-not-found]  # the script next to this one
import psycopg
from bench_migrate import (
    TRANSFORM,
    Target,
    add_database_options,
    build_source,
    database_main,
    measured,
    medians,
    profile_process,
    run_pt,
    server_version,
    write_transform,
)
from harness import say  # type: ignore[import-not-found]

CHECKS = ("counts", "sample", "hash")
FAULT_KEY = 424_242  # the row whose value is changed for the drill-down run


def run_check(command: Sequence[str], log: Path, expect_exit: int) -> dict[str, Any]:
    """Run one `pt validate` process; wall and CPU seconds and its JSON document."""
    proc, result = measured(command, log)
    if proc.returncode != expect_exit:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{' '.join(command[1:4])} exited {proc.returncode}, expected "
                           f"{expect_exit}:\n{proc.stdout.decode()[-2000:]}\n{tail}")
    return {**result, "document": json.loads(proc.stdout)["results"][0]}


def validate_command(pt: str, check: str, work: Path, source: Path,
                     target: Target) -> list[str]:
    extra = {"counts": [], "sample": ["--sample", "0.02"], "hash": []}[check]
    return [pt, "validate", check, "--table", TRANSFORM, *extra, "--transforms", str(work),
            "--source-url", f"sqlite:///{source}", "--target-url", target.url, "--json"]


def check_result(check: str, document: dict[str, Any], rows: int) -> None:
    """The outcome each check must have on the intact pair."""
    if document["status"] != "PASS":
        raise RuntimeError(f"{check}: expected PASS, got {document}")
    if check == "counts" and (document["source_rows"], document["target_rows"]) != (rows, rows):
        raise RuntimeError(f"counts: unexpected {document}")
    if check == "sample" and not 0.015 * rows <= document["sampled_rows"] <= 0.025 * rows + 50:
        raise RuntimeError(f"sample: {document['sampled_rows']} rows sampled, not about 2%")
    if check == "hash" and (document["source_rows"], document["target_rows"]) != (rows, rows):
        raise RuntimeError(f"hash: unexpected {document}")


def plant_fault(target: Target) -> int:
    """Change one target value; the key of the changed row."""
    with psycopg.connect(host=target.host, port=target.port, user=target.user,
                         dbname=target.name, autocommit=True) as db:
        key = db.execute("SELECT id FROM pt.items ORDER BY abs(id - %s) LIMIT 1",
                         (FAULT_KEY,)).fetchone()
        assert key is not None
        db.execute("UPDATE pt.items SET city = city || '!' WHERE id = %s", (key[0],))
    return int(key[0])


def profile_hash(pt_args: list[str], work: Path, top: int) -> str:
    """cProfile of one `pt validate hash` process, TOP functions by own and by total time."""
    return profile_process(pt_args[1:], work / "validate.prof", top, check=False)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", "-n", type=int, default=1,
                        help="timed runs of each check; the median is reported")
    add_database_options(parser, "validate")
    parser.add_argument("--pt", default=harness.default_pt(), help="the pt executable")
    parser.add_argument("--workdir", type=Path, help="where to write files [default: temp dir]")
    parser.add_argument("--keep", action="store_true", help="keep the work dir and database")
    parser.add_argument("--no-fault", action="store_true",
                        help="leave out the hash run with one changed row")
    parser.add_argument("--profile", type=int, metavar="TOP", default=0,
                        help="also print a cProfile of one validate hash process (stderr)")
    harness.add_report_options(parser)
    args = parser.parse_args(argv)
    if args.rows < 100 or args.repeats < 1:
        parser.error("need --rows >= 100 and --repeats >= 1")
    return args


def run_benchmark(args: argparse.Namespace, work: Path, target: Target) -> dict[str, Any]:
    source = work / "source.db"
    say(f"building the SQLite source ({args.rows:,} rows) ...")
    start = time.perf_counter()
    build_source(source, args.rows)
    built = time.perf_counter() - start
    target.create()
    transform = write_transform(work)
    log = work / "tools.log"
    say("filling the target with pt migrate run ...")
    copied = run_pt(args.pt, transform, source, target, batch=None, log=log)
    if copied["summary"]["rows_written"] != args.rows:
        raise RuntimeError(f"migrate: unexpected summary {copied['summary']}")
    say(f"  {copied['wall_s']:.1f} s")
    runs: dict[str, list[dict[str, Any]]] = {check: [] for check in CHECKS}
    for repeat in range(args.repeats):
        say(f"repeat {repeat + 1}/{args.repeats}")
        for check in CHECKS:
            say(f"  validate {check} ...")
            result = run_check(validate_command(args.pt, check, work, source, target), log, 0)
            check_result(check, result["document"], args.rows)
            runs[check].append(result)
            say(f"    {result['wall_s']:.2f} s")
    profile = None
    if args.profile:
        say("profiling one validate hash ...")
        profile = profile_hash(validate_command(args.pt, "hash", work, source, target), work,
                               args.profile)
    if not args.no_fault:
        key = plant_fault(target)
        say(f"  validate hash with row {key} changed ...")
        result = run_check(validate_command(args.pt, "hash", work, source, target), log, 1)
        mismatches = [(m["key"], m["field"], m["kind"]) for m in result["document"]["mismatches"]]
        if mismatches != [([str(key)], "city", "value")]:
            raise RuntimeError(f"hash with one changed row reported {mismatches}")
        say(f"    {result['wall_s']:.2f} s")
        runs["hash (1 row changed)"] = [result]
    figures = {}
    for name, results in runs.items():
        document = results[-1]["document"]
        figures[name] = {
            **medians(results, args.rows),
            "status": document["status"],
            "detail": {k: document[k] for k in ("sampled_rows", "differing_buckets",
                                                "mismatches_total") if document.get(k)},
        }
    return {
        "benchmark": "validate",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"host": platform.node(), "cpus": os.cpu_count(),
                    "platform": platform.platform(), "python": platform.python_version(),
                    "load_average": os.getloadavg(), "postgresql": server_version(target)},
        "rows": args.rows, "repeats": args.repeats,
        "source_mb": source.stat().st_size / 1e6, "build_s": built,
        "migrate": {"wall_s": copied["wall_s"], "rows_per_s": args.rows / copied["wall_s"]},
        "checks": figures, "profile": profile,
    }


def render(doc: dict[str, Any]) -> str:
    machine = doc["machine"]
    lines = [
        f"pt validate on {doc['rows']:,} rows, SQLite ({doc['source_mb']:.0f} MB) -> "
        f"PostgreSQL {machine['postgresql']}, real processes, median of {doc['repeats']} "
        f"({machine['cpus']} CPUs, Python {machine['python']}, load average at the end "
        f"{', '.join(f'{x:.2f}' for x in machine['load_average'])})",
        f"(the copy, pt migrate run: {doc['migrate']['wall_s']:.1f} s, "
        f"{doc['migrate']['rows_per_s']:,.0f} rows/s)",
        "",
        "  {:<24}{:>9}{:>12}{:>10}{:>9}  {}".format("check", "wall", "rows/s", "pt CPU",
                                                  "all CPU", "result"),
    ]
    for name, figure in doc["checks"].items():
        detail = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in figure["detail"].items())
        lines.append(f"  {name:<24}{figure['wall_s']:>8.2f}s{figure['rows_per_s']:>12,.0f}"
                     f"{figure['cpu_s']:>9.1f}s{figure['machine_cpu_s']:>8.1f}s  "
                     f"{figure['status']}{f' ({detail})' if detail else ''}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    return database_main("validate", parse_args(argv), run_benchmark, render)


if __name__ == "__main__":
    sys.exit(main())
