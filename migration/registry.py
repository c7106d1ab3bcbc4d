"""RunRegistry: one row per transform in the target's `pulsaride_run_registry`.

It makes migrations idempotent: a DONE transform is not copied again (unless forced), and an
interrupted one resumes after its last committed batch. Every batch commits its rows together
with `commit_batch`, a compare-and-set on the registry row's version: if another process
advanced the same transform meanwhile, the batch rolls back instead of writing twice.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import Insert

from pulsaride.engine.errors import PulsarideError

from .copy_status import CopyEvent, CopyStatus, next_copy_status
from .tables import REGISTRY

COUNTERS = ("rows_read", "rows_written", "rows_deferred", "rows_rejected", "rows_skipped")


class RegistryConflict(PulsarideError):
    """Another process advanced the same transform: this one stops without writing."""


@dataclass(frozen=True)
class Entry:
    """A registry row."""

    transform: str
    file_sha256: str
    status: CopyStatus
    checkpoint: list[Any] | None
    version: int
    counters: dict[str, int]
    source: str
    target_table: str
    started_at: datetime | None = None
    finished_at: datetime | None = None


def now() -> datetime:
    """Registry times are UTC."""
    return datetime.now(UTC)


def read_entry(connection: Connection, transform: str) -> Entry | None:
    """The registry row of `transform`, if any."""
    row = connection.execute(select(REGISTRY).where(REGISTRY.c.transform == transform)).first()
    if row is None:
        return None
    data = row._mapping
    return Entry(
        transform=data["transform"], file_sha256=data["file_sha256"],
        status=CopyStatus(data["status"]),
        checkpoint=orjson.loads(data["checkpoint"]) if data["checkpoint"] else None,
        version=data["version"], counters={c: int(data[c]) for c in COUNTERS},
        source=data["source"], target_table=data["target_table"],
        started_at=data["started_at"], finished_at=data["finished_at"])


def start(connection: Connection, *, transform: str, file_sha256: str, source: str,
          target_table: str) -> Entry:
    """Register a fresh copy of `transform` (replacing any earlier row: STARTED is legal from
    every status)."""
    moment = now()
    status = next_copy_status(transform, None, CopyEvent.STARTED)
    values = {"transform": transform, "file_sha256": file_sha256, "source": source,
              "target_table": target_table, "status": status.value, "checkpoint": None,
              "version": 0, "started_at": moment, "updated_at": moment, "finished_at": None,
              "host": socket.gethostname(), "pid": os.getpid(), **dict.fromkeys(COUNTERS, 0)}
    connection.execute(_upsert(connection, values))
    entry = read_entry(connection, transform)
    assert entry is not None
    return entry


def claim(connection: Connection, entry: Entry) -> Entry:
    """Take an interrupted copy over (status RUNNING again, this host and process)."""
    status = next_copy_status(entry.transform, entry.status, CopyEvent.CLAIMED)
    values = {"status": status.value, "host": socket.gethostname(), "pid": os.getpid(),
              "updated_at": now(), "finished_at": None, "version": entry.version + 1}
    _compare_and_set(connection, entry, values)
    return Entry(**{**entry.__dict__, "status": status, "version": entry.version + 1})


def commit_batch(connection: Connection, entry: Entry, checkpoint: list[Any],
                 delta: dict[str, int]) -> Entry:
    """Advance the checkpoint and counters (in the batch's transaction)."""
    next_copy_status(entry.transform, entry.status, CopyEvent.BATCH_COMMITTED)
    counters = {c: entry.counters[c] + delta.get(c, 0) for c in COUNTERS}
    values = {"checkpoint": orjson.dumps(checkpoint, default=str).decode(),
              "version": entry.version + 1, "updated_at": now(), **_added(delta)}
    _compare_and_set(connection, entry, values)
    return Entry(**{**entry.__dict__, "checkpoint": checkpoint, "version": entry.version + 1,
                    "counters": counters})


def finish(connection: Connection, entry: Entry, event: CopyEvent = CopyEvent.FINISHED,
           delta: dict[str, int] | None = None) -> Entry:
    """Mark the copy DONE (`event` FINISHED) or FAILED."""
    status = next_copy_status(entry.transform, entry.status, event)
    counters = {c: entry.counters[c] + (delta or {}).get(c, 0) for c in COUNTERS}
    moment = now()
    values = {"status": status.value, "version": entry.version + 1, "updated_at": moment,
              "finished_at": moment, **_added(delta or {})}
    _compare_and_set(connection, entry, values)
    return Entry(**{**entry.__dict__, "status": status, "version": entry.version + 1,
                    "counters": counters, "finished_at": moment})


def _added(delta: dict[str, int]) -> dict[str, Any]:
    """Counters as increments in SQL, not absolute values: another process's copy may have
    `adjust`ed them meanwhile (writing rows that waited for this table), and must not be
    overwritten."""
    return {c: getattr(REGISTRY.c, c) + n for c, n in delta.items() if n}


def cut_over(connection: Connection, entry: Entry) -> Entry:
    """Mark a finished copy CUT_OVER, keeping when it finished."""
    status = next_copy_status(entry.transform, entry.status, CopyEvent.CUT_OVER)
    _compare_and_set(connection, entry, {"status": status.value, "version": entry.version + 1,
                                         "updated_at": now()})
    return Entry(**{**entry.__dict__, "status": status, "version": entry.version + 1})


def adjust(connection: Connection, transform: str, delta: dict[str, int]) -> None:
    """Add to the counters of `transform` (deferred rows written later by another copy)."""
    changes = {c: getattr(REGISTRY.c, c) + n for c, n in delta.items() if n}
    if changes:
        connection.execute(update(REGISTRY).where(REGISTRY.c.transform == transform)
                           .values(**changes, updated_at=now()))


def _compare_and_set(connection: Connection, entry: Entry, values: dict[str, Any]) -> None:
    result = connection.execute(
        update(REGISTRY)
        .where(REGISTRY.c.transform == entry.transform, REGISTRY.c.version == entry.version)
        .values(**values))
    if result.rowcount != 1:
        raise RegistryConflict(
            f"transform {entry.transform} was advanced by another process meanwhile; "
            "this one stopped without writing (only one pt migrate run per transform at once)")


def _upsert(connection: Connection, values: dict[str, Any]) -> Insert:
    dialect = connection.dialect.name
    update_values = {k: v for k, v in values.items() if k != "transform"}
    if dialect == "postgresql":
        pg = postgresql.insert(REGISTRY).values(**values)
        return pg.on_conflict_do_update(index_elements=["transform"], set_=update_values)
    if dialect == "sqlite":
        lite = sqlite.insert(REGISTRY).values(**values)
        return lite.on_conflict_do_update(index_elements=["transform"], set_=update_values)
    connection.execute(REGISTRY.delete().where(REGISTRY.c.transform == values["transform"]))
    return REGISTRY.insert().values(**values)
