"""`pt validate counts | sample | hash`: did every row arrive, intact?

counts — source rows (through the transform's filter) against target rows, with the rows that
  are legitimately absent accounted for: parked in pulsaride_deferred, sent to pulsaride_dlq,
  or skipped (registry). PASS when target = source - deferred - rejected - skipped (± the
  tolerance `expect.count_tolerance`, default 0).
sample — the same rows on both sides, chosen by a deterministic hash of the canonical key
  (never TABLESAMPLE, which picks different rows on each side), compared field by field after
  canonicalisation; mismatches are reported and written to pulsaride_dlq.
hash — every row: per bucket (hash of the key), a count and an order-independent 64-bit sum of
  canonical row hashes on each side; only buckets that differ are read again key by key.

Source rows are compared as the transform makes them (expressions applied), so a check
compares what the target should hold with what it holds.
"""

from __future__ import annotations

import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import orjson
from sqlalchemy import Connection, Engine, func, select, type_coerce
from sqlalchemy.types import NullType

from .canonical import MASK64, ColumnRule, key_text, row_converter, row_hash, rule_for, sampled
from .database import SOURCE, TARGET, open_engine, open_source, resolve_url
from .deferral import existing_keys, norm
from .forked import Forked
from .registry import Entry, now, read_entry
from .rows import RowMaker
from .source import SourcePlan, plan_source
from .tables import DEFERRED, DLQ, VALIDATION, ensure_tables
from .transform import OnMissing, Transform
from .writer import TargetTable, dumps, reflect_target

T = TypeVar("T")
RowsRead = Callable[[int], None]  # source rows read so far
Progress = Callable[[str, int], None]  # phase, source rows read so far in it


def _phase(on_progress: Progress | None, phase: str) -> RowsRead | None:
    if on_progress is None:
        return None
    return lambda read: on_progress(phase, read)

PASS, FAIL = "PASS", "FAIL"
REJECTED = ("TRANSFORM_ERROR", "FK_MISSING")  # dead letters of the copy (pulsaride_dlq)
READ_BATCH = 20_000
MAX_REPORTED = 1000


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
    table: str
    transform: str
    status: str
    details: dict[str, Any]
    mismatches: list[Mismatch] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"kind": self.kind, "table": self.table, "transform": self.transform,
                "status": self.status, **self.details,
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
    """Source rows against target rows, accounting for deferred, rejected and skipped rows."""
    transform = sides.transform
    ensure_tables(sides.target)
    with sides.source.connect() as reader:
        plan = plan_source(reader, transform)
        source_rows = reader.execute(plan.count()).scalar_one()
    with sides.target.connect() as connection:
        target = reflect_target(connection, transform.target, [f.name for f in plan.fields])
        target_rows = connection.execute(
            select(func.count()).select_from(_relation(target))).scalar_one()
        deferred = _count(connection, DEFERRED, transform.name)
        entry = read_entry(connection, transform.name)
        rejected = _count(connection, DLQ, transform.name, *rejected_by_copy(entry))
    skipped = entry.counters["rows_skipped"] if entry else 0
    expected = source_rows - deferred - rejected - skipped
    tolerance = int(transform.expect.get("count_tolerance", 0))
    delta = target_rows - expected
    status = PASS if abs(delta) <= tolerance else FAIL
    return Result("counts", transform.target_table, transform.name, status, {
        "source_rows": source_rows, "target_rows": target_rows, "deferred": deferred,
        "rejected": rejected, "skipped": skipped, "expected_target_rows": expected,
        "delta": delta, "tolerance": tolerance,
        "registry_status": entry.status if entry else None})


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
class Layout:
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


def _layout(connection: Connection, transform: Transform, plan: SourcePlan,
            connection_dialect: str) -> Layout:
    names = [f.name for f in plan.fields]
    target = reflect_target(connection, transform.target, names)
    key = list(transform.key or transform.expect.get("key_columns") or target.primary_key)
    if not key:
        raise ValidationSetupError(
            f"{transform.name}: no key to match rows by: set expect.key_columns, or give the "
            "target table a primary key")
    lower = [c.lower() for c in target.columns]
    missing = [k for k in key if k.lower() not in lower]
    if missing:
        raise ValidationSetupError(f"{transform.name}: key column {', '.join(missing)} is not "
                                   f"among the fields ({', '.join(target.columns)})")
    empty = empty_as_null(transform, connection_dialect)
    rules = tuple(rule_for(name, target.types.get(name, ""), empty) for name in target.columns)
    return Layout(target, tuple(lower.index(k.lower()) for k in key), rules)


class ValidationSetupError(ValueError):
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


