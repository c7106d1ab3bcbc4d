"""`pt scaffold`: a target schema (pre-data and post-data), transform files, a pipeline and a
review report from a real source schema."""

from __future__ import annotations

from pathlib import Path

import click
import orjson
from sqlalchemy.exc import SQLAlchemyError

from pulsaride.engine.errors import PulsarideError
from pulsaride.migration.database import SOURCE, open_source, resolve_url
from pulsaride.migration.names import IdentifierRule
from pulsaride.migration.scaffold import (
    Scaffold,
    ScaffoldOptions,
    is_sqlite_url,
    read_source,
    scaffold,
    target_has_postgis,
    write_files,
)
from pulsaride.migration.scaffold_columns import TypeOptions
from pulsaride.migration.scaffold_review import summary_counts

from . import options
from .migrate import first_line


@click.command("scaffold")
@options.source_url("Source database [default: PT_SOURCE_URL]; its password from PT_SRC_PASS.")
@click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False),
              default=Path("pulsaride-pipeline.yml"), show_default=True,
              help="Pipeline file to write; the other files go beside it.")
@options.target_url("Target database, recorded in the pipeline (PT_TARGET_URL) [default: "
                    "none: PostgreSQL DDL, PT_TARGET_URL from the environment]. A sqlite:/// "
                    "URL gets the SQLite flavour of the DDL.")
@click.option("--tables", metavar="T", multiple=True,
              help="Only these tables (repeat the option) [default: every table].")
@click.option("--schema", "source_schema", metavar="S",
              help="Source schema (Oracle owner, MariaDB database) [default: the "
                   "connection's].")
@click.option("--identifiers", type=click.Choice(["downcase", "keep"]), default="downcase",
              show_default=True, help="Target names: lower case, or the source's spelling.")
@click.option("--enums", type=click.Choice(["type", "check"]), default="type",
              show_default=True, help="ENUM columns: CREATE TYPE ... AS ENUM, or text + CHECK.")
@click.option("--tinyint1-boolean", is_flag=True,
              help="MariaDB/MySQL TINYINT(1) becomes boolean [default: smallint].")
@click.option("--sqlite-types", type=click.Choice(["data", "affinity"]), default="data",
              show_default=True,
              help="SQLite sources: declared types corrected by what the data holds (one "
                   "aggregate query per table), or SQLite's affinity rules alone.")
@click.option("--force", is_flag=True, help="Overwrite files that exist.")
@options.as_json("Print a JSON summary.")
def scaffold_command(source_url: str | None, output: Path, target_url: str | None,
                     tables: tuple[str, ...], source_schema: str | None, identifiers: str,
                     enums: str, tinyint1_boolean: bool, sqlite_types: str, force: bool,
                     as_json: bool) -> None:
    """Read the source catalog (tables, types, defaults, keys, indexes, checks, foreign keys,
    views, triggers, routines) and write target-schema.sql (pre-data), target-post-data.sql
    (indexes, constraints and foreign keys, after the copies), one transform file per table,
    a pipeline, and objects-to-review.md/.json for what cannot be carried over."""
    url = resolve_url(SOURCE, source_url, None)
    sqlite_target = is_sqlite_url(target_url)
    options = ScaffoldOptions(
        identifiers=IdentifierRule(identifiers), target_url=target_url,
        pipeline_name=output.name,
        types=TypeOptions(enums=enums, tinyint1_boolean=tinyint1_boolean,
                          sqlite_types=sqlite_types, sqlite_target=sqlite_target,
                          postgis=target_has_postgis(target_url)))
    engine = open_source(url)
    try:
        schema = read_source(engine, tables or None, source_schema,
                             sqlite_data=sqlite_types == "data")
    except SQLAlchemyError as exc:
        raise PulsarideError(f"source database error: {first_line(exc)}") from None
    finally:
        engine.dispose()
    if not schema.tables:
        raise click.UsageError("the source has no tables to scaffold")
    result = scaffold(schema, url, options)
    written = write_files(output.parent, result, force)
    if as_json:
        click.echo(orjson.dumps(result.document(written), option=orjson.OPT_INDENT_2).decode())
        return
    _summary(result, written, output)


def _summary(result: Scaffold, written: list[Path], output: Path) -> None:
    plan = result.plan
    click.echo(f"scaffolded {len(plan.tables)} table(s) ({plan.flavour} target, identifiers "
               f"{plan.rule.value}) into {output.parent}: {len(written)} files")
    for path in written:
        click.echo(f"  {path}")
    for cycle in result.cycles():
        click.echo(f"  cycle: {cycle}")
    if result.review:
        click.echo(f"  to review ({output.parent / 'objects-to-review.md'}): "
                   f"{summary_counts(result.review)}")
    for note in result.notes:
        click.echo(f"  note: {note}")
    target = "" if plan.options.sqlite_target or result.files[output.name].count(
        "PT_TARGET_URL:") else "export PT_TARGET_URL=postgresql://... && "
    click.echo(f"next: review them, then: {target}pt pipeline validate {output} && "
               f"pt pipeline run {output}")
