"""`pt migrate cutover`: the gate before the target takes over a table.

It refuses, with every reason, unless the registry says the table's copy is DONE, the latest
validations since then passed (counts at least), and no rows wait in pulsaride_deferred. Then
it advances the target's sequences and identity columns past the current maximum (so new rows
do not collide with migrated ones) and records the cutover.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, func, select, text

from . import registry
from .registry import DONE, now
from .tables import CUTOVER, DEFERRED, VALIDATION, ensure_tables
from .transform import Transform

CUT_OVER = "CUT_OVER"


@dataclass
class Cutover:
    """What the gate found and did."""

    transform: str
    target_table: str
    refusals: list[str] = field(default_factory=list)
    sequences: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False
    already: bool = False
    verified: bool = True

    def document(self) -> dict[str, Any]:
        """JSON-ready."""
        status = "already cut over" if self.already else "refused" if self.refusals else (
            "cut over" if self.done else "would cut over")
        return {"transform": self.transform, "target_table": self.target_table,
                "status": status, "verified": self.verified, "refusals": self.refusals,
                "sequences": self.sequences}


def cutover(engine: Engine, transform: Transform, *, verify: bool, dry_run: bool) -> Cutover:
    """Check the gate and, unless refused or dry, advance sequences and record the cutover."""
    ensure_tables(engine)
    result = Cutover(transform.name, transform.target_table, verified=verify)
    with engine.begin() as connection:
        entry = registry.read_entry(connection, transform.name)
        if entry is not None and entry.status == CUT_OVER:
            result.already = True
            return result
        if verify:
            result.refusals = refusals(connection, transform)
        elif entry is None or entry.status != DONE:
            result.refusals = ["the registry has no finished copy of this table"]
        result.sequences = _sequences(connection, transform.target_table)
        if result.refusals or dry_run:
            return result
        for sequence in result.sequences:
            connection.execute(text(sequence["statement"]))
        connection.execute(CUTOVER.insert().values(
            transform=transform.name, target_table=transform.target_table,
            sequences=orjson.dumps(result.sequences).decode(), verified=verify,
            run_id=os.environ.get("PT_RUN_ID"), by=_user(), created_at=now()))
        assert entry is not None
        registry.mark(connection, entry, CUT_OVER)
        result.done = True
    return result


def refusals(connection: Connection, transform: Transform) -> list[str]:
    """Every reason the table may not be cut over (empty: it may)."""
    reasons = []
    entry = registry.read_entry(connection, transform.name)
    if entry is None:
        reasons.append(f"the registry has no copy of {transform.name}: run pt migrate run")
    elif entry.status != DONE:
        reasons.append(f"the copy of {transform.name} is {entry.status}, not DONE")
    finished = entry.finished_at if entry is not None else None
    latest = latest_validations(connection, transform.target_table)
    if "counts" not in latest:
        reasons.append(f"no row-count validation of {transform.target_table}: run "
                       f"pt validate counts --table {transform.target_table}")
    for kind, row in sorted(latest.items()):
        if finished is not None and _aware(row["created_at"]) < _aware(finished):
            reasons.append(f"the latest {kind} validation predates the end of the copy: "
                           "run it again")
        elif row["status"] != "PASS":
            reasons.append(f"the latest {kind} validation of {transform.target_table} failed "
                           f"(pt validate {kind} --table {transform.target_table})")
    waiting = connection.execute(select(func.count()).select_from(DEFERRED).where(
        DEFERRED.c.transform == transform.name)).scalar_one()
    if waiting:
        reasons.append(f"{waiting} row(s) of {transform.target_table} still wait in "
                       "pulsaride_deferred (see pt migrate deferred)")
    return reasons


def latest_validations(connection: Connection, table: str) -> dict[str, dict[str, Any]]:
    """The most recent result of each kind of validation of `table`."""
    rows = connection.execute(select(VALIDATION).where(VALIDATION.c.target_table == table)
                              .order_by(VALIDATION.c.created_at, VALIDATION.c.id)).mappings()
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        latest[row["kind"]] = dict(row)
    return latest


def _sequences(connection: Connection, table: str) -> list[dict[str, Any]]:
    """The sequences behind the table's columns, and the statement that advances each."""
    if connection.dialect.name != "postgresql":
        return []
    found = []
    columns = connection.execute(text(
        "SELECT a.attname, pg_get_serial_sequence(:t, a.attname) "
        "FROM pg_attribute a WHERE a.attrelid = CAST(:t AS regclass) AND a.attnum > 0 "
        "AND NOT a.attisdropped"), {"t": table}).all()
    for name, sequence in columns:
        if sequence is None:
            continue
        maximum = connection.execute(text(f'SELECT max("{name}") FROM {table}')).scalar()
        current = connection.execute(text(f"SELECT last_value FROM {sequence}")).scalar()
        target = int(maximum) if maximum is not None else None
        statement = (f"SELECT setval('{sequence}', {target}, true)" if target is not None
                     else f"SELECT setval('{sequence}', 1, false)")
        found.append({"column": name, "sequence": sequence, "current": current,
                      "max_value": target, "statement": statement,
                      "behind": target is not None and (current or 0) < target})
    return found


def sequences_behind(engine: Engine, table: str) -> list[dict[str, Any]]:
    """Sequences of `table` whose next value would collide with migrated rows."""
    with engine.connect() as connection:
        return [s for s in _sequences(connection, table) if s["behind"]]


def _aware(moment: Any) -> Any:
    """Times from databases that drop the zone (SQLite) are UTC."""
    if isinstance(moment, datetime) and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid-{os.getuid()}"
