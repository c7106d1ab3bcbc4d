"""pgloader's and pt's results on the realistic sample schemas, side by side in one run.

For each sample (default: the MariaDB dvdrental and the SQLite musicstore, see
tests/migration/samples) the script builds the source (a fresh MariaDB database, or a SQLite
file in the work folder), creates a fresh PostgreSQL database, runs pgloader with its default
options on the plain command line

    pgloader --root-dir WORK/pgloader-SAMPLE SOURCE_URL postgresql://postgres@HOST:PORT/TARGET

(SOURCE_URL: mysql://root@HOST:PORT/DATABASE or sqlite:///PATH) and records:

- the wall time of pgloader, its exit status, its ERROR and WARNING lines and its summary;
- the schemas it created and the database's search_path setting (for a MySQL source pgloader
  puts the tables into a schema named after the source database and sets the target
  database's search_path to "public, <that name>");
- the fingerprint of that schema (tests/migration/samples/fingerprint.py: columns with
  format_type, nullability, default and identity; primary key, unique and check constraints,
  indexes, foreign keys, sequences with their last values, enum types, row counts ...);
- per table, whether content() of the source and of pgloader's table agree (rows missing,
  rows extra, an example of each).

pt then loads the same source into another fresh database the way the README tells a new user
to: `pt scaffold` (default options), `pt pipeline run` with every gate approved (pre-data,
preflight, copies, post-data, validations, health, cutover); the same fingerprint, content
comparison and wall time are recorded under "pt", and the ratio of the wall times.

The random database names are replaced by {source_db} / {target_db}, and pgloader's
OID-prefixed index names (idx_30170_primary) by idx_{oid}_..., so fingerprints of two runs
compare. The databases are dropped at the end (unless --keep).

    .venv/bin/python bench/pgloader_compare.py [--samples mariadb:dvdrental,sqlite:musicstore]
        [--scale 1] [--out docs/pgloader] [--pgloader PATH] [--json] [--save]
        [--keep --workdir DIR]

With --out DIR each sample's document is written to DIR/<kind>-<sample>.json (that is how
docs/pgloader/ was made: `--samples mariadb:dvdrental,sqlite:musicstore,sqlite:dvdrental,
mariadb:musicstore --out docs/pgloader`). About 10 s per sample at scale 1.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import harness  # type: ignore[import-not-found]  # the script next to this one
from sqlalchemy import text

sys.path.insert(0, str(harness.REPO))  # the samples live in the test suite

from tests.migration.conftest import (
    Db,
    new_maria_database,
    new_pg_database,
)
from tests.migration.samples import dvdrental, musicstore
from tests.migration.samples.content import contents
from tests.migration.samples.fingerprint import fingerprint
from tests.migration.samples.flow import scaffold_and_run
from tests.migration.samples.info import SampleInfo

BUILDERS: dict[str, Callable[[Db, int], SampleInfo]] = {
    "dvdrental": dvdrental.build, "musicstore": musicstore.build}
DEFAULT_SAMPLES = "mariadb:dvdrental,sqlite:musicstore"
_OID_INDEX = re.compile(r"\bidx_\d+_")
_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\S+ ([A-Z]+) (.*)$")

Document = dict[str, Any]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--samples", default=DEFAULT_SAMPLES,
                        help=f"comma-separated kind:sample [default: {DEFAULT_SAMPLES}]")
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--out", type=Path, help="write DIR/<kind>-<sample>.json")
    parser.add_argument("--pgloader", default=shutil.which("pgloader") or "pgloader")
    parser.add_argument("--workdir", type=Path, help="where to write files [default: temp dir]")
    parser.add_argument("--keep", action="store_true", help="keep the work dir and databases")
    harness.add_report_options(parser)
    return parser.parse_args(argv)


def source_db(kind: str, work: Path, name: str) -> tuple[Db, Callable[[], None], str]:
    """A fresh source database of `kind`, its drop function and pgloader's URL for it."""
    if kind == "sqlite":
        path = work / f"{name}.db"
        return Db("sqlite", f"sqlite:///{path}"), lambda: None, f"sqlite://{path}"
    db, drop = new_maria_database()
    return db, drop, db.url.split("?", 1)[0]


