"""`pt validate counts | sample | hash`: did every row arrive, intact?

counts — source rows (through the transform's filter) against target rows, with the rows that
  are absent for a known reason counted apart: parked in pulsaride_deferred, dead-lettered by
  the copy (pulsaride_dlq), or skipped by the transform's own `on_missing: SKIP` (registry).
sample — the same rows on both sides, chosen by a deterministic hash of the canonical key
  (never TABLESAMPLE, which picks different rows on each side), compared field by field after
  canonicalisation; mismatches are reported and written to pulsaride_dlq.
hash — every row: per bucket (hash of the key), a count and an order-independent 64-bit sum of
  canonical row hashes on each side; only buckets that differ are read again key by key.

The verdict of each (ADR 0013): a check is never PASS while source rows are missing from
the target.
  FAIL        a difference nobody explains (a missing, extra, duplicated or changed row; for
              counts: target != source - deferred - rejected - skipped, beyond the tolerance
              `expect.count_tolerance`, default 0)
  INCOMPLETE  no such difference, but rows are missing because they wait in
              pulsaride_deferred or were dead-lettered by the copy (TRANSFORM_ERROR,
              FK_MISSING): for counts and hash, any such row of the table; for sample, a
              sampled one
  PASS        every source row is in the target, but for rows `on_missing: SKIP` dropped
              by rule (as a filter would; reported as skipped)

Source rows are compared as the transform makes them (expressions applied), so a check
compares what the target should hold with what it holds.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import orjson
from sqlalchemy import Connection, Engine, Text, cast, func, select, type_coerce
from sqlalchemy.types import NullType

from pulsaride.engine.errors import BadInputError

from .canonical import (
    MASK64,
    ColumnRule,
    key_text,
    key_value_text,
    row_converter,
    row_hash,
    rule_for,
    sampled,
)
from .database import SOURCE, TARGET, open_engine, open_source, resolve_url
from .deferral import existing_keys
from .forked import Forked
from .names import TableName, match_name
from .registry import Entry, now, read_entry
from .rows import RowMaker
from .source import SourcePlan, plan_source
from .tables import DEFERRED, DLQ, VALIDATION, ensure_tables
from .transform import OnMissing, Transform
from .writer import TargetTable, dumps, loads, reflect_target

T = TypeVar("T")
RowsRead = Callable[[int], None]  # source rows read so far
Progress = Callable[[str, int], None]  # phase, source rows read so far in it


def _phase(on_progress: Progress | None, phase: str) -> RowsRead | None:
    if on_progress is None:
        return None
    return lambda read: on_progress(phase, read)

PASS, INCOMPLETE, FAIL = "PASS", "INCOMPLETE", "FAIL"
STATUSES = (PASS, INCOMPLETE, FAIL)  # from best to worst
REJECTED = ("TRANSFORM_ERROR", "FK_MISSING")  # dead letters of the copy (pulsaride_dlq)
# Why a source row may be absent from the target: the first two make a check INCOMPLETE.
DEFERRED_ROWS, REJECTED_ROWS, SKIPPED_ROWS = "deferred", "rejected", "skipped"
READ_BATCH = 20_000
MAX_REPORTED = 1000


def worst(statuses: Iterable[str]) -> str:
    """The worst of `statuses` (PASS when there are none); an unknown status is the worst."""
    rank = {status: index for index, status in enumerate(STATUSES)}
    return max(statuses, key=lambda s: rank.get(s, len(STATUSES)), default=PASS)


def verdict(unexplained: bool, absent: dict[str, int]) -> str:
    """FAIL on an unexplained difference, else INCOMPLETE while rows wait or were
    dead-lettered, else PASS (rows skipped by rule do not count against it)."""
    if unexplained:
        return FAIL
    return INCOMPLETE if absent.get(DEFERRED_ROWS) or absent.get(REJECTED_ROWS) else PASS


def absent_text(details: dict[str, Any], rows: str = "source row(s)") -> str:
    """Why a check is INCOMPLETE, for people: '3 source row(s) are not in the target: 2 wait
    in pulsaride_deferred (pt migrate deferred), 1 rejected to pulsaride_dlq by the copy'."""
    deferred, rejected = details.get(DEFERRED_ROWS, 0), details.get(REJECTED_ROWS, 0)
    reasons = [*([f"{deferred:,} wait in pulsaride_deferred (pt migrate deferred)"]
                 if deferred else []),
               *([f"{rejected:,} rejected to pulsaride_dlq by the copy"] if rejected else [])]
    return f"{deferred + rejected:,} {rows} are not in the target: {', '.join(reasons)}"


