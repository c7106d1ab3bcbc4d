"""`pt migrate run`: copy one table per its transform file, batch by batch, exactly once.

Each batch is read from the source in key order after the last checkpoint, transformed,
sorted by the DeferralEngine, and written in ONE target transaction together with its parked
rows, its dead letters and the registry's new checkpoint. A crash therefore loses at most the
batch in flight, and a rerun starts after the last committed one: no duplicates, none missing.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import psycopg
from sqlalchemy import Connection, Engine, delete
from sqlalchemy.exc import SQLAlchemyError

from pulsaride.engine.errors import BadInputError, PulsarideError

from . import deferral, registry
from .copy_status import FINISHED_COPY
from .database import SOURCE, TARGET, describe, open_engine, open_source, resolve_url
from .expressions import conversion_counts
from .reading import Prefetch, fetch_all
from .registry import Entry
from .rows import RowMaker
from .source import SourcePlan, plan_source
from .tables import DEFERRED, DLQ, ensure_tables
from .transform import RejectPolicy, Transform
from .writer import CopyText, TargetTable, dumps, reflect_target, write_rows


class MigrationError(PulsarideError):
    """The copy stopped; the registry keeps the last committed batch for a rerun."""


@dataclass(frozen=True)
class MigrateRequest:
    """How to run one transform."""

    transform: Transform
    source_url: str | None = None
    target_url: str | None = None
    batch_size: int | None = None
    force: bool = False


@dataclass
class Progress:
    """Counters of a copy as it goes (for progress displays and the summary)."""

    transform: str
    target_table: str
    total: int | None = None
    read: int = 0
    written: int = 0
    deferred: int = 0
    rejected: int = 0
    skipped: int = 0
    replayed: int = 0
    started: float = field(default_factory=time.monotonic)
    status: str = "running"
    resumed_from: list[Any] | None = None
    conversions: dict[str, int] = field(default_factory=dict)  # values changed, by function

    def summary(self) -> dict[str, Any]:
        """The one-line JSON summary."""
        elapsed = time.monotonic() - self.started
        return {"transform": self.transform, "target_table": self.target_table,
                "status": self.status, "rows_read": self.read, "rows_written": self.written,
                "rows_deferred": self.deferred, "rows_rejected": self.rejected,
                "rows_skipped": self.skipped, "deferred_rows_replayed": self.replayed,
                "resumed_from": self.resumed_from, "conversions": self.conversions,
                "seconds": round(elapsed, 3),
                "rows_per_second": round(self.read / elapsed) if elapsed > 0 else None}


ProgressSink = Callable[[Progress], None]


def migrate(request: MigrateRequest, on_progress: ProgressSink | None = None) -> Progress:
    """Copy the table of `request.transform`; see the module docstring."""
    transform = request.transform
    source = open_source(resolve_url(SOURCE, request.source_url, transform.source_url))
    target = open_engine(resolve_url(TARGET, request.target_url, transform.target_url))
    try:
        return _Copy(request, source, target, on_progress or (lambda _p: None)).run()
    except (SQLAlchemyError, psycopg.Error) as exc:  # psycopg's own: from COPY (writer.py)
        raise MigrationError(f"{transform.name}: database error: {_first_line(exc)}") from None
    finally:
        source.dispose()
        target.dispose()


class _Copy:
    """One run of one transform."""

    def __init__(self, request: MigrateRequest, source: Engine, target: Engine,
                 on_progress: ProgressSink) -> None:
        self.request = request
        self.transform = request.transform
        self.source = source
        self.target = target
        self.on_progress = on_progress
        self.batch_size = request.batch_size or self.transform.options.batch_size
        self.progress = Progress(self.transform.name, self.transform.target_table)

    def run(self) -> Progress:
        ensure_tables(self.target)
        with self.source.connect() as reader:
            plan = plan_source(reader, self.transform)
            with self.target.begin() as connection:
                target_table = reflect_target(connection, self.transform.target,
                                              [f.name for f in plan.fields])
                entry = self._begin(connection, target_table)
            if entry is None:
                return self.progress
            self.progress.total = reader.execute(plan.count()).scalar_one() + \
                entry.counters["rows_read"]
            self._account(entry)
            self.on_progress(self.progress)
            before = conversion_counts()
            entry = self._copy(reader, plan, target_table, entry)
            self.progress.conversions = {
                name: count - before.get(name, 0) for name, count in conversion_counts().items()
                if count > before.get(name, 0)}
        with self.target.begin() as connection:
            replayed = deferral.replay(connection, transform=self.transform.name,
                                       release_cycles=True)
            self.progress.written += replayed.written.get(self.transform.name, 0)
            self.progress.deferred -= replayed.written.get(self.transform.name, 0)
            self.progress.replayed += replayed.total
            entry = registry.read_entry(connection, self.transform.name) or entry
            registry.finish(connection, entry)
        self.progress.status = "done"
        self.on_progress(self.progress)
        return self.progress

    # ---- registry ----------------------------------------------------------------------

    def _begin(self, connection: Connection, target: TargetTable) -> Entry | None:
        name = self.transform.name
        entry = registry.read_entry(connection, name)
        identity = f"{describe(self.source.url)} {', '.join(self._tables())}"
        if self.request.force:
            connection.execute(delete(target.table.clause()))
            connection.execute(delete(DEFERRED).where(DEFERRED.c.transform == name))
            return registry.start(connection, transform=name, file_sha256=self.transform.sha256,
                                  source=identity, target_table=target.key)
        if entry is None:
            return registry.start(connection, transform=name, file_sha256=self.transform.sha256,
                                  source=identity, target_table=target.key)
        if entry.status in FINISHED_COPY:  # a CUT_OVER copy is finished too
            self.progress.status = "already done"
            self._account(entry)
            return None
        if entry.file_sha256 != self.transform.sha256:
            raise BadInputError(
                f"{name}: the transform file changed since its interrupted copy started; "
                "rerun with --force to copy the table again from the start")
        self.progress.resumed_from = entry.checkpoint
        return registry.claim(connection, entry)

    def _tables(self) -> list[str]:
        return [str(s.relation) if s.relation else f"({s.alias} query)"
                for s in self.transform.sources]

    def _account(self, entry: Entry) -> None:
        counters = entry.counters
        self.progress.read = counters["rows_read"]
        self.progress.written = counters["rows_written"]
        self.progress.deferred = counters["rows_deferred"]
        self.progress.rejected = counters["rows_rejected"]
        self.progress.skipped = counters["rows_skipped"]

    # ---- batches -----------------------------------------------------------------------

    def _copy(self, reader: Connection, plan: SourcePlan, target: TargetTable,
              entry: Entry) -> Entry:
        compute = RowMaker(plan.fields, plan.positions, self._empty_as_null())
        engine = deferral.DeferralEngine(
            self.transform.depends_on,
            [plan.positions[d.via] for d in self.transform.depends_on],
            target.key, {name: i for i, name in enumerate(target.columns)})
        with contextlib.ExitStack() as stack:
            copy_text = None
            if self.target.dialect.name == "postgresql" and not self.transform.depends_on:
                # Every transformed row is written, in order: the reading thread can format
                # the COPY data too (on a connection of its own, which sends nothing).
                formatting = stack.enter_context(self.target.connect()).connection
                assert formatting.driver_connection is not None
                copy_text = CopyText(formatting.driver_connection)
            batches = Prefetch(self._read(reader, plan, compute, entry.checkpoint,
                                           copy_text))
            try:
                for batch in batches:
                    entry = self._batch(plan, batch, entry, engine=engine, target=target)
                    self.on_progress(self.progress)
            finally:
                batches.close()
        return entry

    def _read(self, reader: Connection, plan: SourcePlan, compute: RowMaker,
              checkpoint: list[Any] | None, copy_text: CopyText | None) -> Iterator[_Batch]:
        """The source's batches after `checkpoint`, in key order, transformed (and formatted
        for COPY with `copy_text`, if given)."""
        while True:
            rows = fetch_all(reader, plan.batch(checkpoint, self.batch_size))
            if not rows:
                return
            checkpoint = [_plain(rows[-1][p]) for p in plan.key_positions]
            made, rejected = compute.rows(rows)
            copy_data = None
            if copy_text is not None:
                copy_data = copy_text.format([v for v in made if v is not None] if rejected
                                             else cast("list[tuple[Any, ...]]", made))
            yield _Batch(rows, made, rejected, checkpoint, copy_data)
            if len(rows) < self.batch_size:
                return

    def _batch(self, plan: SourcePlan, batch: _Batch, entry: Entry, *,
               engine: deferral.DeferralEngine, target: TargetTable) -> Entry:
        rows, made, rejected = batch.rows, batch.made, batch.rejected
        if rejected and self.transform.reject_policy is RejectPolicy.FAIL:
            index, why = rejected[0]
            key = [rows[index][p] for p in plan.key_positions]
            raise MigrationError(f"{self.transform.name}: the row with key {key} cannot be "
                                 f"transformed: {why} (reject_policy: FAIL_ROW sends such rows "
                                 "to pulsaride_dlq instead); nothing of its batch was written")
        good_rows: Sequence[Any] = rows
        good = cast("list[tuple[Any, ...]]", made)  # every row was transformed
        if rejected:
            kept = [i for i, values in enumerate(made) if values is not None]
            good_rows, good = [rows[i] for i in kept], [good[i] for i in kept]
        with self.target.begin() as connection:
            sorted_ = engine.sort(connection, good_rows, good, target.columns)
            # `ready` is in writing order (parents of this batch first): `good` as it is
            # only when that is the source order.
            in_order = sorted_.ready == list(range(len(good)))
            write_rows(connection, target, target.columns,
                       good if in_order else [good[i] for i in sorted_.ready],
                       copy_data=batch.copy_data if in_order else None)
            deferral.park(connection, self.transform.name, target.key,
                          [p for _, p in sorted_.parked])
            letters = [(rows[i], "TRANSFORM_ERROR", why) for i, why in rejected] + \
                      [(good_rows[i], "FK_MISSING", why) for i, why in sorted_.failed]
            self._dead_letters(connection, plan, target, letters)
            delta = {"rows_read": len(rows), "rows_written": len(sorted_.ready),
                     "rows_deferred": len(sorted_.parked), "rows_rejected": len(letters),
                     "rows_skipped": sorted_.skipped}
            deferral.take_turn(connection)  # before the registry row: see take_turn
            entry = registry.commit_batch(connection, entry, batch.checkpoint, delta)
            replayed = deferral.replay(connection, blocking_table=target.key)
        self.progress.read += delta["rows_read"]
        self.progress.written += delta["rows_written"] + replayed.written.get(
            self.transform.name, 0)
        self.progress.deferred += delta["rows_deferred"] - replayed.written.get(
            self.transform.name, 0)
        self.progress.rejected += delta["rows_rejected"]
        self.progress.skipped += delta["rows_skipped"]
        self.progress.replayed += replayed.total
        return entry

    def _dead_letters(self, connection: Connection, plan: SourcePlan, target: TargetTable,
                      letters: list[tuple[Any, str, str]]) -> None:
        if not letters:
            return
        moment = registry.now()
        connection.execute(DLQ.insert(), [{
            "transform": self.transform.name, "target_table": target.key,
            "reason": reason, "detail": why,
            "row_key": dumps({"key": [row[p] for p in plan.key_positions]}),
            "payload": dumps({str(ref): row[i] for ref, i in plan.positions.items()}),
            "created_at": moment}
            for row, reason, why in letters])

    def _empty_as_null(self) -> bool:
        option = self.transform.options.empty_string_as_null
        if option is not None:
            return option
        return self.source.dialect.name == "oracle"


@dataclass(frozen=True)
class _Batch:
    """Rows read from the source, their target rows, and the checkpoint after them."""

    rows: Sequence[Sequence[Any]]
    made: list[tuple[Any, ...] | None]  # None where a field failed
    rejected: list[tuple[int, str]]  # (index, why)
    checkpoint: list[Any]
    copy_data: bytes | None = None  # the transformed rows as COPY text data (writer.CopyText)


def _plain(value: Any) -> Any:
    """A checkpoint value that survives JSON (dates as ISO text, decimals as text)."""
    if isinstance(value, int | float | str) or value is None:
        return value
    return str(value) if not hasattr(value, "isoformat") else value.isoformat()


def _first_line(exc: Exception) -> str:
    original = getattr(exc, "orig", None)
    return str(original if original is not None else exc).strip().splitlines()[0]

