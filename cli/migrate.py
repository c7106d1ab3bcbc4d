"""`pt migrate ...`: copy tables (run), show parked rows (deferred), apply target DDL (schema)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import IO, Any

import click
import orjson
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from pulsaride.engine.errors import PulsarideError
from pulsaride.migration.cutover import Cutover, cutover
from pulsaride.migration.database import TARGET, open_engine, resolve_url
from pulsaride.migration.migrate import MigrateRequest, Progress, migrate
from pulsaride.migration.post_data import Step, apply_steps
from pulsaride.migration.target_inspection import SAMPLE_KEYS, apply_schema, deferred_summary
from pulsaride.migration.transform import load_transform

from . import options
from .text import printable

TRANSFORM = click.argument("transform_file", metavar="TRANSFORM.yaml",
                           type=click.Path(path_type=Path))
SOURCE_URL = options.source_url(
    "Source database [default: the file's source_url, else PT_SOURCE_URL].")
TARGET_URL = options.target_url(
    "Target database [default: the file's target_url, else PT_TARGET_URL].")


@click.group()
def migrate_group() -> None:
    """Copy tables from the source to the target database, exactly once."""


@migrate_group.command("run")
@TRANSFORM
@SOURCE_URL
@TARGET_URL
@click.option("--batch-size", type=click.IntRange(min=1, max=1_000_000),
              help="Rows per batch (one transaction each) [default: the file's, else 25000].")
@click.option("--force", is_flag=True,
              help="Copy again even if the registry says DONE: empties the target table first.")
@options.as_json("Print a one-line JSON summary.")
def run(transform_file: Path, source_url: str | None, target_url: str | None,
        batch_size: int | None, force: bool, as_json: bool) -> None:
    """Copy one table as TRANSFORM.yaml describes. Rows whose parent rows are missing wait in
    pulsaride_deferred (depends_on); a rerun resumes after the last committed batch."""
    transform = load_transform(transform_file)
    request = MigrateRequest(transform=transform, source_url=source_url, target_url=target_url,
                             batch_size=batch_size, force=force)
    display = ProgressDisplay(sys.stderr)
    outcome = migrate(request, display.update)
    display.close()
    if as_json:
        click.echo(orjson.dumps(outcome.summary()).decode())
    else:
        click.echo(_summary_text(outcome))


@migrate_group.command("deferred")
@click.option("--table", "table_name", metavar="T",
              help="Only rows waiting to go into T (its exact name, or schema.name).")
@TARGET_URL
@options.as_json()
def deferred(table_name: str | None, target_url: str | None, as_json: bool) -> None:
    """Rows parked in pulsaride_deferred: what waits, for which parent table, on which keys."""
    engine = open_engine(resolve_url(TARGET, target_url, None))
    try:
        groups = deferred_summary(engine, table_name)
        others = _named_like(engine, table_name) if table_name is not None and not groups \
            else []
    except SQLAlchemyError as exc:
        raise PulsarideError(f"database error: {first_line(exc)}") from None
    finally:
        engine.dispose()
    if as_json:
        click.echo(orjson.dumps({"schema": "pulsaride.deferred/1", "groups": groups},
                                option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(_deferred_text(groups, table_name, others))


def _deferred_text(groups: list[dict[str, Any]], table: str | None, others: list[str]) -> str:
    if not groups:
        hint = f" (rows wait for {', '.join(map(repr, others))}: names are exact)" \
            if others else ""
        return f"no deferred rows{f' for table {table!r}' if table else ''}{hint}"
    lines = []
    for group in groups:
        keys = ", ".join(printable(k) for k in group["sample_keys"])
        # Up to SAMPLE_KEYS distinct values are shown: as many means there may be more.
        more = ", ..." if len(group["sample_keys"]) >= SAMPLE_KEYS else ""
        lines.append(f"{printable(group['target_table'])}: {group['rows']} row(s) wait for "
                     f"{printable(group['blocking_table'])}."
                     f"{printable(group['blocking_key'])} in ({keys}{more})")
    return "\n".join(lines)


def _named_like(engine: Engine, table: str) -> list[str]:
    """Tables with deferred rows whose name differs from `table` only in case."""
    return sorted({g["target_table"] for g in deferred_summary(engine)
                   if table.lower() in (g["target_table"].lower(), g["target"]["name"].lower())})


@migrate_group.command("schema")
@click.argument("sql_file", metavar="SCHEMA.sql", type=click.Path(path_type=Path,
                                                                   dir_okay=False))
@TARGET_URL
@click.option("--post-data", "post_data", is_flag=True,
              help="Apply step by step, resumably: each statement commits on its own and is "
                   "recorded in pulsaride_schema_steps; a rerun skips the steps done.")
@options.as_json("Print a JSON summary.")
def schema(sql_file: Path, target_url: str | None, post_data: bool, as_json: bool) -> None:
    """Apply a target schema file (e.g. from pt scaffold): the pre-data part in one
    transaction; with --post-data (indexes, constraints, foreign keys after the copies)
    one step per statement, resuming after the last step done."""
    engine = open_engine(resolve_url(TARGET, target_url, None))
    try:
        if post_data:
            outcome = apply_steps(engine, sql_file, _StepLines(sys.stderr))
        else:
            count = apply_schema(engine, sql_file)
    finally:
        engine.dispose()
    if not post_data:
        click.echo(orjson.dumps({"schema": "pulsaride.schema/1", "file": sql_file.name,
                                 "status": "ok", "statements": count}).decode() if as_json
                   else f"applied {count} statement(s) from {sql_file}")
        return
    if as_json:
        click.echo(orjson.dumps(outcome.document()).decode())
    if outcome.failed is not None:
        raise PulsarideError(outcome.message)
    if not as_json:
        click.echo(f"{sql_file}: {len(outcome.ran)} step(s) applied, {len(outcome.skipped)} "
                   f"done earlier, of {outcome.total}")


class _StepLines:
    """One progress line per step, on stderr (the summary goes to stdout)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def __call__(self, step: Step, state: str, seconds: float) -> None:
        if state == "failed":
            return  # the error line says it, once
        took = f" in {seconds:.2f}s" if state == "done" else ""
        self.stream.write(f"step {step.number}: {state}{took}: {step.head[:120]}\n")
        self.stream.flush()