@dataclass
class Mismatch:
    """A difference between what the target should hold and what it holds."""

    key: list[Any]
    field: str  # a column, or "(row)" for a missing, extra or duplicated row
    source: Any
    target: Any
    kind: str  # value | missing | extra | duplicate


@dataclass
class Result:
    """The outcome of one check of one table."""

    kind: str
    target: TableName
    transform: str
    status: str
    details: dict[str, Any]
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def table(self) -> str:
        """The table, for people."""
        return str(self.target)

    def document(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"kind": self.kind, "table": self.table,
                "target": {"schema": self.target.schema, "name": self.target.name},
                "transform": self.transform, "status": self.status, **self.details,
                "mismatches": [asdict(m) for m in self.mismatches[:MAX_REPORTED]],
                "mismatches_total": len(self.mismatches)}


@dataclass(frozen=True)
class Sides:
    """Open connections to both databases for one transform."""

    transform: Transform
    source: Engine
    target: Engine

    @classmethod
    def open(cls, transform: Transform, source_url: str | None,
             target_url: str | None) -> Sides:
        """Engines for the transform's databases."""
        return cls(transform,
                   open_source(resolve_url(SOURCE, source_url, transform.source_url)),
                   open_engine(resolve_url(TARGET, target_url, transform.target_url)))

    def close(self) -> None:
        """Release both engines."""
        self.source.dispose()
        self.target.dispose()


# ---- counts --------------------------------------------------------------------------------


def validate_counts(sides: Sides) -> Result:
    """Source rows against target rows, with deferred, rejected and skipped rows apart."""
    transform = sides.transform
    ensure_tables(sides.target)
    with sides.source.connect() as reader:
        plan = plan_source(reader, transform)
        source_rows = reader.execute(plan.count()).scalar_one()
    with sides.target.connect() as connection:
        target = reflect_target(connection, transform.target, [f.name for f in plan.fields])
        target_rows = connection.execute(
            select(func.count()).select_from(_relation(target))).scalar_one()
        entry = read_entry(connection, transform.name)
        absent = absent_rows(connection, transform, entry)
    expected = source_rows - sum(absent.values())
    tolerance = int(transform.expect.get("count_tolerance", 0))
    delta = target_rows - expected
    status = verdict(abs(delta) > tolerance, absent)
    return Result("counts", transform.target, transform.name, status, {
        "source_rows": source_rows, "target_rows": target_rows, **absent,
        "expected_target_rows": expected, "delta": delta, "tolerance": tolerance,
        "registry_status": entry.status if entry else None})


def absent_rows(connection: Connection, transform: Transform,
                entry: Entry | None) -> dict[str, int]:
    """The table's source rows missing from the target for a known reason, by reason."""
    return {DEFERRED_ROWS: _count(connection, DEFERRED, transform.name),
            REJECTED_ROWS: _count(connection, DLQ, transform.name, *rejected_by_copy(entry)),
            SKIPPED_ROWS: entry.counters["rows_skipped"] if entry else 0}


def rejected_by_copy(entry: Entry | None) -> list[Any]:
    """Conditions on pulsaride_dlq for the rows the table's current copy rejected: not the
    VALIDATION_MISMATCH letters of checks, nor the letters of a copy `--force` replaced."""
    conditions: list[Any] = [DLQ.c.reason.in_(REJECTED)]
    if entry is not None and entry.started_at is not None:
        conditions.append(DLQ.c.created_at >= entry.started_at)
    return conditions


def _count(connection: Connection, relation: Any, transform: str, *extra: Any) -> int:
    query = select(func.count()).select_from(relation).where(relation.c.transform == transform)
    for condition in extra:
        query = query.where(condition)
    return int(connection.execute(query).scalar_one())


