"""Options and arguments that more than one command takes, as decorators (click's own style).

Each is a function of its help text: the same option reads differently where its default
differs (beside FILE, beside --pipeline); the name, type and environment variable stay one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

FC = TypeVar("FC", bound=Callable[..., Any] | click.Command)

# ---- where runs are kept -------------------------------------------------------------------


def pipeline_file(*, required: bool = True) -> Callable[[FC], FC]:
    """The pipeline file FILE; with required=False, [FILE] (the state dir or store alone)."""
    if required:
        return click.argument("pipeline_file", metavar="FILE",
                              type=click.Path(path_type=Path, dir_okay=True))
    return click.argument("pipeline_file", metavar="[FILE]", required=False,
                          type=click.Path(path_type=Path))


def state_dir(help: str = "Where runs are kept [default: .pulsaride beside FILE; env "
                          "PT_STATE_DIR].") -> Callable[[FC], FC]:
    """--state-dir DIR [env PT_STATE_DIR]."""
    return click.option("--state-dir", type=click.Path(path_type=Path, file_okay=False),
                        envvar="PT_STATE_DIR", help=help)


def store(help: str = "Keep the run's lines in this shared PostgreSQL database "
                      "(postgresql://USER@HOST:PORT/DB[?schema=S]) [default: JSONL files in "
                      "the state dir; env PT_STORE].",
          *, required: bool = False) -> Callable[[FC], FC]:
    """--store URL [env PT_STORE]."""
    return click.option("--store", metavar="URL", envvar="PT_STORE", required=required,
                        help=help)


def run_id(help: str = "The run [default: the latest run of FILE].") -> Callable[[FC], FC]:
    """--run-id ID."""
    return click.option("--run-id", metavar="ID", help=help)


def as_json(help: str = "Print a JSON document.") -> Callable[[FC], FC]:
    """--json, passed as `as_json`."""
    return click.option("--json", "as_json", is_flag=True, help=help)


# ---- running a pipeline --------------------------------------------------------------------


def parallelism() -> Callable[[FC], FC]:
    """--parallelism / -j N."""
    return click.option("--parallelism", "-j", type=click.IntRange(min=1, max=256), default=4,
                        show_default=True, help="Most jobs running at once.")


def no_wait() -> Callable[[FC], FC]:
    """--no-wait: stop at a manual gate."""
    return click.option(
        "--no-wait", is_flag=True,
        help="At a manual gate, stop with exit code 3 instead of waiting for approval.")


def quiet() -> Callable[[FC], FC]:
    """--quiet / -q: no job output."""
    return click.option("--quiet", "-q", is_flag=True, help="Do not echo job output.")


def executor() -> Callable[[FC], FC]:
    """--executor URL [env PT_EXECUTOR]."""
    return click.option(
        "--executor", metavar="URL", envvar="PT_EXECUTOR",
        help="Run jobs on a Dask cluster (dask://HOST:PORT) [default: local processes; "
             "env PT_EXECUTOR].")


def seal_key() -> Callable[[FC], FC]:
    """--seal-key FILE [env PT_SEAL_KEY]."""
    return click.option(
        "--seal-key", type=click.Path(path_type=Path, dir_okay=False), envvar="PT_SEAL_KEY",
        help="Sign the chain head at every checkpoint with this Ed25519 key [env PT_SEAL_KEY].")


# ---- databases and transform files ---------------------------------------------------------


def source_url(help: str) -> Callable[[FC], FC]:
    """--source-url URL (its default differs by command, and so does its help)."""
    return click.option("--source-url", metavar="URL", help=help)


def target_url(help: str) -> Callable[[FC], FC]:
    """--target-url URL (its default differs by command, and so does its help)."""
    return click.option("--target-url", metavar="URL", help=help)


def transforms_folder(help: str, *, default: Path | None = Path()) -> Callable[[FC], FC]:
    """--transforms DIR, passed as `folder`."""
    return click.option("--transforms", "folder", type=click.Path(path_type=Path,
                                                                  file_okay=False),
                        default=default, show_default=default is not None, help=help)


def pipeline_option(help: str) -> Callable[[FC], FC]:
    """--pipeline FILE, passed as `pipeline_file`."""
    return click.option("--pipeline", "pipeline_file",
                        type=click.Path(path_type=Path, dir_okay=False), help=help)


def tables(help: str) -> Callable[[FC], FC]:
    """--table T ... (repeatable, and more names may follow it), passed as `tables` and
    `more_tables`."""

    def decorate(command: FC) -> FC:
        command = click.argument("more_tables", nargs=-1, metavar="")(command)
        return click.option("--table", "tables", metavar="T", multiple=True, help=help)(command)

    return decorate


def transform_files() -> Callable[[FC], FC]:
    """--transform FILE (repeatable), passed as `files`."""
    return click.option(
        "--transform", "files", metavar="FILE", multiple=True, type=click.Path(path_type=Path),
        help="A transform file to check the table of (repeatable); instead of --table.")
