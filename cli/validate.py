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

from pulsaride.engine.errors import EXIT_FAILED, BadInputError
from pulsaride.migration.catalog import transform_for
from pulsaride.migration.transform import Transform, load_transform
from pulsaride.migration.validation import (
    INCOMPLETE,
    PASS,
    Progress,
    Result,
    Sides,
    absent_text,
    validate_counts,
    validate_hash,
    validate_sample,
    worst,
)
from pulsaride.migration.validation_record import TableCheck, check_table

from . import options
from .text import printable

TRANSFORMS = options.transforms_folder(
    "Folder of the transform files (found by their target table).")
SOURCE_URL = options.source_url("Source database [default: the transform file's, else env].")
TARGET_URL = options.target_url("Target database [default: the transform file's, else env].")
AS_JSON = options.as_json()
TRANSFORM_FILES = options.transform_files()


@click.group("validate")
def validate_group() -> None:
    """Check that every row arrived, intact (results kept in pulsaride_validation).

    Each table gets PASS, INCOMPLETE (no difference, but source rows are missing because
    they wait in pulsaride_deferred or were dead-lettered by the copy) or FAIL; the exit
    code is 1 unless every table PASSes. Rows dropped by `on_missing: SKIP` are reported,
    and do not count against PASS."""


@validate_group.command("counts")
@options.tables("Tables to count: --table a b c (or --table a --table b).")
@TRANSFORM_FILES
@TRANSFORMS
@SOURCE_URL
@TARGET_URL
@AS_JSON
def counts(tables: tuple[str, ...], more_tables: tuple[str, ...], files: tuple[Path, ...],
           folder: Path, source_url: str | None, target_url: str | None,
           as_json: bool) -> None:
    """Source rows against target rows per table, with deferred, rejected and skipped rows
    counted apart; PASS, INCOMPLETE or FAIL per table."""
    results = [_run(transform, source_url, target_url, lambda sides, _meter: validate_counts(
        sides)) for transform in _transforms((*tables, *more_tables), files, folder)]
    _finish(results, as_json, _counts_line)


@validate_group.command("sample")
@options.tables("Tables to sample: --table a b (or --table a --table b).")
@TRANSFORM_FILES
@click.option("--sample", "fraction", type=click.FloatRange(0, 1, min_open=True), default=0.02,
              show_default=True, help="Fraction of the rows to compare.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Choose another deterministic sample.")
@TRANSFORMS
@SOURCE_URL
@TARGET_URL
@AS_JSON
def sample(tables: tuple[str, ...], more_tables: tuple[str, ...], files: tuple[Path, ...],
           fraction: float, seed: int, folder: Path, source_url: str | None,
           target_url: str | None, as_json: bool) -> None:
    """Compare the same rows on both sides (chosen by a hash of the key), field by field
    after canonicalisation; mismatches go to pulsaride_dlq."""
    results = [_run(transform, source_url, target_url,
                    lambda sides, meter: validate_sample(sides, fraction, seed, meter),
                    f"validate sample {transform.target}")
               for transform in _transforms((*tables, *more_tables), files, folder)]
    _finish(results, as_json, _detail_line)


@validate_group.command("hash")
@options.tables("Tables to check: --table a b (or --table a --table b).")
@TRANSFORM_FILES
@click.option("--buckets", type=click.IntRange(1, 1_000_000), default=256, show_default=True,
              help="Key buckets compared by count and hash sum.")
@TRANSFORMS
@SOURCE_URL
@TARGET_URL
@AS_JSON
def hash_command(tables: tuple[str, ...], more_tables: tuple[str, ...],
                 files: tuple[Path, ...], buckets: int, folder: Path, source_url: str | None,
                 target_url: str | None, as_json: bool) -> None:
    """Check every row without moving data: per key bucket a count and a 64-bit hash sum
    on each side; differing buckets are read again down to the differing keys."""
    results = [_run(transform, source_url, target_url,
                    lambda sides, meter: validate_hash(sides, buckets, meter),
                    f"validate hash {transform.target}")
               for transform in _transforms((*tables, *more_tables), files, folder)]
    _finish(results, as_json, _detail_line)


@validate_group.command("all")
@options.tables("Tables to check: --table a b (or --table a --table b).")
@TRANSFORM_FILES
@click.option("--buckets", type=click.IntRange(1, 1_000_000), default=256, show_default=True,
              help="Key buckets of the hash check.")