# ---- the two sides as canonical rows ---------------------------------------------------------


@dataclass(frozen=True)
class TargetRowRules:
    """Where the key is in a target row, and how each column is canonicalised."""

    target: TargetTable
    key_positions: tuple[int, ...]
    rules: tuple[ColumnRule, ...]
    canonical: Callable[[Sequence[Any]], list[Any]] = field(init=False, compare=False)
    _key_canonical: Callable[[Sequence[Any]], list[Any]] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        # canonical_row(values, self.rules), specialised once per column and value type.
        object.__setattr__(self, "canonical", row_converter(self.rules))
        object.__setattr__(self, "_key_canonical",
                           row_converter([self.rules[i] for i in self.key_positions]))

    def key(self, canonical: Sequence[Any]) -> list[Any]:
        """The canonical key of a canonical row."""
        return [canonical[i] for i in self.key_positions]

    def key_of(self, values: Sequence[Any]) -> list[Any]:
        """The canonical key of a row not canonicalised (= key(canonical(values)), for the
        key columns only: choosing rows by key needs no more)."""
        return self._key_canonical([values[i] for i in self.key_positions])


def _row_rules(connection: Connection, transform: Transform, plan: SourcePlan,
            connection_dialect: str) -> TargetRowRules:
    names = [f.name for f in plan.fields]
    target = reflect_target(connection, transform.target, names)
    key = list(transform.key or transform.expect.get("key_columns") or target.primary_key)
    if not key:
        raise ValidationSetupError(
            f"{transform.name}: no key to match rows by: set expect.key_columns, or give the "
            "target table a primary key")
    # Exact names; a hand-written key may differ in case where that is unambiguous.
    matched = [match_name(k, target.columns) for k in key]
    missing = [k for k, m in zip(key, matched, strict=True) if m is None]
    if missing:
        raise ValidationSetupError(f"{transform.name}: key column {', '.join(missing)} is not "
                                   f"among the fields ({', '.join(target.columns)})")
    empty = empty_as_null(transform, connection_dialect)
    rules = tuple(rule_for(name, target.types.get(name, ""), empty) for name in target.columns)
    return TargetRowRules(target, tuple(target.columns.index(m) for m in matched if m is not None),
                  rules)


class ValidationSetupError(BadInputError):
    """A check that cannot be set up (no key to match rows by)."""


def empty_as_null(transform: Transform, source_dialect: str) -> bool:
    """Whether '' counts as NULL: the transform's option, else true for Oracle sources."""
    option = transform.options.empty_string_as_null
    return option if option is not None else source_dialect == "oracle"


def source_rows(reader: Connection, transform: Transform, plan: SourcePlan,
                on_rows: RowsRead | None = None) -> Iterator[tuple[Sequence[Any], tuple[Any, ...]]]:
    """(source row, target row as the transform makes it), in source key order; rows the
    transform rejects are left out (they are counted as rejected). `on_rows` hears how many
    source rows have been read, batch by batch."""
    maker = RowMaker(plan.fields, plan.positions, empty_as_null(transform, reader.dialect.name))
    checkpoint: list[Any] | None = None
    read = 0
    while True:
        rows = reader.execute(plan.batch(checkpoint, READ_BATCH)).all()
        if not rows:
            return
        read += len(rows)
        if on_rows is not None:
            on_rows(read)
        made, _ = maker.rows(rows)
        for row, values in zip(rows, made, strict=True):
            if values is not None:
                yield row, values
        if len(rows) < READ_BATCH:
            return
        checkpoint = [rows[-1][p] for p in plan.key_positions]


def target_rows(connection: Connection, layout: TargetRowRules) -> Iterator[tuple[Any, ...]]:
    """Every target row (columns in field order), streamed."""
    relation = _relation(layout.target)
    query = select(*_as_read(relation, layout.target))
    result = connection.execution_options(stream_results=True, yield_per=READ_BATCH).execute(
        query)
    for row in result:
        yield tuple(row)


def _as_read(relation: Any, target: TargetTable) -> list[Any]:
    """The target's columns as the check reads them: as the driver gives them, but JSON as
    its text (psycopg reads the jsonb document `null` as None, which is SQL NULL)."""
    return [cast(relation.c[c], Text) if target.types.get(c, "").upper().startswith("JSON")
            else type_coerce(relation.c[c], NullType()) for c in target.columns]


