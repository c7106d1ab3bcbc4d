"""What every benchmark script does around its measurements: the work folder and the report.

A script's `main` is `harness.main(NAME, args, run_benchmark, render)`: NAME names its
temporary folder (`pt-bench-NAME-*`) and its saved document (`results/NAME-<stamp>.json`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"

Document = dict[str, Any]


class WorkdirNotEmpty(Exception):
    """`--workdir` names a folder that already holds something."""


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def default_pt() -> str:
    """The venv's pt next to this Python, else the one on PATH."""
    venv_pt = Path(sys.executable).parent / "pt"
    return str(venv_pt) if venv_pt.exists() else (shutil.which("pt") or "pt")


def add_report_options(parser: argparse.ArgumentParser) -> None:
    """`--json` and `--save`, which `report` reads."""
    parser.add_argument("--json", action="store_true", help="print a JSON document")
    parser.add_argument("--save", action="store_true",
                        help=f"also write the JSON document to {RESULTS_DIR.relative_to(REPO)}/")


@contextmanager
def work_folder(name: str, workdir: Path | None = None, *, keep: bool = False) -> Iterator[Path]:
    """`workdir` (made if missing, refused with WorkdirNotEmpty unless empty) or a new
    temporary folder `pt-bench-NAME-*`; removed at the end unless `keep`."""
    work = workdir or Path(tempfile.mkdtemp(prefix=f"pt-bench-{name}-"))
    if workdir is not None:
        if work.exists() and any(work.iterdir()):
            raise WorkdirNotEmpty(f"{work} is not empty")
        work.mkdir(parents=True, exist_ok=True)
    try:
        yield work
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def report(name: str, doc: Document, render: Callable[[Document], str],
           args: argparse.Namespace) -> int:
    """Print `doc` (JSON with `--json`, else rendered); with `--save` also write it to
    results/NAME-<stamp>.json. Returns 0, the exit status."""
    print(json.dumps(doc, indent=2) if args.json else render(doc))
    if args.save:
        RESULTS_DIR.mkdir(exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = RESULTS_DIR / f"{name}-{stamp}.json"
        target.write_text(json.dumps(doc, indent=2) + "\n")
        say(f"saved {target}")
    return 0


def main(name: str, args: argparse.Namespace,
         run_benchmark: Callable[[argparse.Namespace, Path], Document],
         render: Callable[[Document], str],
         errors: tuple[type[Exception], ...] = ()) -> int:
    """Run the benchmark in its work folder (`--workdir`, `--keep`) and report it.

    Exit status 2 when `--workdir` is not empty, 1 (with `benchmark failed: ...`) on one of
    `errors`, else 0.
    """
    try:
        with work_folder(name, args.workdir, keep=args.keep) as work:
            try:
                doc = run_benchmark(args, work)
            except errors as exc:
                say(f"benchmark failed: {exc}")
                return 1
    except WorkdirNotEmpty as exc:
        say(str(exc))
        return 2
    return report(name, doc, render, args)