def run_pgloader(pgloader: str, source: str, target: str, root: Path) -> Document:
    """Run pgloader with its default options; wall time, status and what it printed."""
    command = [pgloader, "--root-dir", str(root), source, target]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=1800)
    wall = time.monotonic() - started
    output = done.stdout + done.stderr
    return {"command": command, "exit_status": done.returncode, "wall_s": round(wall, 3),
            "errors": problems(output, "ERROR"), "warnings": problems(output, "WARNING"),
            "summary": output[output.find("table name"):].rstrip() if "table name" in output
            else "", "log": output}


def problems(output: str, level: str) -> list[str]:
    """The `level` lines of pgloader's output, each with its continuation lines."""
    found: list[str] = []
    collecting = False
    for line in output.splitlines():
        match = _LOG_LINE.match(line)
        if match:
            collecting = match[1] == level
            if collecting:
                found.append(match[2])
        elif collecting and line.strip():
            found[-1] += "\n" + line
    return found


def target_layout(target: Db) -> tuple[list[str], str | None]:
    """The schemas pgloader left in the target and the database's search_path setting."""
    with target.engine.connect() as connection:
        schemas = [r[0] for r in connection.execute(text(
            "SELECT nspname FROM pg_namespace WHERE nspname !~ '^pg_' "
            "AND nspname <> 'information_schema' ORDER BY 1"))]
        setting = connection.execute(text(
            "SELECT array_to_string(setconfig, '; ') FROM pg_db_role_setting s "
            "JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = current_database()")
        ).scalar()
    return schemas, setting


def compare_content(source: Db, target: Db, schema: str, info: SampleInfo,
                    target_tables: set[str]) -> Document:
    """Per source table: its target table (same name, else lower-cased), row counts and the
    rows content() finds on one side only."""
    result: Document = {}
    found = {t: t if t in target_tables else t.lower() for t in info.tables}
    left = contents(source, info.tables)
    right = contents(target, [n for n in found.values() if n in target_tables], schema=schema)
    for table, name in found.items():
        if name not in right:
            result[table] = {"target_table": None}
            continue
        missing = set(left[table]) - set(right[name])
        extra = set(right[name]) - set(left[table])
        result[table] = {"target_table": name, "source_rows": len(left[table]),
                         "target_rows": len(right[name]), "equal": left[table] == right[name],
                         "rows_missing": len(missing), "rows_extra": len(extra),
                         "example_missing": _example(missing), "example_extra": _example(extra)}
    return result


def _example(rows: set[tuple[Any, ...]]) -> str | None:
    return repr(min(rows, key=repr))[:300] if rows else None


def anonymise(value: Any, names: dict[str, str]) -> Any:
    """`value` with the random database names replaced, and OID-prefixed index names."""
    if isinstance(value, str):
        for name, placeholder in names.items():
            value = value.replace(name, placeholder)
        return _OID_INDEX.sub("idx_{oid}_", value)
    if isinstance(value, list):
        return [anonymise(v, names) for v in value]
    if isinstance(value, dict):
        return {anonymise(k, names): anonymise(v, names) for k, v in value.items()}
    return value


def measure(args: argparse.Namespace, work: Path, kind: str, sample: str) -> Document:
    """Build one sample, load it with pgloader, and describe the result."""
    source, drop_source, source_url = source_db(kind, work, sample)
    target, drop_target = new_pg_database()
    try:
        started = time.monotonic()
        info = BUILDERS[sample](source, args.scale)
        built = time.monotonic() - started
        harness.say(f"{kind}:{sample}: built {info.total_rows} rows in {built:.1f} s; pgloader ...")
        run = run_pgloader(args.pgloader, source_url, target.url, work / f"pgloader-{sample}")
        schemas, search_path = target_layout(target)
        source_name = source.url.rsplit("/", 1)[1].split("?")[0]
        schema = source_name if source_name in schemas else "public"
        printed = fingerprint(target.engine, schema)
        names = {source_name: "{source_db}", target.url.rsplit("/", 1)[1]: "{target_db}",
                 str(work): "{work}"}
        document: Document = anonymise({
            "sample": sample, "source_kind": kind, "scale": args.scale,
            "source": {"tables": info.tables, "total_rows": info.total_rows,
                       "traits": sorted(info.traits), "views": list(info.views),
                       "triggers": list(info.triggers), "routines": list(info.routines),
                       "fulltext_indexes": list(info.fulltext_indexes)},
            "pgloader": {**run, "version": pgloader_version(args.pgloader)},
            "target": {"schemas": schemas, "search_path_setting": search_path,
                       "schema": schema,
                       "rows": sum(t["rows"] for t in printed["tables"].values())},
            "content": compare_content(source, target, schema, info,
                                       set(printed["tables"])),
            "fingerprint": printed}, names)
        document["pt"] = anonymise(run_pt(source, info, work / f"pt-{kind}-{sample}"), names)
        document["pt_to_pgloader_wall"] = round(document["pt"]["wall_s"] / run["wall_s"], 2)
        return document
    finally:
        if not args.keep:
            source.dispose()
            drop_source()
            drop_target()


