"""DeferralEngine: row-level ordering (`depends_on:`), so tables can be copied in any order.

Before a batch is written, the parent keys its rows point to are looked up in the target with
one query per dependency per batch. A row whose parent is missing is, by `on_missing`:
DEFER — parked in `pulsaride_deferred` with its full payload, and written as soon as the
parent arrives; FAIL — sent to `pulsaride_dlq`; SKIP — counted and dropped. A row that
misses several parents follows the strictest of their rules: FAIL, then SKIP, then DEFER.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
from sqlalchemy import Connection, bindparam, delete, select, text, update
from sqlalchemy.exc import DBAPIError

from . import registry
from .canonical import key_value_text
from .graphs import strongly_connected
from .names import TableName
from .registry import now
from .tables import DEFERRED
from .transform import Dependency, OnMissing
from .writer import TargetTable, dumps, loads, reflect_target, write_rows

LOOKUP_CHUNK = 1000
REPLAY_BATCH = 5000
# Parked rows looked at when looking for rows that wait for each other in a circle.
CIRCLE_LIMIT = 200_000
# The PostgreSQL advisory lock that serialises replays across jobs (a constant of pt's: the
# bytes of "pt-defer").
REPLAY_LOCK = 0x70742D6465666572


@dataclass(frozen=True)
class Parked:
    """A row that waits for a parent."""

    payload: dict[str, Any]
    requirements: list[tuple[str, str, Any]]  # (parent table, key column, value)
    blocking: tuple[str, str, Any]
    source_row: Sequence[Any]


@dataclass
class Sorted:
    """A batch split by the DeferralEngine."""

    ready: list[int] = field(default_factory=list)  # rows to write now, in writing order
    parked: list[tuple[int, Parked]] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)  # index, why
    skipped: int = 0


class DeferralEngine:
    """Sorts batches of rows by whether their parents are in the target."""

    def __init__(self, dependencies: Sequence[Dependency], via_positions: Sequence[int],
                 own_table: str, own_key_positions: dict[str, int]) -> None:
        self.dependencies = list(dependencies)
        self.via_positions = list(via_positions)
        self.own_table = own_table
        # For a dependency on this very table: where the parent key sits in a target row.
        self.own_key_positions = own_key_positions

    def sort(self, connection: Connection, source_rows: Sequence[Sequence[Any]],
             target_rows: Sequence[Sequence[Any]], columns: Sequence[str]) -> Sorted:
        """Which rows can be written now; a row's parents may be earlier rows of the batch."""
        result = Sorted()
        if not self.dependencies:
            result.ready = list(range(len(target_rows)))
            return result
        present = [self._present(connection, d, [r[p] for r in source_rows])
                   for d, p in zip(self.dependencies, self.via_positions, strict=True)]
        waiting = list(range(len(target_rows)))
        while True:  # rows of this batch can be the parents of other rows of it
            still, progressed = [], False
            for i in waiting:
                if self._missing(source_rows[i], present) is None:
                    result.ready.append(i)
                    self._adopt(target_rows[i], present)
                    progressed = True
                else:
                    still.append(i)
            waiting = still
            if not progressed or not waiting:
                break
        for i in waiting:
            self._place(i, source_rows[i], target_rows[i], columns=columns, present=present,
                        result=result)
        # `ready` stays in the order rows became ready: parents of this batch before their
        # children, as a target that checks foreign keys row by row (SQLite) needs them.
        return result

    def _present(self, connection: Connection, dependency: Dependency,
                 values: Iterable[Any]) -> set[Any]:
        wanted = {key_value_text(v): v for v in values if v is not None}
        return existing_keys(connection, dependency.parent, dependency.key, wanted.values())

    def _missing(self, row: Sequence[Any], present: list[set[Any]]) -> int | None:
        for index, position in enumerate(self.via_positions):
            value = row[position]
            if value is not None and key_value_text(value) not in present[index]:
                return index
        return None

    def _adopt(self, target_row: Sequence[Any], present: list[set[Any]]) -> None:
        for index, dependency in enumerate(self.dependencies):
            position = self.own_key_positions.get(dependency.key)
            if dependency.parent.key() == self.own_table and position is not None:
                present[index].add(key_value_text(target_row[position]))

    def _place(self, i: int, row: Sequence[Any], target_row: Sequence[Any], *,
               columns: Sequence[str], present: list[set[Any]], result: Sorted) -> None:
        missing = [index for index, position in enumerate(self.via_positions)
                   if row[position] is not None
                   and key_value_text(row[position]) not in present[index]]
        policies = {self.dependencies[m].on_missing for m in missing}
        first = self.dependencies[missing[0]]
        value = row[self.via_positions[missing[0]]]
        if OnMissing.FAIL in policies:
            failing = next(self.dependencies[m] for m in missing
                           if self.dependencies[m].on_missing is OnMissing.FAIL)
            failed_value = row[self.via_positions[self.dependencies.index(failing)]]
            result.failed.append((i, f"no {failing.parent}.{failing.key} = {failed_value!r} in "
                                     "the target (foreign key)"))
        elif OnMissing.SKIP in policies:
            # Dropped by rule now, even if another parent is only late: parked, the row would
            # also wait for this one, which its rule says not to wait for (forever, if it
            # never comes).
            result.skipped += 1
        else:
            requirements = [(d.parent.key(), d.key, row[p]) for d, p in
                            zip(self.dependencies, self.via_positions, strict=True)
                            if row[p] is not None]
            result.parked.append((i, Parked(
                # str(): reflected names are str subclasses, which orjson refuses as keys.
                payload=dict(zip(map(str, columns), target_row, strict=True)),
                requirements=requirements, blocking=(first.parent.key(), first.key, value),
                source_row=row)))


