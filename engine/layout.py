"""Where a pipeline's runs live on disk: names only (the files are read and written by
engine/jsonl_store.py alone).

    <state dir>/pipeline-runs/<run-id>.jsonl        the run's events (source of truth)
    <state dir>/pipeline-runs/<run-id>.lock         held by the process running it
    <state dir>/pipeline-runs/<run-id>/logs/<job>/attempt-<n>.log
    <state dir>/pipeline-runs/<run-id>.seals.jsonl  seals (engine/seal.py)
    <state dir>/pipeline-runs/<run-id>.jsonl.tail-<n>-<digest>   set-aside torn tails

No run id can name another run's side file: see RESERVED_SEGMENTS and ADR 0016.

The state dir defaults to `.pulsaride` beside the pipeline file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import RunIdError, RunNotFoundError
from .runstore import RunSummary

DEFAULT_STATE_DIR = ".pulsaride"
RUNS_FOLDER = "pipeline-runs"
# 1-64 letters, digits, '_', '.', '-'; a letter or digit first; never '..' (also the pattern
# of the dashboard's OpenAPI document, so it is written without look-arounds).
RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*\.?$"
RUN_ID_MAX = 64
_RUN_ID = re.compile(RUN_ID_PATTERN)
RESERVED_SEGMENTS = frozenset({"jsonl", "lock", "seals"})
"""Words no dot-separated part of a run id after the first may be (in any case), because the
store names a run's side files by adding them to the id: `<id>.jsonl`, `<id>.lock`,
`<id>.seals.jsonl`, `<id>.jsonl.tail-<n>-<digest>`, and the folder `<id>/`. Without them no
id's file or folder can be another id's side file (ADR 0016)."""


def check_run_id(run_id: str) -> str:
    """Return `run_id` if it is a safe file-name-like id that names no other run's side file;
    raise RunIdError otherwise."""
    if len(run_id) > RUN_ID_MAX or not _RUN_ID.match(run_id):
        raise RunIdError(
            f"invalid run id {run_id!r}: use 1-64 letters, digits, '_', '.', '-' "
            "(no path separators, no '..')")
    reserved = [part for part in run_id.split(".")[1:] if part.lower() in RESERVED_SEGMENTS]
    if reserved:
        raise RunIdError(
            f"invalid run id {run_id!r}: '.{reserved[0]}' is reserved for the store's own "
            "files (<id>.jsonl, <id>.lock, <id>.seals.jsonl, <id>.jsonl.tail-*)")
    return run_id


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

    @classmethod
    def for_command(cls, pipeline_path: Path | None, override: Path | None) -> StateDir:
        """The state dir of a command whose pipeline file is optional."""
        if pipeline_path is None:
            return cls((override or Path(DEFAULT_STATE_DIR)).absolute())
        return cls.for_pipeline(pipeline_path, override)

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

    def seals_file(self, run_id: str) -> Path:
        """The seals of `run_id`."""
        return seals_path(self.run_file(run_id))

    def run_folder(self, run_id: str) -> Path:
        """The folder of `run_id`'s artifacts (job logs)."""
        return self.runs / check_run_id(run_id)

    def log_path(self, run_id: str, job: str, attempt: int) -> Path:
        """Log file of one attempt of a job, relative to the runs folder."""
        return Path(check_run_id(run_id)) / "logs" / job / f"attempt-{attempt}.log"


def seals_path(run_file: Path) -> Path:
    """Where the seals of a run file are kept."""
    return run_file.with_name(run_file.name.removesuffix(".jsonl") + ".seals.jsonl")


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
