#!/usr/bin/env python3
"""Rows/s of `pt migrate run` (SQLite -> PostgreSQL) against `psql \\copy` and pgloader.

Builds (not timed) a SQLite source table `items` of `--rows` rows (default 1,000,000) with
realistic columns: an integer key, four varchar, a numeric(12,2), a date, a timestamp and a
nullable varchar with commas and quotes. Creates a fresh PostgreSQL database holding three
identical empty target tables `items` (same DDL, primary key on id), one per tool, in the
schemas `pt`, `copy` and `pgl`. Then, side by side, each as a real subprocess:

  (a) `pt migrate run items.yaml --json` with a transform file of identity fields, at the
      default batch size and at each extra `--batch-size`; the run writes rows with COPY, one
      transaction per batch with its registry checkpoint;
  (b) the floor: the same rows exported to CSV (not timed), then
      `psql -c "\\copy copy.items FROM 'items.csv' CSV"`, one COPY in one transaction;
  (c) pgloader (Debian package `pgloader`) from the same SQLite file, with a command file
      that loads into the existing table (`data only, create no tables`). When pgloader is
      not installed the report says so and the other tools still run.

Before every timed run its target is truncated (pt's registry row deleted) and the server
checkpointed. Every target must end with exactly `--rows` rows and the same content
fingerprint (count, nulls, sum of amounts, an order-independent sum of row hashes) as the
\\copy target. It reports wall seconds, rows/s, the CPU seconds of the tool's processes and
of the whole machine (the server runs on it too), and the ratios pt/\\copy and pt/pgloader.

    .venv/bin/python bench/bench_migrate.py [--rows 1000000] [--repeats 1] [--batch-size N]
        [--json] [--save] [--profile TOP]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import platform
import pstats
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import harness  # type: ignore[import-not-found]  # the script next to this one
import psycopg
from harness import say  # type: ignore[import-not-found]

TRANSFORM = "bench_items"
SCHEMAS = {"pt": "pt", "copy": "copy", "pgloader": "pgl"}
PGLOADER_MISSING = ("pgloader is not installed (Debian package: apt-get install pgloader), "
                    "so its column is left out")

TARGET_DDL = """
CREATE TABLE {schema}.items (
    id          bigint PRIMARY KEY,
    code        varchar(20)  NOT NULL,
    customer    varchar(100) NOT NULL,
    email       varchar(200) NOT NULL,
    city        varchar(60)  NOT NULL,
    amount      numeric(12,2) NOT NULL,
    order_date  date NOT NULL,
    created_at  timestamp NOT NULL,
    note        varchar(200)
)"""

SOURCE_DDL = """
CREATE TABLE items (
    id          INTEGER PRIMARY KEY,
    code        VARCHAR(20)  NOT NULL,
    customer    VARCHAR(100) NOT NULL,
    email       VARCHAR(200) NOT NULL,
    city        VARCHAR(60)  NOT NULL,
    amount      NUMERIC(12,2) NOT NULL,
    order_date  DATE NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    note        VARCHAR(200)
)"""

COLUMNS = ("id", "code", "customer", "email", "city", "amount", "order_date", "created_at",
           "note")

FIRST = ("Anna", "Bruno", "Chloé", "David", "Elif", "François", "Grace", "Hiroshi", "Ines",
         "Jonas", "Karin", "Luis", "Maja", "Nils", "Olga", "Pavel", "Quentin", "Rosa",
         "Søren", "Tomasz", "Ute", "Victor", "Wen", "Yusuf", "Zoë")
LAST = ("Andersen", "Bauer", "Costa", "Dubois", "Eriksen", "Fischer", "García", "Horvat",
        "Ivanova", "Jansen", "Kowalski", "Lefèvre", "Müller", "Novak", "O'Brien", "Petrov",
        "Rossi", "Schmidt", "Tanaka", "Urbano", "Virtanen", "Weber", "Yilmaz", "Zhang")
CITIES = ("Amsterdam", "Barcelona", "Berlin", "Bordeaux", "Bruxelles", "Dublin", "Genève",
          "Göteborg", "Kraków", "Lisboa", "Ljubljana", "London", "Lyon", "Madrid", "Milano",
          "München", "Nantes", "Oslo", "Paris", "Praha", "Rotterdam", "São Paulo", "Tallinn",
          "Torino", "Wien", "Zürich")
NOTES = ("leave at the door", "call before delivery, ask for \"Sam\"", "gift wrap",
         "fragile: glass, handle with care", "deliver after 18:00", "second floor, no lift",
         "invoice to head office; ref. PO-7731", "repeat order")


# ---- the source ------------------------------------------------------------------------------


def source_rows(count: int, seed: int = 20261126) -> Iterator[tuple[Any, ...]]:
    """Deterministic rows; values as an application would store them in SQLite."""
    rng = random.Random(seed)
    first_day = date(2019, 1, 1)
    first_moment = datetime(2019, 1, 1, 8, 0, 0)
    for key in range(1, count + 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        cents = rng.randrange(100, 10_000_000)
        day = first_day + timedelta(days=rng.randrange(0, 2500))
        moment = first_moment + timedelta(seconds=rng.randrange(0, 2500 * 86400))
        note = rng.choice(NOTES) if rng.random() < 0.6 else None
        yield (key, f"ORD-{key:09d}", f"{first} {last}",
               f"{first}.{last}{key % 997}@example.com".lower().replace("'", ""),
               rng.choice(CITIES), f"{cents // 100}.{cents % 100:02d}", day.isoformat(),
               moment.strftime("%Y-%m-%d %H:%M:%S"), note)


def build_source(path: Path, count: int) -> None:
    """The SQLite source file with table `items` of `count` rows."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.execute(SOURCE_DDL)
        db.executemany(f"INSERT INTO items VALUES ({', '.join('?' * len(COLUMNS))})",
                       source_rows(count))
        db.commit()