def existing_keys(connection: Connection, parent: TableName, key: str,
                  values: Iterable[Any]) -> set[Any]:
    """The normalised values among `values` that `parent.key` holds (one query per chunk)."""
    wanted = list(values)
    found: set[Any] = set()
    key_column = parent.clause(key).c[key]
    for start in range(0, len(wanted), LOOKUP_CHUNK):
        chunk = wanted[start:start + LOOKUP_CHUNK]
        rows = connection.execute(select(key_column).where(key_column.in_(chunk)))
        found.update(key_value_text(r[0]) for r in rows)
    return found


def park(connection: Connection, transform: str, target: str,
         parked: Sequence[Parked]) -> None:
    """Store rows that wait for parents (in the batch's transaction)."""
    if not parked:
        return
    moment = now()
    connection.execute(DEFERRED.insert(), [{
        "transform": transform, "target_table": target,
        "blocking_table": p.blocking[0], "blocking_key": p.blocking[1],
        "key_value": str(p.blocking[2]), "payload": dumps(p.payload),
        "requirements": orjson.dumps(p.requirements, default=str).decode(),
        "deferred_at": moment, "attempts": 0} for p in parked])


@dataclass
class Replayed:
    """What a replay of deferred rows did."""

    written: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # per transform
    still_waiting: int = 0

    @property
    def total(self) -> int:
        """Rows written in all."""
        return sum(self.written.values())


