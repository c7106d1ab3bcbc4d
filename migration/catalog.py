"""Finding transform files by the table they fill (for commands that name tables)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pulsaride.engine.errors import BadInputError, PulsarideError
from pulsaride.engine.yamlsafe import load_yaml

from .transform import Transform, load_transform


def transforms_in(folder: Path) -> list[Transform]:
    """Every transform file directly in `folder` (YAML files with a `sources` key)."""
    found = []
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        try:
            document = load_yaml(path.read_bytes(), str(path))
        except (PulsarideError, OSError):
            continue
        if isinstance(document, dict) and "sources" in document:
            found.append(load_transform(path))
    return found


def _target_names(transform: Transform) -> set[str]:
    """How a command line may name the table a transform fills: its exact name, or
    schema.name as pt prints it."""
    return {transform.target_table, str(transform.target)}


def transform_for(table: str, folder: Path) -> Transform:
    """The transform file in `folder` that fills `table`: the one whose target table (else
    whose name) is exactly `table`; only when none is, the one equal to it but for case."""
    candidates = transforms_in(folder)
    rules: list[tuple[str, Callable[[Transform], bool]]] = [
        ("fills table", lambda t: table in _target_names(t)),
        ("is named", lambda t: t.name == table),
        ("fills a table named like", lambda t: table.lower() in {
            n.lower() for n in (*_target_names(t), t.name)})]
    for how, matches in rules:
        matching = [t for t in candidates if matches(t)]
        if len(matching) == 1:
            return matching[0]
        if matching:
            files = ", ".join(f"{t.path.name} ({t.target})" for t in matching)
            raise BadInputError(f"several transform files {how} {table!r}: {files}; names are "
                                "exact: give the exact name, or --transform FILE")
    known = ", ".join(sorted(repr(str(t.target)) for t in candidates)) or "none"
    raise BadInputError(f"no transform file in {folder} fills table {table!r} (tables with "
                        f"transform files: {known}); use --transforms DIR or --transform FILE")