def export_csv(source: Path, target: Path) -> None:
    """The source rows as CSV, in key order (NULL as an unquoted empty field)."""
    with contextlib.closing(sqlite3.connect(source)) as db, \
            target.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        cursor = db.execute(f"SELECT {', '.join(COLUMNS)} FROM items ORDER BY id")
        while rows := cursor.fetchmany(10_000):
            writer.writerows(rows)


# ---- the target ------------------------------------------------------------------------------


class Target:
    """The fresh benchmark database: one schema and table `items` per tool."""

    def __init__(self, host: str, port: int, user: str, name: str) -> None:
        self.host, self.port, self.user, self.name = host, port, user, name

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.name}"

    def _connect(self, dbname: str) -> psycopg.Connection[Any]:
        return psycopg.connect(host=self.host, port=self.port, user=self.user, dbname=dbname,
                               autocommit=True)

    def create(self) -> None:
        with self._connect("postgres") as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.name}"')
            admin.execute(f'CREATE DATABASE "{self.name}"')
        with self._connect(self.name) as db:
            for schema in SCHEMAS.values():
                db.execute(f"CREATE SCHEMA {schema}")
                db.execute(TARGET_DDL.format(schema=schema))

    def drop(self) -> None:
        with self._connect("postgres") as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def reset(self, tool: str) -> None:
        """Empty the tool's target (and pt's registry row), then checkpoint the server."""
        with self._connect(self.name) as db:
            db.execute(f"TRUNCATE {SCHEMAS[tool]}.items")
            if tool == "pt":
                exists = db.execute("SELECT to_regclass('pulsaride_run_registry')").fetchone()
                if exists and exists[0] is not None:
                    db.execute("DELETE FROM pulsaride_run_registry WHERE transform = %s",
                               (TRANSFORM,))
                    db.execute("TRUNCATE pulsaride_deferred, pulsaride_dlq")
            db.execute("VACUUM ANALYZE")
            db.execute("CHECKPOINT")

    def fingerprint(self, tool: str) -> dict[str, Any]:
        """Row count and an order-independent digest of the content of the tool's table."""
        with self._connect(self.name) as db:
            row = db.execute(
                f"SELECT count(*), count(note), sum(amount)::text, min(order_date)::text, "
                f"max(created_at)::text, sum(hashtext(t::text)::bigint)::text "
                f"FROM {SCHEMAS[tool]}.items t").fetchone()
        assert row is not None
        return dict(zip(("rows", "notes", "sum_amount", "min_date", "max_created",
                         "row_hash_sum"), row, strict=True))


