"""Keeping validation results: in pulsaride_validation (the history of checks) and, inside a
pipeline job, as files beside the run's other evidence."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import orjson

from .names import file_stem
from .registry import now
from .transform import Transform
from .validation import Result, Sides, record

TableCheck = Callable[[Sides], Result]


def check_table(transform: Transform, source_url: str | None, target_url: str | None,
                checks: Sequence[TableCheck], *, run_id: str | None,
                run_dir: Path | None) -> list[Result]:
    """Run checks of one table on one pair of connections, each result kept as it comes."""
    results = []
    sides = Sides.open(transform, source_url, target_url)
    try:
        for check in checks:
            result = check(sides)
            record(sides.target, result, run_id)
            if run_dir is not None:
                keep_in_run_folder(result, run_dir)
            results.append(result)
    finally:
        sides.close()
    return results


def keep_in_run_folder(result: Result, run_dir: Path) -> Path:
    """Write the result into the run's validations/ folder; return the file."""
    folder = run_dir / "validations"
    folder.mkdir(parents=True, exist_ok=True)
    # The run files' time format (engine.times) without its colons, which some file systems
    # refuse: 2026-04-07T140000.000000Z.
    stamp = now().strftime("%Y-%m-%dT%H%M%S.%fZ")
    # A table's name is data: file_stem makes it a safe file name.
    path = folder / f"{result.kind}-{file_stem(result.table)}-{stamp}.json"
    path.write_bytes(orjson.dumps(result.document(), default=str, option=orjson.OPT_INDENT_2))
    return path
