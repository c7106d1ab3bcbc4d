"""Finding transform files by the table they fill (for commands that name tables)."""

from __future__ import annotations

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


def transform_for(table: str, folder: Path) -> Transform:
    """The transform file in `folder` that fills `table` (by target table or name)."""
    candidates = transforms_in(folder)
    matching = [t for t in candidates
                if table.lower() in (t.target_table.lower(), t.name.lower())]
    if len(matching) == 1:
        return matching[0]
    if not matching:
        known = ", ".join(sorted(t.target_table for t in candidates)) or "none"
        raise BadInputError(f"no transform file in {folder} fills table {table} "
                            f"(tables with transform files: {known}); use --transforms DIR")
    files = ", ".join(str(t.path) for t in matching)
    raise BadInputError(f"several transform files fill table {table}: {files}")
