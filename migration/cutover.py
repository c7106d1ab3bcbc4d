"""`pt migrate cutover`: the gate before the target takes over a table.

It refuses, with every reason, unless the registry says the table's copy is DONE, the latest
validations since then PASSed (counts at least; INCOMPLETE and FAIL refuse), no rows wait in
pulsaride_deferred and the copy dead-lettered none. Then it advances the target's sequences
(serial and identity columns) that are behind the migrated maximum, so new rows do not
collide with migrated ones, and records the cutover.

Names of tables, columns and sequences are data: they reach SQL only through Core constructs
(SQLAlchemy quotes them) or as bound values; nothing here formats SQL text.
"""

from __future__ import annotations

import getpass
import os
import shlex
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, Text, cast, column, func, select, table
from sqlalchemy.dialects.postgresql import REGCLASS

from . import registry
from .copy_status import CUT_OVER, DONE
from .names import TableName
from .registry import now
from .tables import CUTOVER, DEFERRED, DLQ, VALIDATION, ensure_tables
from .transform import Transform
from .validation import INCOMPLETE, PASS, absent_text, rejected_by_copy

# PostgreSQL's catalogs, as Core constructs (read with bound values only).
_PG_CLASS = table("pg_class", column("oid"), column("relname"), column("relnamespace"),
                  column("relkind"), schema="pg_catalog")
_PG_ATTRIBUTE = table("pg_attribute", column("attrelid"), column("attname"), column("attnum"),
                      column("attisdropped"), schema="pg_catalog")
_PG_NAMESPACE = table("pg_namespace", column("oid"), column("nspname"), schema="pg_catalog")
_PG_SEQUENCE = table("pg_sequence", column("seqrelid"), column("seqincrement"),
                     schema="pg_catalog")


@dataclass
class Cutover:
    """What the gate found and did."""

    transform: str
    target: TableName
    refusals: list[str] = field(default_factory=list)
    sequences: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False
    already: bool = False
    verified: bool = True

    @property
    def target_table(self) -> str:
        """The table, for people."""
        return str(self.target)

    def document(self) -> dict[str, Any]:
        """JSON-ready."""
        status = "already cut over" if self.already else "refused" if self.refusals else (
            "cut over" if self.done else "would cut over")
        return {"transform": self.transform, "target_table": self.target_table,
                "target": {"schema": self.target.schema, "name": self.target.name},
                "status": status, "verified": self.verified, "refusals": self.refusals,
                "sequences": self.sequences}


def cutover(engine: Engine, transform: Transform, *, verify: bool, dry_run: bool) -> Cutover:
    """Check the gate and, unless refused or dry, advance sequences and record the cutover."""
    ensure_tables(engine)
    result = Cutover(transform.name, transform.target, verified=verify)
    with engine.begin() as connection:
        entry = registry.read_entry(connection, transform.name)
        if entry is not None and entry.status is CUT_OVER:
            result.already = True
            return result
        if verify:
            result.refusals = refusals(connection, transform)
        elif entry is None or entry.status is not DONE:
            result.refusals = ["the registry has no finished copy of this table"]
        result.sequences = sequences(connection, transform.target)
        if result.refusals or dry_run:
            return result
        for sequence in result.sequences:
            if sequence["behind"]:
                _advance(connection, sequence)
        connection.execute(CUTOVER.insert().values(
            transform=transform.name, target_table=transform.target.key(),
            sequences=orjson.dumps(result.sequences).decode(), verified=verify,
            run_id=os.environ.get("PT_RUN_ID"), by=_user(), created_at=now()))
        assert entry is not None
        registry.cut_over(connection, entry)
        result.done = True
    return result


def refusals(connection: Connection, transform: Transform) -> list[str]:
    """Every reason the table may not be cut over (empty: it may)."""
    reasons = []
    name = str(transform.target)
    entry = registry.read_entry(connection, transform.name)
    if entry is None:
        reasons.append(f"the registry has no copy of {transform.name}: run pt migrate run")
    elif entry.status is not DONE:
        reasons.append(f"the copy of {transform.name} is {entry.status}, not DONE")
    finished = entry.finished_at if entry is not None else None
    latest = latest_validations(connection, transform.target)
    if "counts" not in latest:
        reasons.append(f"no row-count validation of {name}: run "
                       f"pt validate counts --table {shlex.quote(name)}")
    for kind, row in sorted(latest.items()):
        if finished is not None and _aware(row["created_at"]) < _aware(finished):
            reasons.append(f"the latest {kind} validation predates the end of the copy: "
                           "run it again")
        elif row["status"] == INCOMPLETE:
            details = orjson.loads(row["details"])
            reasons.append(f"the latest {kind} validation of {name} is INCOMPLETE: "
                           f"{absent_text(details, _rows(kind))}")
        elif row["status"] != PASS:
            reasons.append(f"the latest {kind} validation of {name} failed "
                           f"(pt validate {kind} --table {shlex.quote(name)})")
    reasons += _missing_rows(connection, transform, entry)
    return reasons