@TRANSFORMS
@SOURCE_URL
@TARGET_URL
@AS_JSON
def all_command(tables: tuple[str, ...], more_tables: tuple[str, ...],
                files: tuple[Path, ...], buckets: int, folder: Path, source_url: str | None,
                target_url: str | None, as_json: bool) -> None:
    """Counts, then hash, of each table in one process (what pt scaffold's validate jobs
    run): both results are recorded and shown, as by `counts` and `hash` one after the
    other; exit 1 unless both PASS."""
    results = []
    for transform in _transforms((*tables, *more_tables), files, folder):
        results += _run_checks(transform, source_url, target_url, [
            (lambda sides, _meter: validate_counts(sides), None),
            (lambda sides, meter: validate_hash(sides, buckets, meter),
             f"validate hash {transform.target}")])
    _finish(results, as_json, lambda r: _counts_line(r) if r.kind == "counts"
            else _detail_line(r))


def _transforms(tables: tuple[str, ...], files: tuple[Path, ...],
                folder: Path) -> list[Transform]:
    """The transforms of the tables named on the command line: by --table (looked up in
    the --transforms folder) or by --transform FILE, exactly one of the two."""
    if bool(tables) == bool(files):
        raise BadInputError("name the tables to check with --table T ... or with --transform "
                            "FILE ..., one of the two" + (" (not both)" if tables else ""))
    if files:
        return [load_transform(path) for path in files]
    return [transform_for(table, folder) for table in tables]


Check = Callable[[Sides, Progress | None], Result]


def _run(transform: Transform, source_url: str | None, target_url: str | None,
         check: Check, label: str | None = None) -> Result:
    """Run one check of one table (its progress shown under `label`), record it, keep it."""
    return _run_checks(transform, source_url, target_url, [(check, label)])[0]


def _run_checks(transform: Transform, source_url: str | None, target_url: str | None,
                checks: list[tuple[Check, str | None]]) -> list[Result]:
    """Run checks of one table on one pair of connections, each recorded and kept (inside a
    pipeline job, in the run's folder too)."""
    run_dir = os.environ.get("PT_RUN_DIR")
    return check_table(transform, source_url, target_url,
                       [_metered(check, label) for check, label in checks],
                       run_id=os.environ.get("PT_RUN_ID"),
                       run_dir=Path(run_dir) if run_dir else None)


def _metered(check: Check, label: str | None) -> TableCheck:
    """`check` with its progress on the terminal under `label` (none without one)."""

    def metered(sides: Sides) -> Result:
        meter = _Meter(label) if label is not None else None
        try:
            return check(sides, meter)
        finally:
            if meter is not None:
                meter.clear()

    return metered


def _finish(results: list[Result], as_json: bool,
            line: Callable[[Result], str]) -> None:
    status = worst(r.status for r in results)
    if as_json:
        click.echo(orjson.dumps({"schema": "pulsaride.validation/1", "status": status,
                                 "results": [r.document() for r in results]},
                                default=str, option=orjson.OPT_INDENT_2).decode())
    else:
        for result in results:
            click.echo(line(result))
    # INCOMPLETE fails too: a pipeline must not go on to the cutover with rows missing.
    sys.exit(0 if status == PASS else EXIT_FAILED)


def _counts_line(result: Result) -> str:
    d: dict[str, Any] = result.details
    accounted = [f"{d[k]:,} {k}" for k in ("deferred", "rejected", "skipped") if d[k]]
    extra = f" ({', '.join(accounted)})" if accounted else ""
    head = (f"{result.status}  {printable(result.table)}: source {d['source_rows']:,}, target "
            f"{d['target_rows']:,}, expected {d['expected_target_rows']:,}{extra}, "
            f"delta {d['delta']:+,}")
    return "\n".join([head, *_absent_lines(result)])


def _detail_line(result: Result) -> str:
    d = result.details
    head = f"{result.status}  {printable(result.table)} ({result.kind}): " + ", ".join(
        f"{k.replace('_', ' ')} {v}" for k, v in d.items()
        if isinstance(v, int | float) and not isinstance(v, bool))
    shown = [f"  key {m.key}: {m.kind} {printable(m.field)}: source {m.source!r}, "
             f"target {m.target!r}" for m in result.mismatches[:50]]
    more = len(result.mismatches) - len(shown)
    return "\n".join([head, *shown, *([f"  ... and {more} more"] if more > 0 else []),
                      *_absent_lines(result)])


def _absent_lines(result: Result) -> list[str]:
    """Why an INCOMPLETE result is not PASS."""
    if result.status != INCOMPLETE:
        return []
    rows = "sampled row(s)" if result.kind == "sample" else "source row(s)"
    return [f"  {absent_text(result.details, rows)}"]


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
