"""JSON Schemas shipped with `pt`: the pipeline file and the run-file event line."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

import orjson


@cache
def load_schema(name: str) -> dict[str, Any]:
    """The parsed schema `name` (e.g. "pipeline", "event")."""
    text = files(__name__).joinpath(f"{name}.schema.json").read_bytes()
    schema: dict[str, Any] = orjson.loads(text)
    return schema