# ---- the tools -------------------------------------------------------------------------------


def cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_machine() -> float:
    """CPU seconds the whole machine has been busy (from /proc/stat), or 0 if unknown."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0
    busy = sum(int(v) for i, v in enumerate(fields[:8]) if i not in (3, 4))  # not idle, iowait
    return busy / os.sysconf("SC_CLK_TCK")


def measured(command: Sequence[str], log: Path, env: dict[str, str] | None = None) -> tuple[
        subprocess.CompletedProcess[bytes], dict[str, float]]:
    """Run `command`, its stderr appended to `log` after a `$ command` line; the process (with
    its stdout) and its wall seconds, its CPU seconds and the machine's."""
    cpu0, machine0 = cpu_children(), cpu_machine()
    with log.open("ab") as err:
        err.write(f"$ {' '.join(command)}\n".encode())
        err.flush()
        start = time.perf_counter()
        proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=err, env=env,
                              check=False)
        wall = time.perf_counter() - start
    return proc, {"wall_s": wall, "cpu_s": cpu_children() - cpu0,
                  "machine_cpu_s": cpu_machine() - machine0}


def timed(command: Sequence[str], log: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `command`; wall seconds, its CPU seconds, the machine's, and its stdout."""
    proc, result = measured(command, log, env)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{command[0]} exited {proc.returncode}:\n{tail}")
    with log.open("ab") as err:
        err.write(proc.stdout)
    return {**result, "stdout": proc.stdout.decode()}


def write_transform(folder: Path) -> Path:
    """The transform file: every column an identity field, into pt.items."""
    path = folder / "items.yaml"
    fields = "\n".join(f"  - {{name: {c}, source: s.{c}}}" for c in COLUMNS)
    path.write_text(f"""name: {TRANSFORM}
version: "1.0"
sources:
  - {{name: items, table: items, alias: s}}
fields:
{fields}
target_table: pt.items
""")
    return path


def run_pt(pt: str, transform: Path, source: Path, target: Target, *, batch: int | None,
           log: Path) -> dict[str, Any]:
    command = [pt, "migrate", "run", str(transform), "--source-url", f"sqlite:///{source}",
               "--target-url", target.url, "--json"]
    if batch is not None:
        command += ["--batch-size", str(batch)]
    result = timed(command, log)
    summary = json.loads(result.pop("stdout").strip().splitlines()[-1])
    result["summary"] = summary
    return result


def run_copy(psql: str, csv_path: Path, target: Target, log: Path) -> dict[str, Any]:
    command = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", target.host, "-p",
               str(target.port), "-U", target.user, "-d", target.name, "-c",
               f"\\copy {SCHEMAS['copy']}.items ({', '.join(COLUMNS)}) FROM '{csv_path}' CSV"]
    result = timed(command, log)
    result.pop("stdout")
    return result


def write_pgloader_command(folder: Path, source: Path, target: Target) -> Path:
    """A pgloader command file that loads `items` into the existing pgl.items."""
    path = folder / "items.load"
    path.write_text(f"""LOAD DATABASE
     FROM sqlite://{source}
     INTO {target.url}

 WITH data only, create no tables, create no indexes, include no drop, no truncate,
      reset no sequences

 SET search_path TO '{SCHEMAS['pgloader']}'

 INCLUDING ONLY TABLE NAMES LIKE 'items';
""")
    return path


def run_pgloader(pgloader: str, command_file: Path, work: Path, log: Path) -> dict[str, Any]:
    command = [pgloader, "--no-ssl-cert-verification", "--root-dir", str(work / "pgloader"),
               "--log-min-messages", "warning", "--client-min-messages", "warning",
               str(command_file)]
    result = timed(command, log)
    output = result.pop("stdout")
    if "error" in output.lower() and "errors" not in output.lower():
        raise RuntimeError(f"pgloader reported an error:\n{output[-3000:]}")
    return result