def _relation(target: TargetTable) -> Any:
    return target.table.clause(*target.columns)


# ---- sample ------------------------------------------------------------------------------------


def validate_sample(sides: Sides, fraction: float, seed: int,
                    on_progress: Progress | None = None) -> Result:
    """The same deterministic sample of keys on both sides, compared field by field."""
    transform = sides.transform
    ensure_tables(sides.target)
    with sides.source.connect() as reader, sides.target.connect() as connection:
        plan = plan_source(reader, transform)
        layout = _row_rules(connection, transform, plan, reader.dialect.name)
        wanted: dict[str, tuple[list[Any], Sequence[Any], tuple[Any, ...]]] = {}
        for row, values in source_rows(reader, transform, plan,
                                       _phase(on_progress, "reading the source")):
            key = layout.key_of(values)
            if sampled(key, fraction, seed):
                wanted[key_text(key)] = (layout.canonical(values), row, values)
        found = _target_by_key(connection, layout, [v[2] for v in wanted.values()])
        check = _Check(reader, connection, transform, plan, layout)
        absent = dict.fromkeys((DEFERRED_ROWS, REJECTED_ROWS, SKIPPED_ROWS), 0)
        mismatches = _compare(check, wanted, found, absent)
    _to_dlq(sides.target, transform, layout, mismatches)
    # Only the sampled rows count here: a sampled row that waits makes it INCOMPLETE.
    return Result("sample", transform.target, transform.name,
                  verdict(bool(mismatches), absent), {
                      "fraction": fraction, "seed": seed, "sampled_rows": len(wanted),
                      "fields_compared": len(wanted) * len(layout.target.columns),
                      "rows_with_mismatches": len({key_text(m.key) for m in mismatches}),
                      **absent}, mismatches)


def _target_by_key(connection: Connection, layout: TargetRowRules,
                   rows: list[tuple[Any, ...]]) -> dict[str, list[list[Any]]]:
    """Target rows (canonical) whose key is among the keys of `rows`, by key text."""
    relation = _relation(layout.target)
    names = [layout.target.columns[i] for i in layout.key_positions]
    found: dict[str, list[list[Any]]] = defaultdict(list)
    columns = _as_read(relation, layout.target)
    for start in range(0, len(rows), 500):
        chunk = rows[start:start + 500]
        if len(names) == 1:
            condition = relation.c[names[0]].in_([r[layout.key_positions[0]] for r in chunk])
        else:
            from sqlalchemy import tuple_  # noqa: PLC0415 - only composite keys need it

            condition = tuple_(*(relation.c[n] for n in names)).in_(
                [tuple(r[i] for i in layout.key_positions) for r in chunk])
        for row in connection.execute(select(*columns).where(condition)):
            canon = layout.canonical(tuple(row))
            found[key_text(layout.key(canon))].append(canon)
    return found


@dataclass(frozen=True)
class _Check:
    """One check's connections and plans."""

    reader: Connection
    connection: Connection
    transform: Transform
    plan: SourcePlan
    layout: TargetRowRules


def _compare(check: _Check, wanted: dict[str, tuple[list[Any], Sequence[Any], tuple[Any, ...]]],
             found: dict[str, list[list[Any]]], absent: dict[str, int]) -> list[Mismatch]:
    """The differences of the sampled rows; sampled rows missing for a known reason are
    counted in `absent` instead."""
    layout = check.layout
    mismatches: list[Mismatch] = []
    absence = _Absence(check)
    for text_key, (canon, row, _values) in wanted.items():
        key = layout.key(canon)
        targets = found.get(text_key, [])
        if not targets:
            reason = absence.reason(row, text_key)
            if reason is None:
                mismatches.append(Mismatch(key, "(row)", "present", None, "missing"))
            else:
                absent[reason] += 1
            continue
        if len(targets) > 1:
            mismatches.append(Mismatch(key, "(row)", 1, len(targets), "duplicate"))
        for name, mine, theirs in zip(layout.target.columns, canon, targets[0], strict=True):
            if mine != theirs:
                mismatches.append(Mismatch(key, name, mine, theirs, "value"))
    return mismatches


