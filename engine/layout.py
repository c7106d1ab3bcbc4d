"""Where a pipeline's runs live on disk, and finding them.

    <state dir>/pipeline-runs/<run-id>.jsonl        the run's events (source of truth)
    <state dir>/pipeline-runs/<run-id>.lock         held by the process running it
    <state dir>/pipeline-runs/<run-id>/logs/<job>/attempt-<n>.log
    <state dir>/pipeline-runs/<run-id>.seals.jsonl  seals (engine/seal.py)
    <state dir>/pipeline-runs/<run-id>.jsonl.tail-<n>-<digest>   set-aside torn tails

No run id can name another run's side file: see store.RESERVED_SEGMENTS and ADR 0016.

The state dir defaults to `.pulsaride` beside the pipeline file.
"""

from __future__ import annotations

import errno
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import RunIdError, RunNotFoundError
from .store import RUNS_FOLDER, check_run_id, read_first_record

DEFAULT_STATE_DIR = ".pulsaride"


@dataclass(frozen=True)
class RunSummary:
    """What a run's first line says: enough to list and pick runs."""

    run_id: str
    started_at: str
    pipeline_path: str
    started_by: str
    where: str  # the run file, or the run in a shared store


@dataclass(frozen=True)
class StateDir:
    """A state directory holding the runs of one or more pipeline files."""

    root: Path

    @classmethod
    def for_pipeline(cls, pipeline_path: Path, override: Path | None = None) -> StateDir:
        """The state dir given explicitly, or `.pulsaride` beside the pipeline file."""
        if override is not None:
            return cls(override.absolute())
        return cls(pipeline_path.absolute().parent / DEFAULT_STATE_DIR)

    @property
    def runs(self) -> Path:
        """The folder of run files."""
        return self.root / RUNS_FOLDER

    def run_file(self, run_id: str) -> Path:
        """The event file of `run_id`."""
        return self.runs / f"{check_run_id(run_id)}.jsonl"

    def lock_file(self, run_id: str) -> Path:
        """The lock file of `run_id`."""
        return self.runs / f"{check_run_id(run_id)}.lock"

    def run_folder(self, run_id: str) -> Path:
        """The folder of `run_id`'s artifacts (job logs)."""
        return self.runs / check_run_id(run_id)

    def log_path(self, run_id: str, job: str, attempt: int) -> Path:
        """Log file of one attempt of a job, relative to the runs folder."""
        return Path(check_run_id(run_id)) / "logs" / job / f"attempt-{attempt}.log"

    def keep_copy(self, run_id: str, name: str, data: bytes) -> Path:
        """Store `data` (a pipeline file as run) in the run's folder; return its relative path."""
        relative = Path(check_run_id(run_id)) / name
        target = self.runs / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            # O_NOFOLLOW: a symbolic link planted at the copy's path is refused, not written
            # through (it could point at any file the user can write).
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise RunIdError(f"{target} is a symbolic link; refusing to write through it"
                                 ) from None
            raise
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        return relative

    def new_run_id(self) -> str:
        """A fresh random run id (12 hex digits) not used in this state dir."""
        while True:
            run_id = secrets.token_hex(6)
            if not self.run_file(run_id).exists():
                return run_id

    def summaries(self) -> list[RunSummary]:
        """Every readable run in this state dir, oldest first."""
        found = []
        if not self.runs.is_dir():
            return []
        for path in self.runs.glob("*.jsonl"):
            record = read_first_record(path)
            summary = _summary(path, record) if record else None
            if summary is not None:
                found.append(summary)
        return sorted(found, key=lambda s: (s.started_at, s.run_id))

    def latest_run(self, pipeline_path: Path) -> str:
        """The id of the most recently started run of `pipeline_path`."""
        return latest_of(self.summaries(), pipeline_path, str(self.runs))


def _summary(path: Path, record: dict[str, Any]) -> RunSummary | None:
    return summary_of(record, path.stem, str(path))


def summary_of(record: dict[str, Any], run_id: str, where: str) -> RunSummary | None:
    """The summary a run's parsed first line gives, None unless it starts run `run_id` (an
    id no command accepts, such as one a side file's name gives, is no run either)."""
    try:
        check_run_id(run_id)
    except RunIdError:
        return None
    pipeline = record.get("pipeline")
    if record.get("event") != "RunStarted" or not isinstance(pipeline, dict):
        return None
    if record.get("pipeline_run_id") != run_id:
        return None
    return RunSummary(run_id=run_id, started_at=str(record.get("at", "")),
                      pipeline_path=str(pipeline.get("path", "")),
                      started_by=str(record.get("started_by", "")), where=where)


def latest_of(summaries: list[RunSummary], pipeline_path: Path, where: str) -> str:
    """The id of the most recently started run of `pipeline_path` among `summaries`."""
    wanted = str(pipeline_path.resolve())
    runs = [s for s in summaries if s.pipeline_path == wanted]
    if not runs:
        raise RunNotFoundError(
            f"no run of {pipeline_path} in {where}; start one with "
            f"'pt pipeline run {pipeline_path}'")
    return runs[-1].run_id