def pgloader_version(pgloader: str) -> str:
    out = subprocess.run([pgloader, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else "unknown"


def profile_pt(transform: Path, source: Path, target: Target, *, work: Path,
               top: int) -> str:
    """cProfile of one `pt migrate run` (run as `python -m cProfile`), TOP by own time."""
    target.reset("pt")
    return profile_process(["migrate", "run", str(transform), "--source-url",
                            f"sqlite:///{source}", "--target-url", target.url, "--json"],
                           work / "pt.prof", top, check=True)


def profile_process(pt_args: Sequence[str], out_file: Path, top: int, *, check: bool) -> str:
    """cProfile of one pt process with these arguments (`python -m cProfile -o OUT_FILE -m
    pulsaride.cli PT_ARGS`), TOP functions by own and by total time."""
    command = [sys.executable, "-m", "cProfile", "-o", str(out_file), "-m", "pulsaride.cli",
               *pt_args]
    subprocess.run(command, check=check, capture_output=True)
    text = io.StringIO()
    stats = pstats.Stats(str(out_file), stream=text)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return text.getvalue()


# ---- main ------------------------------------------------------------------------------------


def add_database_options(parser: argparse.ArgumentParser, name: str) -> None:
    """--host, --port, --user and --database: the server and the fresh database that
    database_main creates (default pt_bench_NAME_<pid>) and drops."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5432)
    parser.add_argument("--user", default="postgres")
    parser.add_argument("--database", help="name of the fresh database to create and drop "
                                           f"[default: pt_bench_{name}_<pid>]")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", "-n", type=int, default=1,
                        help="timed runs of each tool; the median is reported")
    parser.add_argument("--batch-size", type=int, action="append", default=[], metavar="N",
                        help="also run pt with --batch-size N (repeatable); pt always runs at "
                             "its default batch size too")
    add_database_options(parser, "migrate")
    parser.add_argument("--pt", default=harness.default_pt(), help="the pt executable")
    parser.add_argument("--psql", default=shutil.which("psql") or "psql")
    parser.add_argument("--pgloader", default=shutil.which("pgloader"),
                        help="the pgloader executable [default: from PATH; skipped if absent]")
    parser.add_argument("--workdir", type=Path, help="where to write files [default: temp dir]")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work dir and the database")
    parser.add_argument("--profile", type=int, metavar="TOP", default=0,
                        help="also print a cProfile of one pt run (TOP functions, to stderr)")
    harness.add_report_options(parser)
    args = parser.parse_args(argv)
    if args.rows < 1 or args.repeats < 1 or any(b < 1 for b in args.batch_size):
        parser.error("need --rows >= 1, --repeats >= 1 and --batch-size >= 1")
    return args


@dataclass
class Setup:
    """The files the tools read."""

    source: Path
    csv: Path
    transform: Path
    pgloader_file: Path
    pgloader: str | None
    log: Path
    built_s: float


def prepare(args: argparse.Namespace, work: Path, target: Target) -> Setup:
    """Build the source, the CSV, the transform and pgloader files; create the database."""
    source = work / "source.db"
    say(f"building the SQLite source ({args.rows:,} rows) ...")
    start = time.perf_counter()
    build_source(source, args.rows)
    built = time.perf_counter() - start
    csv_path = work / "items.csv"
    export_csv(source, csv_path)
    say(f"  {source.stat().st_size / 1e6:.0f} MB in {built:.1f} s; CSV "
        f"{csv_path.stat().st_size / 1e6:.0f} MB")
    target.create()
    pgloader = args.pgloader if args.pgloader and Path(args.pgloader).exists() else None
    if pgloader is None:
        say(f"NOTE: {PGLOADER_MISSING}")
    return Setup(source=source, csv=csv_path, transform=write_transform(work),
                 pgloader_file=write_pgloader_command(work, source, target),
                 pgloader=pgloader, log=work / "tools.log", built_s=built)


def measure(args: argparse.Namespace, setup: Setup, target: Target, work: Path) -> tuple[
        dict[str, list[dict[str, Any]]], dict[str, Any]]:
    """Every tool's timed runs (interleaved per repeat) and the common content fingerprint."""
    variants: list[tuple[str, str, int | None]] = [("copy", "copy", None)]  # label, tool, batch
    if setup.pgloader:
        variants.append(("pgloader", "pgloader", None))
    variants += [(pt_label(b), "pt", b) for b in [None, *dict.fromkeys(args.batch_size)]]
    tools: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in variants}
    fingerprints: dict[str, dict[str, Any]] = {}
    for repeat in range(args.repeats):
        say(f"repeat {repeat + 1}/{args.repeats}")
        for label, kind, batch in variants:
            target.reset(kind)
            say(f"  {label} ...")
            if kind == "copy":
                result = run_copy(args.psql, setup.csv, target, setup.log)
            elif kind == "pgloader":
                assert setup.pgloader is not None
                result = run_pgloader(setup.pgloader, setup.pgloader_file, work, setup.log)
            else:
                result = run_pt(args.pt, setup.transform, setup.source, target, batch=batch,
                                log=setup.log)
                summary = result["summary"]
                if summary["rows_written"] != args.rows or summary["status"] != "done":
                    raise RuntimeError(f"{label}: unexpected summary {summary}")
            fingerprints[label] = target.fingerprint(kind)
            if fingerprints[label]["rows"] != args.rows:
                raise RuntimeError(f"{label}: the target has {fingerprints[label]['rows']:,} "
                                   f"rows, not {args.rows:,}")
            result["rows_per_s"] = args.rows / result["wall_s"]
            tools[label].append(result)
            say(f"    {result['wall_s']:.2f} s, {result['rows_per_s']:,.0f} rows/s")
    floor = fingerprints["copy"]
    mismatches = {name: fp for name, fp in fingerprints.items() if fp != floor}
    if mismatches:
        raise RuntimeError(f"targets differ from the \\copy target {floor}: {mismatches}")
    return tools, floor


def run_benchmark(args: argparse.Namespace, work: Path, target: Target) -> dict[str, Any]:
    setup = prepare(args, work, target)
    tools, fingerprint = measure(args, setup, target, work)
    profile = None
    if args.profile:
        say("profiling one pt run ...")
        profile = profile_pt(setup.transform, setup.source, target, work=work,
                             top=args.profile)
    figures: dict[str, Any] = {}
    for name, results in tools.items():
        figures[name] = medians(results, args.rows)
        if name.startswith("pt"):
            figures[name]["summary"] = results[-1]["summary"]
    ratios = {}
    for name in (n for n in figures if n.startswith("pt")):
        ratios[name] = {"pt/copy": figures[name]["wall_s"] / figures["copy"]["wall_s"]}
        if "pgloader" in figures:
            ratios[name]["pt/pgloader"] = figures[name]["wall_s"] / figures["pgloader"]["wall_s"]
    return {
        "benchmark": "migrate",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"host": platform.node(), "cpus": os.cpu_count(),
                    "platform": platform.platform(), "python": platform.python_version(),
                    "load_average": os.getloadavg(), "postgresql": server_version(target),
                    "pgloader": pgloader_version(setup.pgloader) if setup.pgloader else None},
        "rows": args.rows,
        "repeats": args.repeats,
        "source_mb": setup.source.stat().st_size / 1e6,
        "csv_mb": setup.csv.stat().st_size / 1e6,
        "build_s": setup.built_s,
        "pgloader_note": None if setup.pgloader else PGLOADER_MISSING,
        "fingerprint": fingerprint,
        "tools": figures,
        "ratios": ratios,
        "profile": profile,
    }