class _Absence:
    """Why a source row is missing from the target, if for a known reason: it waits in
    pulsaride_deferred (its key is among the parked rows), the copy dead-lettered it, or
    `on_missing: SKIP` dropped it (a SKIP parent is still missing). A row that should be
    parked but is not there either is a difference, not a reason."""

    def __init__(self, check: _Check) -> None:
        self.check = check
        transform, connection = check.transform, check.connection
        entry = read_entry(connection, transform.name)
        # Rows the current copy dead-lettered; not the VALIDATION_MISMATCH letters of earlier
        # checks (those report a difference, they do not explain one).
        letters = connection.execute(select(DLQ.c.row_key).where(
            DLQ.c.transform == transform.name, DLQ.c.row_key.is_not(None),
            *rejected_by_copy(entry))).scalars()
        self.rejected = {orjson.dumps([key_value_text(v) for v in orjson.loads(k)["key"]]).decode()
                         for k in letters}
        self._parked: set[str] | None = None

    def reason(self, row: Sequence[Any], text_key: str) -> str | None:
        """DEFERRED_ROWS, REJECTED_ROWS, SKIPPED_ROWS or None (not explained) for the source
        `row` whose canonical key is `text_key`."""
        if text_key in self.parked():
            return DEFERRED_ROWS
        plan = self.check.plan
        key = orjson.dumps([key_value_text(row[p]) for p in plan.key_positions]).decode()
        if key in self.rejected:
            return REJECTED_ROWS
        for dependency in self.check.transform.depends_on:
            value = row[plan.positions[dependency.via]]
            if dependency.on_missing is not OnMissing.SKIP or value is None:
                continue
            present = existing_keys(self.check.connection, dependency.parent, dependency.key,
                                    [value])
            if key_value_text(value) not in present:
                return SKIPPED_ROWS
        return None

    def parked(self) -> set[str]:
        """The canonical keys (as text) of the transform's rows in pulsaride_deferred, read
        once, when a missing row first needs explaining."""
        if self._parked is None:
            layout = self.check.layout
            payloads = self.check.connection.execute(select(DEFERRED.c.payload).where(
                DEFERRED.c.transform == self.check.transform.name)).scalars()
            self._parked = set()
            for payload in payloads:
                values = loads(payload)
                self._parked.add(key_text(layout.key_of(
                    [values.get(c) for c in layout.target.columns])))
        return self._parked


def _to_dlq(engine: Engine, transform: Transform, layout: TargetRowRules,
            mismatches: list[Mismatch]) -> None:
    if not mismatches:
        return
    moment = now()
    with engine.begin() as connection:
        connection.execute(DLQ.insert(), [{
            "transform": transform.name, "target_table": layout.target.key,
            "reason": "VALIDATION_MISMATCH",
            "detail": f"{m.kind}: {m.field}: source {m.source!r}, target {m.target!r}",
            "row_key": dumps({"key": m.key}),
            "payload": dumps({"field": m.field, "source": m.source, "target": m.target}),
            "created_at": moment} for m in mismatches[:MAX_REPORTED]])


# ---- hash --------------------------------------------------------------------------------------


def validate_hash(sides: Sides, buckets: int, on_progress: Progress | None = None) -> Result:
    """Per-bucket counts and hash sums on both sides; differing buckets read key by key."""
    transform = sides.transform
    ensure_tables(sides.target)
    with sides.source.connect() as reader, sides.target.connect() as connection:
        plan = plan_source(reader, transform)
        layout = _row_rules(connection, transform, plan, reader.dialect.name)
        # The target side in a forked process, the source side here: both at once.
        with Forked(lambda: _on_target(sides.target, lambda c: _bucket_sums(
                (layout.canonical(r) for r in target_rows(c, layout)), layout, buckets))
                ) as target_side:
            mine = _bucket_sums(
                (layout.canonical(v) for _, v in source_rows(
                    reader, transform, plan, _phase(on_progress, "hashing both sides"))),
                layout, buckets)
            theirs = target_side.result()
        differing = sorted(b for b in set(mine) | set(theirs) if mine.get(b) != theirs.get(b))
        check = _Check(reader, connection, transform, plan, layout)
        mismatches = _drill_down(check, sides.target, set(differing), buckets,
                                 _phase(on_progress, "reading the differing buckets")) \
            if differing else []
        # Like counts: any row of the table that waits or was dead-lettered, found in a
        # differing bucket or not (rows the transform rejects are not hashed at all).
        absent = absent_rows(connection, transform, read_entry(connection, transform.name))
    return Result("hash", transform.target, transform.name,
                  verdict(bool(mismatches), absent), {
                      "buckets": buckets, "source_rows": sum(c for c, _ in mine.values()),
                      "target_rows": sum(c for c, _ in theirs.values()), **absent,
                      "differing_buckets": len(differing)}, mismatches)


