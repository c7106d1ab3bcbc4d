"""The Migration Health panel's data: `pt health` computed for the dashboard, cached briefly."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from pulsaride.engine.errors import PulsarideError
from pulsaride.engine.run_views import read_run
from pulsaride.migration.catalog import transforms_in
from pulsaride.migration.database import (
    SOURCE,
    TARGET,
    open_engine,
    open_source,
    resolve_url,
)
from pulsaride.migration.verdict import assess
from pulsaride.projections.status import run_state

CACHE_SECONDS = 2.0


@dataclass
class HealthSource:
    """Where the verdict comes from: the transform files, the target, maybe the pipeline."""

    transforms: Path
    target_url: str | None = None
    source_url: str | None = None
    pipeline_file: Path | None = None
    _cached: tuple[float, dict[str, Any]] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def document(self) -> dict[str, Any]:
        """The health document (errors become a NO-GO with the reason, never an exception)."""
        with self._lock:
            if self._cached and time.monotonic() - self._cached[0] < CACHE_SECONDS:
                return self._cached[1]
            document = self._compute()
            self._cached = (time.monotonic(), document)
            return document

    def _compute(self) -> dict[str, Any]:
        try:
            transforms = transforms_in(self.transforms)
            file_target = transforms[0].target_url if transforms else None
            target = open_engine(resolve_url(TARGET, self.target_url, file_target))
        except PulsarideError as exc:
            return _unknown(str(exc))
        try:
            source = open_source(resolve_url(SOURCE, self.source_url, transforms[0].source_url
                                             if transforms else None))
        except PulsarideError:
            source = None
        try:
            return assess(target, transforms, source, self._pipeline_state()).document()
        except (PulsarideError, SQLAlchemyError) as exc:
            return _unknown(f"cannot assess: {str(exc).splitlines()[0]}")
        finally:
            target.dispose()
            if source is not None:
                source.dispose()

    def _pipeline_state(self) -> str | None:
        if self.pipeline_file is None:
            return None
        try:
            view = read_run(self.pipeline_file, None, None)
        except PulsarideError:
            return None
        return run_state(view.run, view.active)


def _unknown(reason: str) -> dict[str, Any]:
    return {"schema": "pulsaride.health/1", "verdict": "NO-GO",
            "reasons": [f"NO-GO: {reason}"], "tables": [], "hints": []}
