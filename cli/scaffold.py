"""`pt scaffold`: transform files, a target schema and a pipeline from a source schema."""

from __future__ import annotations

from pathlib import Path

import click
from sqlalchemy.exc import SQLAlchemyError

from pulsaride.engine.errors import PulsarideError
from pulsaride.migration.database import SOURCE, open_source, resolve_url
from pulsaride.migration.scaffold import read_schema, scaffold, write_files

from .migrate import first_line


@click.command("scaffold")
@click.option("--source-url", metavar="URL",
              help="Source database [default: PT_SOURCE_URL]; its password from PT_SRC_PASS.")
@click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False),
              default=Path("pulsaride-pipeline.yml"), show_default=True,
              help="Pipeline file to write; the other files go beside it.")
@click.option("--target-url", metavar="URL", default="sqlite:///target.db", show_default=True,
              help="Target database recorded in the pipeline's variables (PT_TARGET_URL).")
@click.option("--tables", metavar="T", multiple=True,
              help="Only these tables (repeat the option) [default: every table].")
@click.option("--schema", "source_schema", metavar="S", help="Source schema (Oracle owner).")
@click.option("--force", is_flag=True, help="Overwrite files that exist.")
def scaffold_command(source_url: str | None, output: Path, target_url: str,
                     tables: tuple[str, ...], source_schema: str | None, force: bool) -> None:
    """Read the source schema (tables, primary and foreign keys) and write one transform file
    per table, target-schema.sql, and a pipeline whose needs follow the foreign keys."""
    url = resolve_url(SOURCE, source_url, None)
    engine = open_source(url)
    try:
        schema = read_schema(engine, tables or None, source_schema)
    except SQLAlchemyError as exc:
        raise PulsarideError(f"source database error: {first_line(exc)}") from None
    finally:
        engine.dispose()
    if not schema:
        raise click.UsageError("the source has no tables to scaffold")
    result = scaffold(schema, url, target_url, output.name)
    written = write_files(output.parent, result, force)
    click.echo(f"wrote {len(written)} files for {len(result.tables)} tables into "
               f"{output.parent}:")
    for path in written:
        click.echo(f"  {path}")
    for edge in result.deferred_edges:
        click.echo(f"  depends_on DEFER (cycle or self-reference): {edge}")
    for note in result.notes:
        click.echo(f"  note: {note}")
    click.echo(f"next: review them, then: pt pipeline validate {output} && "
               f"pt pipeline run {output}")
