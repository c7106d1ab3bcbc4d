"""`pt validate counts | sample | hash`: did every row arrive, intact?"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import click
import orjson

from pulsaride.engine.errors import EXIT_FAILED
from pulsaride.engine.times import format_time
from pulsaride.migration.catalog import transform_for
from pulsaride.migration.registry import now
from pulsaride.migration.validation import (
    FAIL,
    Result,
    Sides,
    record,
    validate_counts,
    validate_hash,
    validate_sample,
)

TRANSFORMS = click.option("--transforms", "folder", type=click.Path(path_type=Path,
                                                                     file_okay=False),
                          default=Path(), show_default=True,
                          help="Folder of the transform files (found by their target table).")
SOURCE_URL = click.option("--source-url", metavar="URL", help="Source database [default: the "
                                                              "transform file's, else env].")
TARGET_URL = click.option("--target-url", metavar="URL", help="Target database [default: the "
                                                              "transform file's, else env].")
AS_JSON = click.option("--json", "as_json", is_flag=True, help="Print a JSON document.")


@click.group("validate")
def validate_group() -> None:
    """Check that every row arrived, intact (results kept in pulsaride_validation)."""


@validate_group.command("counts")
@click.option("--table", "tables", metavar="T", multiple=True, required=True,
              help="Tables to count: --table a b c (or --table a --table b).")
@click.argument("more_tables", nargs=-1, metavar="")
@TRANSFORMS
@SOURCE_URL
@TARGET_URL
@AS_JSON
def counts(tables: tuple[str, ...], more_tables: tuple[str, ...], folder: Path,
           source_url: str | None, target_url: str | None, as_json: bool) -> None:
    """Source rows against target rows per table, with deferred, rejected and skipped rows
    accounted for; PASS or FAIL per table, exit 1 on any FAIL."""
    results = [_run(table, folder, source_url, target_url, validate_counts)
               for table in [*tables, *more_tables]]
    _finish(results, as_json, _counts_line)


@validate_group.command("sample")
@click.option("--table", required=True, metavar="T", help="The table to sample.")
@click.option("--sample", "fraction", type=click.FloatRange(0, 1, min_open=True), default=0.02,
              show_default=True, help="Fraction of the rows to compare.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Choose another deterministic sample.")
@TRANSFORMS
@SOURCE_URL
@TARGET_URL
@AS_JSON
def sample(table: str, fraction: float, seed: int, folder: Path, source_url: str | None,
           target_url: str | None, as_json: bool) -> None:
    """Compare the same rows on both sides (chosen by a hash of the key), field by field
    after canonicalisation; mismatches go to pulsaride_dlq. Exit 1 on any mismatch."""
    meter = _Meter(f"validate sample {table}")
    result = _run(table, folder, source_url, target_url,
                  lambda sides: validate_sample(sides, fraction, seed, meter), meter)
    _finish([result], as_json, _detail_line)


@validate_group.command("hash")
@click.option("--table", required=True, metavar="T", help="The table to check.")
@click.option("--buckets", type=click.IntRange(1, 1_000_000), default=256, show_default=True,
              help="Key buckets compared by count and hash sum.")
@TRANSFORMS
@SOURCE_URL
@TARGET_URL
@AS_JSON
def hash_command(table: str, buckets: int, folder: Path, source_url: str | None,
                 target_url: str | None, as_json: bool) -> None:
    """Check every row without moving data: per key bucket a count and a 64-bit hash sum
    on each side; differing buckets are read again down to the differing keys."""
    meter = _Meter(f"validate hash {table}")
    result = _run(table, folder, source_url, target_url,
                  lambda sides: validate_hash(sides, buckets, meter), meter)
    _finish([result], as_json, _detail_line)


def _run(table: str, folder: Path, source_url: str | None, target_url: str | None,
         check: Callable[[Sides], Result], meter: _Meter | None = None) -> Result:
    sides = Sides.open(transform_for(table, folder), source_url, target_url)
    try:
        result = check(sides)
        record(sides.target, result, os.environ.get("PT_RUN_ID"))
    finally:
        sides.close()
        if meter is not None:
            meter.clear()
    _keep_in_run_folder(result)
    return result


def _keep_in_run_folder(result: Result) -> None:
    """Inside a pipeline job, keep the result beside the run's other evidence."""
    run_dir = os.environ.get("PT_RUN_DIR")
    if not run_dir:
        return
    folder = Path(run_dir) / "validations"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = format_time(now()).replace(":", "")
    path = folder / f"{result.kind}-{result.table}-{stamp}.json"
    path.write_bytes(orjson.dumps(result.document(), default=str, option=orjson.OPT_INDENT_2))


def _finish(results: list[Result], as_json: bool,
            line: Callable[[Result], str]) -> None:
    failed = any(r.status == FAIL for r in results)
    if as_json:
        click.echo(orjson.dumps({"schema": "pulsaride.validation/1",
                                 "status": "FAIL" if failed else "PASS",
                                 "results": [r.document() for r in results]},
                                default=str, option=orjson.OPT_INDENT_2).decode())
    else:
        for result in results:
            click.echo(line(result))
    sys.exit(EXIT_FAILED if failed else 0)


def _counts_line(result: Result) -> str:
    d: dict[str, Any] = result.details
    accounted = [f"{d[k]} {k}" for k in ("deferred", "rejected", "skipped") if d[k]]
    extra = f" ({', '.join(accounted)})" if accounted else ""
    return (f"{result.status}  {result.table}: source {d['source_rows']:,}, target "
            f"{d['target_rows']:,}, expected {d['expected_target_rows']:,}{extra}, "
            f"delta {d['delta']:+,}")


def _detail_line(result: Result) -> str:
    d = result.details
    head = f"{result.status}  {result.table} ({result.kind}): " + ", ".join(
        f"{k.replace('_', ' ')} {v}" for k, v in d.items() if isinstance(v, int | float))
    shown = [f"  key {m.key}: {m.kind} {m.field}: source {m.source!r}, target {m.target!r}"
             for m in result.mismatches[:50]]
    more = len(result.mismatches) - len(shown)
    return "\n".join([head, *shown, *([f"  ... and {more} more"] if more > 0 else [])])


class _Meter:
    """A long check's progress on a terminal: one line on stderr, rewritten in place (nothing
    when stderr is not a terminal, so logs and pipes stay clean)."""

    INTERVAL = 0.25  # seconds between two updates

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.phase = ""
        self.started = self.last = time.monotonic()
        self.shown = False

    def __call__(self, phase: str, read: int) -> None:
        if not self.tty:
            return
        now = time.monotonic()
        if phase != self.phase:
            self.phase, self.started = phase, now
        elif now - self.last < self.INTERVAL:
            return
        self.last = now
        rate = read / max(now - self.started, 1e-3)
        self.stream.write(f"\r\x1b[K{self.label}: {phase}: {read:,} source rows "
                          f"({rate:,.0f} rows/s)")
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        """Take the line away (the result is printed next)."""
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