def target_rows(connection: Connection, layout: Layout) -> Iterator[tuple[Any, ...]]:
    """Every target row (columns in field order), streamed."""
    relation = _relation(layout.target)
    query = select(*(type_coerce(relation.c[c], NullType()) for c in layout.target.columns))
    result = connection.execution_options(stream_results=True, yield_per=READ_BATCH).execute(
        query)
    for row in result:
        yield tuple(row)


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
        layout = _layout(connection, transform, plan, reader.dialect.name)
        wanted: dict[str, tuple[list[Any], Sequence[Any], tuple[Any, ...]]] = {}
        for row, values in source_rows(reader, transform, plan,
                                       _phase(on_progress, "reading the source")):
            key = layout.key_of(values)
            if sampled(key, fraction, seed):
                wanted[key_text(key)] = (layout.canonical(values), row, values)
        found = _target_by_key(connection, layout, [v[2] for v in wanted.values()])
        check = _Check(reader, connection, transform, plan, layout)
        mismatches = _compare(check, wanted, found)
    _to_dlq(sides.target, transform, layout, mismatches)
    status = PASS if not mismatches else FAIL
    return Result("sample", transform.target_table, transform.name, status, {
        "fraction": fraction, "seed": seed, "sampled_rows": len(wanted),
        "fields_compared": len(wanted) * len(layout.target.columns),
        "rows_with_mismatches": len({key_text(m.key) for m in mismatches})}, mismatches)


def _target_by_key(connection: Connection, layout: Layout,
                   rows: list[tuple[Any, ...]]) -> dict[str, list[list[Any]]]:
    """Target rows (canonical) whose key is among the keys of `rows`, by key text."""
    relation = _relation(layout.target)
    names = [layout.target.columns[i] for i in layout.key_positions]
    found: dict[str, list[list[Any]]] = defaultdict(list)
    columns = [type_coerce(relation.c[c], NullType()) for c in layout.target.columns]
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
    layout: Layout


def _compare(check: _Check, wanted: dict[str, tuple[list[Any], Sequence[Any], tuple[Any, ...]]],
             found: dict[str, list[list[Any]]]) -> list[Mismatch]:
    layout = check.layout
    mismatches: list[Mismatch] = []
    absent = _Absence(check.connection, check.transform, check.plan)
    for text_key, (canon, row, _values) in wanted.items():
        key = layout.key(canon)
        targets = found.get(text_key, [])
        if not targets:
            if not absent.explained(row):
                mismatches.append(Mismatch(key, "(row)", "present", None, "missing"))
            continue
        if len(targets) > 1:
            mismatches.append(Mismatch(key, "(row)", 1, len(targets), "duplicate"))
        for name, mine, theirs in zip(layout.target.columns, canon, targets[0], strict=True):
            if mine != theirs:
                mismatches.append(Mismatch(key, name, mine, theirs, "value"))
    return mismatches


class _Absence:
    """Why a source row may rightly be missing from the target: parked, dead-lettered, or
    skipped because a parent was missing."""

    def __init__(self, connection: Connection, transform: Transform, plan: SourcePlan) -> None:
        self.connection = connection
        self.transform = transform
        self.plan = plan
        # Rows the copy dead-lettered; not the VALIDATION_MISMATCH letters of earlier checks
        # (those report a difference, they do not explain one).
        letters = connection.execute(select(DLQ.c.row_key).where(
            DLQ.c.transform == transform.name, DLQ.c.row_key.is_not(None),
            DLQ.c.reason.in_(REJECTED))).scalars()
        self.rejected = {orjson.dumps([norm(v) for v in orjson.loads(k)["key"]]).decode()
                         for k in letters}

    def explained(self, row: Sequence[Any]) -> bool:
        source_key = orjson.dumps([norm(row[p]) for p in self.plan.key_positions]).decode()
        if source_key in self.rejected:
            return True
        for dependency in self.transform.depends_on:
            value = row[self.plan.positions[dependency.via]]
            if value is None:
                continue
            present = existing_keys(self.connection, dependency.parent, dependency.key, [value])
            if norm(value) not in present and dependency.on_missing in (OnMissing.SKIP,
                                                                         OnMissing.DEFER):
                return True
        return False


def _to_dlq(engine: Engine, transform: Transform, layout: Layout,
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
        layout = _layout(connection, transform, plan, reader.dialect.name)
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
    status = PASS if not mismatches else FAIL
    return Result("hash", transform.target_table, transform.name, status, {
        "buckets": buckets, "source_rows": sum(c for c, _ in mine.values()),
        "target_rows": sum(c for c, _ in theirs.values()),
        "differing_buckets": len(differing),
        "explained_differences": "rows parked, dead-lettered or skipped are not differences"},
        mismatches)


def _bucket(key: list[Any], buckets: int) -> int:
    # Only spreads keys over buckets, the same way on both sides: CRC-32 is enough, and
    # cheaper than the row hash.
    return zlib.crc32(orjson.dumps(key)) % buckets


def _bucket_sums(rows: Iterator[list[Any]], layout: Layout,
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


def _target_in(connection: Connection, layout: Layout, differing: set[int],
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
    absent = _Absence(check.connection, check.transform, check.plan)
    mismatches: list[Mismatch] = []
    for text_key in sorted(set(mine) | set(theirs)):
        ours, targets = mine.get(text_key), theirs.get(text_key, [])
        key = orjson.loads(text_key)
        if ours is None:
            mismatches.append(Mismatch(key, "(row)", None, "present", "extra"))
        elif not targets:
            if not absent.explained(ours[1]):
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
            target_table=result.table, transform=result.transform, kind=result.kind,
            status=result.status, details=dumps(result.document()), run_id=run_id,
            created_at=now()))


def summary_counts(results: Sequence[Result]) -> Counter[str]:
    """How many results per status."""
    return Counter(r.status for r in results)