def take_turn(connection: Connection) -> None:
    """Wait for this transaction's turn to replay deferred rows. A replay updates the registry
    rows of other transforms: a transaction that will replay takes its turn before it updates
    its own registry row, so two jobs never wait for each other.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: its write lock, taken now by a
    write that changes nothing. SQLite lets one writer in at a time, but the Python driver
    begins a transaction only at the first write, so the SELECT of waiting rows before it
    reads outside any transaction: two replays could both read a row, and the second would
    write it again after the first committed it (a duplicate key)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": REPLAY_LOCK})
    elif connection.dialect.name == "sqlite":
        connection.execute(_TAKE_WRITE_LOCK)


_TAKE_WRITE_LOCK = update(DEFERRED).where(DEFERRED.c.id < 0).values(attempts=DEFERRED.c.attempts)


def replay(connection: Connection, *, blocking_table: str | None = None,
           transform: str | None = None, release_cycles: bool = False) -> Replayed:
    """Write every deferred row (blocked on `blocking_table`, or of `transform`) whose parents
    have all arrived, until no more can be written; call inside a transaction.

    Rows written here may be the parents other rows wait for (a chain across tables: an order
    waits for a customer who waits for a referrer): rows blocked on every table written into
    are replayed in turn, so the chain does not stop after its first link.

    On PostgreSQL, replays of concurrent jobs take turns (a transaction-scoped advisory lock,
    held to the commit): each then sees what the ones before it committed. Without it, a job
    parking a row and a job writing its parent at the same moment could each miss the other's
    uncommitted work, and the row would wait forever."""
    take_turn(connection)
    outcome = Replayed()
    todo: list[tuple[str | None, str | None]] = [(blocking_table, transform)]
    while todo:
        table_filter, transform_filter = todo.pop()
        written = _replay_some(connection, table_filter, transform_filter, outcome)
        # Each entry added here follows rows that left pulsaride_deferred: this ends.
        todo += [(name, None) for name in sorted(written)]
        if not todo and release_cycles:
            release_cycles = False  # the set released is the largest there is: once is enough
            todo += [(name, None) for name in sorted(release_circles(connection, outcome))]
    return outcome


def release_circles(connection: Connection, outcome: Replayed) -> set[str]:
    """Write the parked rows that wait for each other in a circle (store 1 waits for its
    manager, staff 1, who waits for store 1; a row waiting for itself): every row whose
    parents are all in the target or among these rows is written, together, in one savepoint.
    Rows waiting for a parent that is nowhere stay parked. Returns the tables written into.

    A target that checks its foreign keys statement by statement refuses this (pt scaffold
    adds them after the data; DEFERRABLE INITIALLY DEFERRED keys allow it): the rows then stay
    parked and `pt health` names the cycle."""
    rows = [dict(r._mapping) for r in connection.execute(
        select(DEFERRED).order_by(DEFERRED.c.id).limit(CIRCLE_LIMIT))]
    circle = _parents_first(_closed_set(connection, rows))
    if not circle:
        return set()
    savepoint = connection.begin_nested()
    try:
        _write_ready(connection, circle, outcome)
    except (DBAPIError, psycopg.Error):  # psycopg's own: from COPY (writer.py)
        savepoint.rollback()
        return set()
    savepoint.commit()
    return {row["target_table"] for row in circle}


def _parents_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`rows` ordered by table, parents before children (the tables of a circle in any
    order), so a target checking its keys row by row takes the rows that only hang on the
    circle."""
    graph: dict[str, set[str]] = {}
    for row in rows:
        parents = graph.setdefault(row["target_table"], set())
        parents.update(r[0] for r in orjson.loads(row["requirements"]))
    # Tarjan's components come out after every component they reach: parents first.
    order = {table: rank for rank, component in enumerate(
        strongly_connected({t: sorted(p & graph.keys()) for t, p in graph.items()}))
        for table in component}
    return sorted(rows, key=lambda row: (order[row["target_table"]], row["id"]))


