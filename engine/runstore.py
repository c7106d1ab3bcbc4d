"""Where a run's lines are kept: the small contract the engine needs from an event store.

Two stores keep the same line bytes: the JSONL directory (the default, `store.RunFile`) and a
shared PostgreSQL database (`pgstore`, for runs approved or inspected from several machines).
The engine only ever talks to these protocols; see ADR 0008.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from .errors import BadInputError, RunIdError
from .events import RunEvent, RunStarted
from .layout import RunSummary, StateDir
from .store import RunFile, RunLock, Tail, check_run_id

RecordedEvent = RunEvent | RunStarted
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class RunLog(Protocol):
    """One run's lines, read incrementally and appended in batches."""

    run_id: str
    seq: int  # seq of the last line read or written
    head: str  # digest of that line (the chain head)
    lines: int
    tail: Tail | None  # bytes after the last good line (only a file can have them)

    @property
    def where(self) -> str:
        """Where the lines are, for messages."""

    def read_new(self) -> Iterator[tuple[int, RecordedEvent]]:
        """(line number, event) for every line after those read or written so far, checked."""

    def locked(self) -> AbstractContextManager[None]:
        """The append lock: writers take it to catch up, decide and append."""

    def append(self, events: Sequence[RecordedEvent]) -> list[bytes]:
        """Write `events` as one durable batch after the head; call caught up, under lock."""

    def has_new(self) -> bool:
        """True if another process (maybe on another machine) wrote since the last read."""

    def quarantine_tail(self) -> Path:
        """Set `tail` aside (call under lock); return the side file."""

    def close(self) -> None:
        """Let go of the log's resources."""


class RunOwnership(Protocol):
    """Held by the one process that executes a run, for as long as it does."""

    @property
    def inherit_fds(self) -> tuple[int, ...]:
        """Descriptors job processes keep open so that they keep the run owned."""

    def release(self) -> None:
        """Give the run up."""


class RunStore(Protocol):
    """Every run of one store: create, open, own, list."""

    @property
    def where(self) -> str:
        """The store, for messages."""

    def check_new(self, run_id: str) -> None:
        """RunIdError if `run_id` already started in this store."""

    def create(self, run_id: str) -> tuple[RunLog, dict[str, Any] | None]:
        """The log of a new run (call owning it), and the TailQuarantined fields of bytes a
        previous, unstarted attempt left behind (or None)."""

    def open(self, run_id: str, *, writable: bool = False) -> RunLog:
        """The log of an existing run; RunIdError if there is none."""

    def acquire(self, run_id: str, owner: dict[str, Any]) -> RunOwnership:
        """Own the run or raise RunLockedError naming the holder."""

    def is_held(self, run_id: str) -> bool:
        """True if some live process owns the run."""

    def summaries(self) -> list[RunSummary]:
        """Every readable run, oldest first."""

    def latest_run(self, pipeline_path: Path) -> str:
        """The most recently started run of `pipeline_path`."""

    def new_run_id(self) -> str:
        """A fresh run id unused in this store."""

    def read_bytes(self, run_id: str) -> bytes:
        """The run's lines exactly as JSONL (each line and its newline)."""

    def close(self) -> None:
        """Let go of connections."""


def safe_url(url: str) -> str:
    """`url` without its password, fit for messages and for the record."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def open_store(url: str | None, state: StateDir) -> RunStore:
    """The store `url` names (a postgresql:// URL), else the JSONL files of `state`."""
    if not url:
        return JsonlStore(state)
    if url.startswith(POSTGRES_SCHEMES):
        from .pgstore import PostgresStore  # noqa: PLC0415 - psycopg only when asked for

        return PostgresStore.connect(url)
    raise BadInputError(f"unsupported store {url!r}: give a postgresql://USER@HOST:PORT/DB URL, "
                        "or nothing for the JSONL files of the state dir")


class JsonlStore:
    """The runs of a state dir: one hash-chained JSONL file each, owned through `flock`."""

    def __init__(self, state: StateDir) -> None:
        self.state = state

    @property
    def where(self) -> str:
        """The runs folder."""
        return str(self.state.runs)

    def check_new(self, run_id: str) -> None:
        """RunIdError if the run's file holds a whole first line."""
        _unstarted_leftover(self.state.run_file(run_id), run_id)

    def create(self, run_id: str) -> tuple[RunLog, dict[str, Any] | None]:
        """Create the run file, first setting aside one a torn start left."""
        path = self.state.run_file(run_id)
        leftover = _set_aside_unstarted(path, run_id)
        return RunFile.create(path, run_id), leftover

    def open(self, run_id: str, *, writable: bool = False) -> RunLog:
        """Open the run file."""
        return RunFile.open(self.state.run_file(check_run_id(run_id)), run_id, writable=writable)

    def acquire(self, run_id: str, owner: dict[str, Any]) -> RunOwnership:
        """Take the run's lock file."""
        return RunLock.acquire(self.state.lock_file(run_id), owner)

    def is_held(self, run_id: str) -> bool:
        """True if a live process holds the run's lock file."""
        return RunLock.is_held(self.state.lock_file(run_id))

    def summaries(self) -> list[RunSummary]:
        """The state dir's runs."""
        return self.state.summaries()

    def latest_run(self, pipeline_path: Path) -> str:
        """The latest run of `pipeline_path` in the state dir."""
        return self.state.latest_run(pipeline_path)

    def new_run_id(self) -> str:
        """A random id with no file yet."""
        return self.state.new_run_id()

    def read_bytes(self, run_id: str) -> bytes:
        """The run file's bytes (a torn tail included)."""
        path = self.state.run_file(check_run_id(run_id))
        if path.is_symlink():
            raise RunIdError(f"{path} is a symbolic link; refusing it")
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise RunIdError(f"no run {run_id} in {self.state.runs}") from None

    def close(self) -> None:
        """Nothing stays open."""


def _unstarted_leftover(path: Path, run_id: str) -> bytes | None:
    """The bytes of a run file that never got a whole first line (its runner died, or the
    machine lost power, while recording the run's start), None if there is no such file;
    RunIdError if the run did start."""
    if not path.exists() and not path.is_symlink():
        return None
    run_file = RunFile.open(path, run_id)  # refuses a symbolic link
    try:
        started = any(True for _ in run_file.read_new())
    finally:
        run_file.close()
    if started:
        raise RunIdError(f"run {run_id} already exists; use 'pt pipeline resume' to continue it")
    return run_file.tail.data if run_file.tail is not None else b""


def _set_aside_unstarted(path: Path, run_id: str) -> dict[str, Any] | None:
    """Move the file of a run that never recorded its start aside, as a torn tail would be
    (call holding the run lock); the TailQuarantined fields, or None if nothing was kept."""
    leftover = _unstarted_leftover(path, run_id)
    if leftover is None:
        return None
    if not leftover:
        path.unlink()
        return None
    digest = hashlib.sha256(leftover).hexdigest()
    side = path.with_name(f"{path.name}.tail-1-{digest[:12]}")
    path.replace(side)
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return {"path": side.name, "size": len(leftover), "sha256": digest}
