"""Finding transform files by the table they fill (for commands that name tables)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pulsaride.engine.errors import BadInputError, PulsarideError
from pulsaride.engine.inputs import TRANSFORM_FILE_BYTES, read_bounded
from pulsaride.engine.yamlsafe import load_yaml

from .transform import Transform, load_transform


def transforms_in(folder: Path) -> list[Transform]:
    """Every transform file directly in `folder` (YAML files with a `sources` key)."""
    found = []
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        try:
            document = load_yaml(read_bounded(path, TRANSFORM_FILE_BYTES, "transform file"),
                                 str(path))
        except PulsarideError:
            continue
        if isinstance(document, dict) and "sources" in document:
            found.append(load_transform(path))
    return found


def transform_for(table: str, folder: Path) -> Transform:
    """The transform file in `folder` that fills `table`, looked up exactly: the table as pt
    prints it (schema.name, or the name), else by its name in any schema, else by the
    transform's name; only when none is, the one equal to it but for case."""
    candidates = transforms_in(folder)
    rules: list[tuple[str, Callable[[Transform], bool]]] = [
        ("fill table", lambda t: str(t.target) == table),
        ("fill a table named", lambda t: t.target_table == table),
        ("are named", lambda t: t.name == table),
        ("fill a table named like", lambda t: table.lower() in {
            str(t.target).lower(), t.target_table.lower(), t.name.lower()})]
    for how, matches in rules:
        matching = [t for t in candidates if matches(t)]
        if len(matching) == 1:
            return matching[0]
        if matching:
            files = ", ".join(f"{t.path.name} ({str(t.target)!r})" for t in matching)
            raise BadInputError(f"several transform files {how} {table!r}: {files}; names "
                                "are exact: give the exact name, or --transform FILE")
    known = ", ".join(sorted(repr(str(t.target)) for t in candidates)) or "none"
    raise BadInputError(f"no transform file in {folder} fills table {table!r} (tables with "
                        f"transform files: {known}); use --transforms DIR or --transform FILE")
