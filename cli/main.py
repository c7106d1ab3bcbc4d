"""The `pt` command: the root group; maps every PulsarideError to one line and its exit code."""

from __future__ import annotations

import importlib
import io
import os
import sys
from typing import Any

import click

from pulsaride.engine.errors import EXIT_FAILED, PulsarideError

from .context import Pt

# Each command's module is imported only when that command runs (or help lists it): the
# migration commands load SQLAlchemy and the drivers, which `pt pipeline ...` (run by every
# job that calls pt) does not need. Command name -> (module of pulsaride.cli, attribute).
COMMANDS = {
    "pipeline": ("pipeline", "pipeline"),
    "migrate": ("migrate", "migrate_group"),
    "scaffold": ("scaffold", "scaffold_command"),
    "preflight": ("preflight", "preflight_command"),
    "validate": ("validate", "validate_group"),
    "health": ("health", "health_command"),
    "serve": ("serve", "serve_command"),
}


class PtGroup(click.Group):
    """The root group: loads a command's module when it is used, and turns our errors into
    clean one-line messages (set PT_DEBUG=1 for more)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            module, attribute = COMMANDS[cmd_name]
            command = getattr(importlib.import_module(f"{__package__}.{module}"), attribute)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PulsarideError as exc:
            _report(str(exc))
            ctx.exit(exc.exit_code)
        except OSError as exc:
            if os.environ.get("PT_DEBUG"):
                raise
            where = f": {exc.filename}" if exc.filename else ""
            _report(f"{exc.strerror or exc}{where}")
            ctx.exit(EXIT_FAILED)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            if os.environ.get("PT_DEBUG"):
                raise
            refused = _database_error(exc)
            if refused is not None:
                _report(f"database error: {refused}")
                ctx.exit(EXIT_FAILED)
            _report(f"internal error: {type(exc).__name__}: {exc} "
                    "(run again with PT_DEBUG=1 for the traceback, and please report it)")
            ctx.exit(EXIT_FAILED)


def _database_error(exc: Exception) -> str | None:
    """The first line of what the database or its driver said, if `exc` comes from them (an
    unreachable server, a refused statement); None otherwise. Looked up in sys.modules: the
    drivers are imported only by the commands that use them."""
    kinds = tuple(kind for module, name in (("sqlalchemy.exc", "SQLAlchemyError"),
                                            ("psycopg", "Error"), ("pymysql", "Error"))
                  if (kind := getattr(sys.modules.get(module), name, None)) is not None)
    if not kinds or not isinstance(exc, kinds):
        return None
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines()
    return lines[0] if lines else type(original).__name__


def _report(message: str) -> None:
    """Print an error: first line prefixed, indented detail lines as they are."""
    for line in message.splitlines() or [""]:
        click.echo(line if line.startswith("  ") else f"pt: error: {line}", err=True)


@click.group(cls=PtGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pulsaride", prog_name="pt")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """pt: run a whole database migration from one reviewed pipeline file.

    Every job transition is appended to .pulsaride/pipeline-runs/<run-id>.jsonl, an
    append-only, hash-chained evidence file that status, resume and approve replay.

    Exit codes: 0 ok, 1 a job or check failed, 2 bad input or usage, 3 waiting for approval.
    """
    ctx.ensure_object(Pt)  # the services, passed down to the commands as ctx.obj


def main() -> None:
    """Console-script entry point."""
    if isinstance(sys.stdout, io.TextIOWrapper):
        # A stdout that cannot encode a status symbol or a job's output (a non-UTF-8 locale,
        # PYTHONIOENCODING=ascii) must not crash the runner between recording and launching.
        sys.stdout.reconfigure(errors="replace")
    cli.main(prog_name="pt")
