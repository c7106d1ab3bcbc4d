"""`pt health`: the cutover confidence verdict, with reasons and root-cause hints."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
import orjson
from sqlalchemy import Engine

from pulsaride.engine.errors import EXIT_FAILED, PulsarideError
from pulsaride.engine.loader import load_pipeline_file
from pulsaride.engine.run_views import read_run
from pulsaride.migration.catalog import transforms_in
from pulsaride.migration.database import (
    SOURCE,
    TARGET,
    open_engine,
    open_source,
    resolve_url,
)
from pulsaride.migration.verdict import _RANK, Health, assess
from pulsaride.projections.status import run_state

from . import options
from .text import printable


@click.command("health")
@options.transforms_folder("Folder of the transform files.")
@options.target_url("Target database [default: PT_TARGET_URL, else the transform files'].")
@options.source_url("Source database, to tell orphans from late parents [default: "
                    "PT_SOURCE_URL, if set].")
@options.pipeline_option("Take the latest run of this pipeline into account (its variables "
                         "are defaults for the database URLs).")
@click.option("--require", type=click.Choice(["GO", "CAUTION"]), default="GO",
              show_default=True, help="Exit 1 when the verdict is worse than this.")
@options.as_json()
def health_command(folder: Path, target_url: str | None, source_url: str | None,
                   pipeline_file: Path | None, require: str, as_json: bool) -> None:
    """GO / CAUTION / NO-GO per table and overall, from the registry, the validations, the
    deferred and rejected rows and the pipeline's state, each with its reasons."""
    if pipeline_file is not None:
        # The pipeline's variables (e.g. PT_TARGET_URL) are defaults here, as in its jobs.
        for name, value in load_pipeline_file(pipeline_file).pipeline.variables.items():
            os.environ.setdefault(name, value)
    transforms = transforms_in(folder)
    file_target = transforms[0].target_url if transforms else None
    target = open_engine(resolve_url(TARGET, target_url, file_target))
    source = _source(source_url, transforms[0].source_url if transforms else None)
    try:
        state = _pipeline_state(pipeline_file)
        result = assess(target, transforms, source, state)
    finally:
        target.dispose()
        if source is not None:
            source.dispose()
    if as_json:
        click.echo(orjson.dumps(result.document(), default=str,
                                option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(render(result))
    sys.exit(EXIT_FAILED if _RANK[result.verdict] > _RANK[require] else 0)


def _source(flag: str | None, from_file: str | None) -> Engine | None:
    try:
        return open_source(resolve_url(SOURCE, flag, from_file))
    except PulsarideError:
        return None  # hints that need the source are left out


def _pipeline_state(pipeline_file: Path | None) -> str | None:
    if pipeline_file is None:
        return None
    view = read_run(pipeline_file, None, None)
    return run_state(view.run, view.active)


def render(result: Health) -> str:
    """The verdict for people."""
    lines = [f"cutover confidence: {result.verdict}"]
    lines += [f"  {printable(reason)}" for reason in result.reasons]
    for table in result.tables:
        counters = table.counters
        checks = ", ".join(f"{k} {v}" for k, v in sorted(table.validations.items())) or "none"
        lines.append(f"{table.verdict:<8} {printable(table.table)}: "
                     f"{counters.get('rows_written', 0)} written, "
                     f"{counters.get('deferred', 0)} deferred, "
                     f"{counters.get('rejected', 0)} rejected; validations: {checks}")
        lines += [f"         - {printable(reason)}" for reason in table.reasons]
    for hint in result.hints:
        lines.append(printable(f"hint: {hint['table']}: {hint['hint']}; {hint['suggestion']}"))
    return "\n".join(lines)