def _bucket(key: list[Any], buckets: int) -> int:
    # Only spreads keys over buckets, the same way on both sides: CRC-32 is enough, and
    # cheaper than the row hash.
    return zlib.crc32(orjson.dumps(key)) % buckets


def _bucket_sums(rows: Iterator[list[Any]], layout: TargetRowRules,
                 buckets: int) -> dict[int, tuple[int, int]]:
    sums: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for canon in rows:
        entry = sums[_bucket(layout.key(canon), buckets)]
        entry[0] += 1
        entry[1] = (entry[1] + row_hash(canon)) & MASK64
    return {b: (c, h) for b, (c, h) in sums.items()}


def _on_target(target: Engine, work: Callable[[Connection], T]) -> T:
    """`work` on a connection of its own to `target`, in a forked process (the inherited
    connections are the parent's: left alone)."""
    target.dispose(close=False)
    with target.connect() as connection:
        return work(connection)


def _target_in(connection: Connection, layout: TargetRowRules, differing: set[int],
               buckets: int) -> dict[str, list[list[Any]]]:
    """The canonical target rows of the `differing` buckets, by key text."""
    theirs: dict[str, list[list[Any]]] = defaultdict(list)
    for row in target_rows(connection, layout):
        key = layout.key_of(row)
        if _bucket(key, buckets) in differing:
            theirs[key_text(key)].append(layout.canonical(row))
    return dict(theirs)


def _drill_down(check: _Check, target: Engine, differing: set[int], buckets: int,
                on_rows: RowsRead | None) -> list[Mismatch]:
    layout = check.layout
    mine: dict[str, tuple[list[Any], Sequence[Any]]] = {}
    with Forked(lambda: _on_target(
            target, lambda c: _target_in(c, layout, differing, buckets))) as target_side:
        for row, values in source_rows(check.reader, check.transform, check.plan, on_rows):
            key = layout.key_of(values)
            if _bucket(key, buckets) in differing:
                mine[key_text(key)] = (layout.canonical(values), row)
        theirs = target_side.result()
    absence = _Absence(check)
    mismatches: list[Mismatch] = []
    for text_key in sorted(set(mine) | set(theirs)):
        ours, targets = mine.get(text_key), theirs.get(text_key, [])
        key = orjson.loads(text_key)
        if ours is None:
            mismatches.append(Mismatch(key, "(row)", None, "present", "extra"))
        elif not targets:
            if absence.reason(ours[1], text_key) is None:
                mismatches.append(Mismatch(key, "(row)", "present", None, "missing"))
        else:
            if len(targets) > 1:
                mismatches.append(Mismatch(key, "(row)", 1, len(targets), "duplicate"))
            mismatches += [Mismatch(key, name, a, b, "value") for name, a, b in
                           zip(layout.target.columns, ours[0], targets[0], strict=True) if a != b]
    return mismatches


# ---- keeping results ---------------------------------------------------------------------------


def record(engine: Engine, result: Result, run_id: str | None) -> None:
    """Keep the result in pulsaride_validation (the history of checks)."""
    ensure_tables(engine)
    with engine.begin() as connection:
        connection.execute(VALIDATION.insert().values(
            target_table=result.target.key(), transform=result.transform, kind=result.kind,
            status=result.status, details=dumps(result.document()), run_id=run_id,
            created_at=now()))
