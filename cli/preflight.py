"""`pt preflight`: is each table's migration possible, before any data moves?"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import orjson

from pulsaride.engine.errors import EXIT_FAILED
from pulsaride.migration.preflight import run_preflight
from pulsaride.migration.transform import load_transform

from . import options


@click.command("preflight")
@click.argument("transform_files", metavar="TRANSFORM.yaml...", nargs=-1, required=True,
                type=click.Path(path_type=Path))
@options.source_url("Source database [default: each file's source_url, else PT_SOURCE_URL].")
@options.target_url("Target database [default: each file's target_url, else PT_TARGET_URL].")
@options.as_json()
def preflight_command(transform_files: tuple[Path, ...], source_url: str | None,
                      target_url: str | None, as_json: bool) -> None:
    """Check, before any data moves, that both databases answer, the source tables and
    columns exist, and the target tables have compatible columns (type, length, precision,
    nullability), a primary key, and the parents of depends_on. Exit 1 if anything blocks."""
    transforms = [load_transform(path) for path in transform_files]
    reports = run_preflight(transforms, source_url, target_url)
    blocked = any(report.blocked for report in reports)
    if as_json:
        click.echo(orjson.dumps({"schema": "pulsaride.preflight/1",
                                 "status": "blocked" if blocked else "ok",
                                 "tables": [r.document() for r in reports]},
                                option=orjson.OPT_INDENT_2).decode())
    else:
        for report in reports:
            state = "BLOCKED" if report.blocked else "ok"
            click.echo(f"{report.transform} -> {report.target_table}: {state} "
                       f"({report.fields_checked} fields checked)")
            for finding in report.findings:
                click.echo(f"  {finding.text()}")
    sys.exit(EXIT_FAILED if blocked else 0)
