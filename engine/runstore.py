"""Where a run's lines are kept: the small contract the engine needs from an event store.

Two stores keep the same line bytes: the JSONL files of a state dir (the default,
`jsonl_store`) and a shared PostgreSQL database (`pgstore`, for runs approved or inspected from
several machines); `stores.open_store` picks one. The engine only ever talks to these
protocols; see ADR 0008 and ADR 0018.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .events import RunEvent, RunStarted
from .lines import Tail
from .run_index import IndexEntry

RecordedEvent = RunEvent | RunStarted


@dataclass(frozen=True)
class RunSummary:
    """What a run's first line says: enough to list and pick runs."""

    run_id: str
    started_at: str
    pipeline_path: str
    started_by: str
    where: str  # the run file, or the run in a shared store


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

    def note_in_index(self, entry: IndexEntry) -> None:
        """Append `entry` to the store's run index (engine/run_index.py), durably."""

    def index_bytes(self) -> bytes:
        """The run index, each line and its newline (empty when nothing was indexed)."""

    def close(self) -> None:
        """Let go of connections."""