def medians(results: list[dict[str, Any]], rows: int) -> dict[str, Any]:
    """The median wall seconds, rows/s, CPU seconds of the tool and of the machine, of timed
    runs (as `measured` returns them); and every run's wall seconds."""
    med = statistics.median
    wall = med(r["wall_s"] for r in results)
    return {"wall_s": wall, "rows_per_s": rows / wall,
            "cpu_s": med(r["cpu_s"] for r in results),
            "machine_cpu_s": med(r["machine_cpu_s"] for r in results),
            "times_s": [r["wall_s"] for r in results]}


def pt_label(batch: int | None) -> str:
    return "pt" if batch is None else f"pt --batch-size {batch}"


def server_version(target: Target) -> str:
    with psycopg.connect(host=target.host, port=target.port, user=target.user,
                         dbname="postgres") as db:
        row = db.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "unknown"


def render(doc: dict[str, Any]) -> str:
    rows = doc["rows"]
    machine = doc["machine"]
    lines = [
        f"{rows:,} rows SQLite -> PostgreSQL {machine['postgresql']}, median of "
        f"{doc['repeats']} ({machine['cpus']} CPUs, Python {machine['python']}, load average "
        f"at the end {', '.join(f'{x:.2f}' for x in machine['load_average'])})",
        f"source {doc['source_mb']:.0f} MB, CSV {doc['csv_mb']:.0f} MB; every target has "
        f"{rows:,} rows and the same content",
    ]
    if doc["pgloader_note"]:
        lines.append(f"NOTE: {doc['pgloader_note']}")
    lines.append("")
    header = ("tool", "wall", "rows/s", "tool CPU", "all CPU", "vs \\copy", "vs pgloader")
    lines.append("  {:<26}{:>9}{:>12}{:>10}{:>9}{:>10}{:>13}".format(*header))
    labels = {"copy": "psql \\copy (floor)", "pgloader": machine["pgloader"] or "pgloader"}
    copy_wall = doc["tools"]["copy"]["wall_s"]
    pgl = doc["tools"].get("pgloader")
    for name, figure in doc["tools"].items():
        label = labels.get(name, name)
        if name == "pgloader":
            label = "pgloader " + label.split('"')[1] if '"' in label else "pgloader"
        vs_copy = figure["wall_s"] / copy_wall
        vs_pgl = f"{figure['wall_s'] / pgl['wall_s']:.2f}x" if pgl else "-"
        lines.append(f"  {label:<26}{figure['wall_s']:>8.2f}s{figure['rows_per_s']:>12,.0f}"
                     f"{figure['cpu_s']:>9.1f}s{figure['machine_cpu_s']:>8.1f}s"
                     f"{vs_copy:>9.2f}x{vs_pgl:>13}")
    return "\n".join(lines)