def _missing_rows(connection: Connection, transform: Transform,
                  entry: registry.Entry | None) -> list[str]:
    """Rows of the table that are not in the target: waiting, or dead-lettered by the copy
    (whatever the validations said when they ran)."""
    name = str(transform.target)
    reasons = []
    waiting = connection.execute(select(func.count()).select_from(DEFERRED).where(
        DEFERRED.c.transform == transform.name)).scalar_one()
    if waiting:
        reasons.append(f"{waiting} row(s) of {name} still wait in pulsaride_deferred "
                       "(see pt migrate deferred)")
    rejected = connection.execute(select(func.count()).select_from(DLQ).where(
        DLQ.c.transform == transform.name, *rejected_by_copy(entry))).scalar_one()
    if rejected:
        reasons.append(f"{rejected} row(s) of {name} were rejected to pulsaride_dlq by the "
                       "copy: fix them or the transform, and copy them")
    return reasons


def _rows(kind: str) -> str:
    return "sampled row(s)" if kind == "sample" else "source row(s)"


def latest_validations(connection: Connection,
                       target: TableName) -> dict[str, dict[str, Any]]:
    """The most recent result of each kind of validation of the table `target`."""
    rows = connection.execute(select(VALIDATION)
                              .where(VALIDATION.c.target_table == target.key())
                              .order_by(VALIDATION.c.created_at, VALIDATION.c.id)).mappings()
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        latest[row["kind"]] = dict(row)
    return latest


# ---- sequences ---------------------------------------------------------------------------------


def sequences(connection: Connection, target: TableName) -> list[dict[str, Any]]:
    """The sequences behind the table's serial and identity columns: where each stands,
    the migrated maximum, and whether it is behind it (its next value would collide)."""
    if connection.dialect.name != "postgresql":
        return []
    # The table is found by its exact name and schema as bound values (without a schema: the
    # one the search path shows). pg_get_serial_sequence gets the table as PostgreSQL itself
    # spells it (regclass as text) and the column's name as it is: nothing is quoted here.
    attribute = _PG_ATTRIBUTE
    spelled = cast(cast(attribute.c.attrelid, REGCLASS), Text)
    where = [_PG_CLASS.c.relname == target.name,
             _PG_NAMESPACE.c.nspname == target.schema if target.schema is not None
             else func.pg_table_is_visible(_PG_CLASS.c.oid)]
    owned = connection.execute(
        select(attribute.c.attname, func.pg_get_serial_sequence(spelled, attribute.c.attname))
        .select_from(attribute.join(_PG_CLASS, _PG_CLASS.c.oid == attribute.c.attrelid)
                     .join(_PG_NAMESPACE, _PG_NAMESPACE.c.oid == _PG_CLASS.c.relnamespace))
        .where(*where, _PG_CLASS.c.relkind.in_(("r", "p")), attribute.c.attnum > 0,
               attribute.c.attisdropped.is_(False))
        .order_by(attribute.c.attnum)).all()
    return [_sequence(connection, target, str(name), sequence)
            for name, sequence in owned if sequence is not None]


def _sequence(connection: Connection, target: TableName, name: str,
              spelled: str) -> dict[str, Any]:
    """One column's sequence (`spelled` as PostgreSQL names it, quoted as needed)."""
    schema, relname, increment = connection.execute(
        select(_PG_NAMESPACE.c.nspname, _PG_CLASS.c.relname, _PG_SEQUENCE.c.seqincrement)
        .select_from(_PG_CLASS.join(_PG_NAMESPACE, _PG_CLASS.c.relnamespace ==
                                    _PG_NAMESPACE.c.oid)
                     .join(_PG_SEQUENCE, _PG_SEQUENCE.c.seqrelid == _PG_CLASS.c.oid))
        .where(_PG_CLASS.c.oid == cast(spelled, REGCLASS))).one()
    state = table(relname, column("last_value"), column("is_called"), schema=schema)
    current, called = connection.execute(select(state.c.last_value, state.c.is_called)).one()
    relation = target.clause(name)
    maximum = _whole(connection.execute(select(func.max(relation.c[name]))).scalar())
    following = current + increment if called else current  # what nextval() gives next
    behind = maximum is not None and increment > 0 and following <= maximum
    return {"column": name, "sequence": spelled, "current": current, "max_value": maximum,
            "behind": behind,
            "action": f"advance {spelled} to {maximum} (next value {maximum + increment})"
            if behind and maximum is not None else None}


def _advance(connection: Connection, sequence: dict[str, Any]) -> None:
    """setval(sequence, migrated maximum, true): the next value follows the maximum."""
    connection.execute(select(func.setval(cast(sequence["sequence"], REGCLASS),
                                          sequence["max_value"], True)))


def _whole(value: Any) -> int | None:
    """The maximum of a column as a whole number (None: no rows, or not a number)."""
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def sequences_behind(engine: Engine, target: TableName) -> list[dict[str, Any]]:
    """Sequences of the table `target` whose next value would collide with migrated rows."""
    with engine.connect() as connection:
        return [s for s in sequences(connection, target) if s["behind"]]


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