def _closed_set(connection: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The largest set of `rows` in which every requirement is met by the target or by a row
    of the set itself (a greatest fixed point: rows needing an absent parent drop out, and
    with them the rows that needed those)."""
    parsed = [(row, [tuple(r) for r in orjson.loads(row["requirements"])], loads(row["payload"]))
              for row in rows]
    parked_tables = {row["target_table"] for row in rows}
    if not any(r[0] in parked_tables for _row, requirements, _ in parsed for r in requirements):
        return []  # no row waits for another parked row: the replay already did what it can
    needs: dict[tuple[str, str], dict[str, Any]] = defaultdict(dict)
    for _row, requirements, _payload in parsed:
        for parent, key, value in requirements:
            needs[(parent, key)][key_value_text(value)] = value
    present = {pk: existing_keys(connection, TableName.from_key(pk[0]), pk[1], values.values())
               for pk, values in needs.items()}
    members = set(range(len(parsed)))
    while True:
        provided: dict[tuple[str, str], set[str]] = defaultdict(set)
        for index in members:
            row, _requirements, payload = parsed[index]
            for parent, key in needs:
                if parent == row["target_table"] and key in payload:
                    provided[(parent, key)].add(key_value_text(payload[key]))
        unmet = {index for index in members if any(
            key_value_text(v) not in present[(p, k)] and key_value_text(v) not in provided[(p, k)]
            for p, k, v in parsed[index][1])}
        if not unmet:
            return [parsed[i][0] for i in sorted(members)]
        members -= unmet


def _replay_some(connection: Connection, blocking_table: str | None, transform: str | None,
                 outcome: Replayed) -> set[str]:
    """One filter's worth of `replay`: every waiting row, page by page in id order (rows that
    stay blocked must not hide the rows behind them); returns the target tables written into."""
    written: set[str] = set()
    after = None
    outcome.still_waiting = 0
    while rows := _waiting(connection, blocking_table, transform, after):
        after = rows[-1]["id"]
        ready, blocked = _split(connection, rows)
        outcome.still_waiting += len(blocked)
        if blocked:
            connection.execute(_STILL_BLOCKED, [
                {"row_id": row["id"], "b_table": table_name, "b_key": key,
                 "b_value": str(value)} for row, (table_name, key, value) in blocked])
        if ready:
            _write_ready(connection, ready, outcome)
            written |= {row["target_table"] for row in ready}
    return written


_STILL_BLOCKED = update(DEFERRED).where(DEFERRED.c.id == bindparam("row_id")).values(
    blocking_table=bindparam("b_table"), blocking_key=bindparam("b_key"),
    key_value=bindparam("b_value"), attempts=DEFERRED.c.attempts + 1)


def _waiting(connection: Connection, blocking_table: str | None,
             transform: str | None, after: int | None) -> list[dict[str, Any]]:
    query = select(DEFERRED).order_by(DEFERRED.c.id).limit(REPLAY_BATCH)
    if after is not None:
        query = query.where(DEFERRED.c.id > after)
    if blocking_table is not None:
        query = query.where(DEFERRED.c.blocking_table == blocking_table)
    if transform is not None:
        query = query.where(DEFERRED.c.transform == transform)
    if connection.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return [dict(r._mapping) for r in connection.execute(query)]


def _split(connection: Connection, rows: list[dict[str, Any]]) -> tuple[
        list[dict[str, Any]], list[tuple[dict[str, Any], tuple[str, str, Any]]]]:
    needs: dict[tuple[str, str], dict[Any, Any]] = defaultdict(dict)
    parsed = []
    for row in rows:
        requirements = [tuple(r) for r in orjson.loads(row["requirements"])]
        parsed.append((row, requirements))
        for parent, key, value in requirements:
            needs[(parent, key)][key_value_text(value)] = value
    present = {pk: existing_keys(connection, TableName.from_key(pk[0]), pk[1], values.values())
               for pk, values in needs.items()}
    ready, blocked = [], []
    for row, requirements in parsed:
        missing = next(((p, k, v) for p, k, v in requirements
                        if key_value_text(v) not in present[(p, k)]), None)
        if missing is None:
            ready.append(row)
        else:
            blocked.append((row, missing))
    return ready, blocked


def _write_ready(connection: Connection, ready: list[dict[str, Any]],
                 outcome: Replayed) -> None:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in ready:
        groups[(row["transform"], row["target_table"])].append(row)
    targets: dict[tuple[str, tuple[str, ...]], TargetTable] = {}
    for (transform, target_name), members in groups.items():
        payloads = [loads(m["payload"]) for m in members]
        columns = tuple(payloads[0])
        target = targets.get((target_name, columns)) or reflect_target(
            connection, TableName.from_key(target_name), columns)
        targets[(target_name, columns)] = target
        write_rows(connection, target, target.columns, [tuple(p.values()) for p in payloads])
        connection.execute(delete(DEFERRED).where(DEFERRED.c.id.in_([m["id"] for m in members])))
        registry.adjust(connection, transform, {"rows_written": len(members),
                                                "rows_deferred": -len(members)})
        outcome.written[transform] += len(members)