def run_pt(source: Db, info: SampleInfo, folder: Path) -> Document:
    """The README's flow into a fresh database: scaffold, run, approve every gate."""
    target, drop = new_pg_database()
    try:
        started = time.monotonic()
        scaffold_and_run(folder, source, target, "downcase")
        wall = time.monotonic() - started
        printed = fingerprint(target.engine, "public")
        own = {t for t in printed["tables"] if t.startswith("pulsaride_")}
        printed["tables"] = {k: v for k, v in printed["tables"].items() if k not in own}
        return {"wall_s": round(wall, 3), "rows": sum(t["rows"] for t in
                                                      printed["tables"].values()),
                "content": compare_content(source, target, "public", info,
                                           set(printed["tables"])),
                "fingerprint": printed}
    finally:
        target.dispose()
        drop()


def pgloader_version(pgloader: str) -> str:
    done = subprocess.run([pgloader, "--version"], capture_output=True, text=True, check=False)
    return " / ".join(line.strip() for line in done.stdout.splitlines() if line.strip())


def run_benchmark(args: argparse.Namespace, work: Path) -> Document:
    documents = {}
    for item in args.samples.split(","):
        kind, sample = item.strip().split(":")
        document = measure(args, work, kind, sample)
        documents[f"{kind}-{sample}"] = document
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            path = args.out / f"{kind}-{sample}.json"
            path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
            harness.say(f"wrote {path}")
    return {"samples": documents}


def render(doc: Document) -> str:
    lines = []
    for name, sample in doc["samples"].items():
        run, target = sample["pgloader"], sample["target"]
        unequal = [t for t, c in sample["content"].items() if not c.get("equal")]
        lines += [f"{name}: pgloader exit {run['exit_status']} in {run['wall_s']:.2f} s, "
                  f"{target['rows']} of {sample['source']['total_rows']} rows, schema "
                  f"{target['schema']!r}, {len(run['errors'])} errors, "
                  f"{len(run['warnings'])} warnings",
                  f"  content differs in: {', '.join(unequal) or 'none'}"]
        lines += [f"  ERROR {e.splitlines()[0]}" for e in run["errors"]]
        mine = sample["pt"]
        differs = [t for t, c in mine["content"].items() if not c.get("equal")]
        lines += [f"  pt: {mine['wall_s']:.2f} s ({sample['pt_to_pgloader_wall']}x pgloader's "
                  f"time, scaffold to verified cutover), {mine['rows']} of "
                  f"{sample['source']['total_rows']} rows",
                  f"  pt content differs in: {', '.join(differs) or 'none'}",
                  "  objects: " + ", ".join(
                      f"{what} {_count(sample['fingerprint'], what)} vs "
                      f"{_count(mine['fingerprint'], what)}" for what in _OBJECTS)]
    return "\n".join(lines)


_OBJECTS = ("indexes", "foreign_keys", "unique", "checks", "sequences")


def _count(printed: Document, what: str) -> int:
    """How many of `what` a fingerprint holds (pgloader's / pt's)."""
    if what == "sequences":
        return len(printed.get("sequences", {}))
    return sum(len(table.get(what, ())) for table in printed["tables"].values())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return int(harness.main("pgloader-compare", args, run_benchmark, render))


if __name__ == "__main__":
    sys.exit(main())