def database_main(name: str, args: argparse.Namespace,
                  run_benchmark: Callable[[argparse.Namespace, Path, Target], dict[str, Any]],
                  render: Callable[[dict[str, Any]], str]) -> int:
    """`main` of a benchmark on a fresh database (this one's and bench_validate.py's).

    As harness.main, and: the database (`--database`, default pt_bench_NAME_<pid>) is dropped
    at the end unless `--keep`; the document's `profile`, if any, goes to stderr.
    """
    try:
        with harness.work_folder(name, args.workdir, keep=args.keep) as folder:
            work = folder.resolve()
            target = Target(args.host, args.port, args.user,
                            args.database or f"pt_bench_{name}_{os.getpid()}")
            try:
                doc = run_benchmark(args, work, target)
            except (RuntimeError, psycopg.Error) as exc:
                say(f"benchmark failed: {exc}")
                return 1
            finally:
                if not args.keep:
                    with contextlib.suppress(psycopg.Error):
                        target.drop()
                else:
                    say(f"kept {work} and database {target.name}")
    except harness.WorkdirNotEmpty as exc:
        say(str(exc))
        return 2
    profile = doc.pop("profile")
    if profile:
        say(profile)
    return harness.report(name, doc, render, args)


def main(argv: Sequence[str] | None = None) -> int:
    return database_main("migrate", parse_args(argv), run_benchmark, render)


if __name__ == "__main__":
    sys.exit(main())