def first_line(exc: SQLAlchemyError) -> str:
    """The driver's own message of a database error, first line only."""
    original = getattr(exc, "orig", None)
    return str(original if original is not None else exc).strip().splitlines()[0]


def _summary_text(outcome: Progress) -> str:
    data = outcome.summary()
    if outcome.status == "already done":
        return (f"{outcome.transform}: already done ({data['rows_written']} rows written earlier)"
                "; nothing written. Use --force to copy it again.")
    resumed = " (resumed after an interrupted copy)" if outcome.resumed_from else ""
    rate = f", {data['rows_per_second']:,} rows/s" if data["rows_per_second"] else ""
    converted = "".join(f"; {count:,} value(s) converted by {name}"
                        for name, count in outcome.conversions.items())
    return (f"{outcome.transform} -> {outcome.target_table}: {outcome.read:,} read, "
            f"{outcome.written:,} written, {outcome.deferred:,} deferred, "
            f"{outcome.rejected:,} rejected, {outcome.skipped:,} skipped in "
            f"{data['seconds']:.1f}s{rate}{resumed}{converted}")


class ProgressDisplay:
    """Rows, rows/s and ETA: a redrawn line on a terminal, a line every few seconds otherwise."""

    INTERVAL = 5.0

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last = 0.0
        self.drawn = False

    def update(self, progress: Progress) -> None:
        """Show the current counters (rate-limited when not on a terminal)."""
        now = time.monotonic()
        if not self.tty and now - self.last < self.INTERVAL and progress.status == "running":
            return
        self.last = now
        line = self._line(progress)
        if self.tty:
            self.stream.write("\r\033[K" + line)
            self.drawn = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the redrawn line."""
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()

    @staticmethod
    def _line(progress: Progress) -> str:
        elapsed = max(time.monotonic() - progress.started, 1e-9)
        rate = progress.read / elapsed
        parts: list[Any] = [f"{progress.transform}: {progress.read:,}"]
        if progress.total:
            share = min(progress.read / progress.total, 1.0)
            remaining = (progress.total - progress.read) / rate if rate else 0
            parts = [f"{progress.transform}: {progress.read:,}/{progress.total:,} rows "
                     f"({share:.0%})", f"{rate:,.0f} rows/s", f"ETA {remaining:,.0f}s"]
        else:
            parts += [f"{rate:,.0f} rows/s"]
        parts.append(f"deferred {progress.deferred:,}, rejected {progress.rejected:,}")
        return "  ".join(str(p) for p in parts)


@migrate_group.command("cutover")
@click.argument("transform_files", metavar="TRANSFORM.yaml...", nargs=-1, required=True,
                type=click.Path(path_type=Path))
@TARGET_URL
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Check the gate (registry DONE, latest validations PASSed, nothing "
                   "deferred or dead-lettered); --no-verify skips it and is recorded.")
@click.option("--dry-run", is_flag=True, help="Show what would be checked and done.")
@options.as_json()
def cutover_command(transform_files: tuple[Path, ...], target_url: str | None, verify: bool,
                    dry_run: bool, as_json: bool) -> None:
    """The cutover gate: refuse (exit 1) with every reason unless each table's copy is DONE,
    its latest validations PASSed (INCOMPLETE and FAIL refuse) and none of its rows wait in
    pulsaride_deferred or were dead-lettered by the copy; then advance the sequences of its
    serial and identity columns that are behind the migrated rows, and record the cutover.
    With several files, all are checked first and nothing is cut over unless every table
    passes."""
    transforms = [load_transform(path) for path in transform_files]
    engine = open_engine(resolve_url(TARGET, target_url, transforms[0].target_url))
    try:
        checked = [cutover(engine, t, verify=verify, dry_run=True) for t in transforms]
        refused = any(r.refusals for r in checked)
        results = checked if refused or dry_run else [
            cutover(engine, t, verify=verify, dry_run=False) for t in transforms]
    finally:
        engine.dispose()
    if as_json:
        click.echo(orjson.dumps({"schema": "pulsaride.cutover/1",
                                 "status": "refused" if refused else "ok",
                                 "tables": [r.document() for r in results]},
                                option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo("\n".join(_cutover_text(r, dry_run, refused) for r in results))
    sys.exit(1 if refused else 0)


def _cutover_text(result: Cutover, dry_run: bool, refused: bool) -> str:
    name = printable(result.target_table)
    if result.already:
        return f"{name}: already cut over; nothing to do"
    if result.refusals:
        return "\n".join([f"{name}: cutover REFUSED:"] +
                         [f"  - {printable(r)}" for r in result.refusals])
    if refused:
        return f"{name}: passes the gate (nothing cut over: another table is refused)"
    moves = [f"  advance {printable(s['sequence'])} ({printable(s['column'])}) from {s['current']} "
             f"to {s['max_value']}" for s in result.sequences if s["behind"]] or [
        "  no sequences to advance"]
    verb = "would cut over" if dry_run else "cut over"
    warning = [] if result.verified else ["  warning: verification skipped (--no-verify)"]
    return "\n".join([f"{name}: {verb}", *moves, *warning])
