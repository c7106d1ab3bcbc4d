"""The cutover confidence verdict: GO / CAUTION / NO-GO per table and overall, each with the
reasons that produced it, and root-cause hints with their evidence.

The rules (documented, not magic) — per table:
  NO-GO    the copy is not DONE (missing, RUNNING, FAILED); rows still wait in
           pulsaride_deferred; the copy dead-lettered rows (TRANSFORM_ERROR, FK_MISSING) —
           source rows are missing, so no validation can PASS; the latest validation of any
           kind is INCOMPLETE or FAILED, but for a sample that failed only on formatting.
  CAUTION  no counts validation yet; a validation that passed ran before the copy finished;
           a sample validation failed only on formatting; no sample or hash validation yet;
           a sequence is behind the migrated data.
  GO       none of the above: every latest validation PASSed (the cutover gate agrees).
Overall: the worst table verdict; a pipeline run that failed or was aborted makes it NO-GO,
one that is still running or waits for approval makes it at least CAUTION.

Hints: rows that wait for parents that are missing from the source too (orphans), for a
table never migrated, for parents the filter left out, for parents that wait themselves (a
cascade), or for each other in a cycle (named once, with the fix), each with its evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, func, inspect, select

from . import registry
from .canonical import key_value_text
from .copy_status import FINISHED_COPY
from .cutover import latest_validations, sequences_behind
from .deferral import existing_keys
from .names import TableName, target_names
from .tables import DEFERRED, ensure_tables
from .transform import Transform
from .validation import (
    DEFERRED_ROWS,
    INCOMPLETE,
    PASS,
    REJECTED_ROWS,
    absent_rows,
    absent_text,
)
from .waiting import Cycle, Waiting

GO, CAUTION, NO_GO = "GO", "CAUTION", "NO-GO"
_RANK = {GO: 0, CAUTION: 1, NO_GO: 2}
SAMPLE_KEYS = 20


@dataclass
class TableHealth:
    """The verdict of one table and why."""

    target: TableName
    transform: str
    verdict: str = GO
    reasons: list[str] = field(default_factory=list)
    counters: dict[str, Any] = field(default_factory=dict)
    validations: dict[str, str] = field(default_factory=dict)
    formatting: list[str] = field(default_factory=list)  # sample differences only of format

    @property
    def table(self) -> str:
        """The table, for people."""
        return str(self.target)

    def worsen(self, verdict: str, reason: str) -> None:
        """Add a reason; the verdict becomes the worse of the two."""
        self.reasons.append(f"{verdict}: {reason}")
        if _RANK[verdict] > _RANK[self.verdict]:
            self.verdict = verdict


@dataclass
class Health:
    """The verdict of the whole migration."""

    verdict: str
    reasons: list[str]
    tables: list[TableHealth]
    hints: list[dict[str, Any]]

    def document(self) -> dict[str, Any]:
        """JSON-ready (the data of pt serve's Migration Health panel)."""
        return {"schema": "pulsaride.health/1", "verdict": self.verdict,
                "reasons": self.reasons,
                "tables": [{"table": t.table,
                            "target": {"schema": t.target.schema, "name": t.target.name},
                            "transform": t.transform, "verdict": t.verdict,
                            "reasons": t.reasons, "counters": t.counters,
                            "validations": t.validations} for t in self.tables],
                "hints": self.hints}


def assess(target: Engine, transforms: Sequence[Transform], source: Engine | None = None,
           pipeline_state: str | None = None) -> Health:
    """The verdict for `transforms` (the source, when given, lets hints look for orphans)."""
    ensure_tables(target)
    by_key = {t.target.key(): t for t in transforms}
    tables, hints = [], []
    with target.connect() as connection:
        for transform in transforms:
            tables.append(_table(connection, transform))
        hints += _deferred_hints(connection, by_key, source)
        hints += _count_hints(tables)
        hints += _sample_hints(tables)
    for table in tables:
        for behind in sequences_behind(target, table.target):
            table.worsen(CAUTION, f"sequence {behind['sequence']} is at {behind['current']}, "
                                  f"below the migrated maximum {behind['max_value']}")
            hints.append({"table": table.table, "hint": "sequences behind the data",
                          "evidence": behind,
                          "suggestion": f"pt migrate cutover {table.transform} advances it"})
    verdict = max((t.verdict for t in tables), key=_RANK.__getitem__, default=CAUTION)
    reasons = [f"{t.table}: {t.verdict}" for t in tables if t.verdict != GO]
    if not tables:
        reasons.append("CAUTION: no tables to assess (no transform files found)")
    if pipeline_state is not None:
        verdict = _pipeline(pipeline_state, verdict, reasons)
    return Health(verdict, reasons, tables, hints)


def _pipeline(state: str, verdict: str, reasons: list[str]) -> str:
    if state in ("failed", "aborted", "rejected", "interrupted"):
        reasons.append(f"NO-GO: the pipeline run is {state}")
        return NO_GO
    if state != "succeeded":
        reasons.append(f"CAUTION: the pipeline run is {state}")
        return max(verdict, CAUTION, key=_RANK.__getitem__)
    return verdict


def _table(connection: Connection, transform: Transform) -> TableHealth:
    health = TableHealth(transform.target, transform.name)
    entry = registry.read_entry(connection, transform.name)
    absent = absent_rows(connection, transform, entry)
    deferred, rejected = absent[DEFERRED_ROWS], absent[REJECTED_ROWS]
    health.counters = {"status": entry.status if entry else None, "deferred": deferred,
                       "rejected": rejected, **(entry.counters if entry else {})}
    if entry is None:
        health.worsen(NO_GO, "not migrated yet (no registry row)")
    elif entry.status not in FINISHED_COPY:
        health.worsen(NO_GO, f"the copy is {entry.status}")
    if deferred:
        health.worsen(NO_GO, f"{deferred} row(s) wait in pulsaride_deferred")
    if rejected:
        # Source rows missing from the target: no validation can PASS (ADR 0013).
        health.worsen(NO_GO, f"{rejected} row(s) were rejected to pulsaride_dlq by the copy")
    _validations(connection, transform, entry, health)
    return health


# What each kind of check is called in reasons, and what a passed but stale one says.
_CHECKS = {"counts": ("row-count", "the row counts were validated before the copy finished"),
           "hash": ("hash", "the hash check ran before the copy finished"),
           "sample": ("sample", "the sample check ran before the copy finished")}


def _validations(connection: Connection, transform: Transform, entry: registry.Entry | None,
                 health: TableHealth) -> None:
    """The latest validation of each kind, by the rules above: a table is GO only when
    every one of them PASSed after the copy finished."""
    latest = latest_validations(connection, transform.target)
    health.validations = {kind: row["status"] for kind, row in latest.items()}
    if "counts" not in latest:
        health.worsen(CAUTION, "no row-count validation yet")
    for kind in [*(k for k in _CHECKS if k in latest), *sorted(set(latest) - set(_CHECKS))]:
        row = latest[kind]
        label, stale = _CHECKS.get(kind, (kind, f"the {kind} check ran before the copy "
                                                "finished"))
        if row["status"] == PASS:
            if entry is not None and entry.finished_at is not None and \
                    _naive(row["created_at"]) < _naive(entry.finished_at):
                health.worsen(CAUTION, stale)
        elif row["status"] == INCOMPLETE:
            details = orjson.loads(row["details"])
            rows = "sampled row(s)" if kind == "sample" else "source row(s)"
            health.worsen(NO_GO, f"the latest {label} validation is INCOMPLETE: "
                                 f"{absent_text(details, rows)}")
        elif kind == "sample":
            _failed_sample(row, health)
        else:
            health.worsen(NO_GO, f"the latest {label} validation failed")
    if "sample" not in latest and "hash" not in latest:
        health.worsen(CAUTION, "no sample or hash validation yet")


def _failed_sample(sample: dict[str, Any], health: TableHealth) -> None:
    """A failed sample is only CAUTION when every difference is one of formatting."""
    details = orjson.loads(sample["details"])
    kinds = [_formatting(m) for m in details.get("mismatches", [])]
    only_format = bool(kinds) and all(k is not None for k in kinds)
    health.formatting = sorted({k for k in kinds if k is not None}) if only_format else []
    health.worsen(CAUTION if only_format else NO_GO,
                  "the latest sample validation failed" +
                  (" on formatting only" if only_format else ""))


def _formatting(mismatch: dict[str, Any]) -> str | None:
    """The formatting difference that explains a value mismatch, if that is all it is."""
    if mismatch.get("kind") != "value":
        return None
    source, target = mismatch.get("source"), mismatch.get("target")
    if {source, target} <= {"", None}:
        return "empty string vs NULL"
    if isinstance(source, str) and isinstance(target, str):
        if source.strip() == target.strip():
            return "surrounding whitespace"
        if source.lower() == target.lower():
            return "letter case"
    return None


def _naive(moment: Any) -> Any:
    return moment.replace(tzinfo=None) if getattr(moment, "tzinfo", None) else moment


# ---- root-cause hints ------------------------------------------------------------------------

CYCLE_FIX = ("load these tables without depends_on and add the foreign keys after the data: "
             "pt scaffold writes them into target-post-data.sql; or drop the depends_on that "
             "closes the cycle")


def _deferred_hints(connection: Connection, by_key: dict[str, Transform],
                    source: Engine | None) -> list[dict[str, Any]]:
    """Why the deferred rows of the assessed tables wait: one hint per cause."""
    groups = connection.execute(
        select(DEFERRED.c.target_table, DEFERRED.c.blocking_table, DEFERRED.c.blocking_key,
               func.count().label("rows"))
        .group_by(DEFERRED.c.target_table, DEFERRED.c.blocking_table, DEFERRED.c.blocking_key)
        .order_by(DEFERRED.c.target_table, DEFERRED.c.blocking_table, DEFERRED.c.blocking_key)
    ).all()
    if not groups:
        return []
    waiting = Waiting.read(connection)
    cycles = [c for c in waiting.cycles() if set(c.tables) & set(by_key)]
    hints = [_cycle_hint(cycle) for cycle in cycles]
    for child, parent, key, rows in groups:
        if child not in by_key:
            continue  # a table this assessment is not about
        keys = list(connection.execute(
            select(DEFERRED.c.key_value).distinct().where(
                DEFERRED.c.target_table == child, DEFERRED.c.blocking_table == parent,
                DEFERRED.c.blocking_key == key)
            .order_by(DEFERRED.c.key_value).limit(SAMPLE_KEYS)).scalars())
        group = _Group(child, parent, key, rows, keys)
        hints += _group_hints(connection, by_key.get(parent), source, group, waiting=waiting,
                              cycles=cycles)
    return hints


@dataclass(frozen=True)
class _Group:
    """Deferred rows of one table blocked on one parent key, with a sample of its values."""

    child: str  # TableName.key of both tables
    parent: str
    key: str
    rows: int
    keys: list[str]

    def evidence(self, **more: Any) -> dict[str, Any]:
        """The group as evidence (tables named for people)."""
        return {"table": _shown(self.child), "parent": _shown(self.parent), "key": self.key,
                "rows": self.rows, **more}


def _shown(key: str) -> str:
    return str(TableName.from_key(key))


def _cycle_hint(cycle: Cycle) -> dict[str, Any]:
    path = " → ".join(_shown(t) for t in cycle.path)
    closing = f"{_shown(cycle.path[-2])} on {_shown(cycle.path[-1])}"
    return {"table": _shown(cycle.path[0]), "tables": [_shown(t) for t in cycle.tables],
            "hint": f"cycle: {path}: {cycle.rows} deferred row(s) wait for each other",
            "evidence": {"cycle": [_shown(t) for t in cycle.path], "rows": cycle.rows,
                         "tables": [_shown(t) for t in cycle.tables]},
            "suggestion": f"{CYCLE_FIX} (here: the depends_on of {closing})"}


def _group_hints(connection: Connection, parent: Transform | None, source: Engine | None,
                 group: _Group, *, waiting: Waiting,
                 cycles: list[Cycle]) -> list[dict[str, Any]]:
    """Why the sampled rows of one deferred group wait: each cause with its evidence."""
    child, parent_name = _shown(group.child), _shown(group.parent)
    entry = registry.read_entry(connection, parent.name) if parent is not None else None
    if parent is None or entry is None or entry.status not in FINISHED_COPY:
        state = "has not run" if entry is None else f"is {entry.status}"
        return [{"table": child, "hint": f"{group.rows} row(s) wait because the migration of "
                                         f"{parent_name} {state}",
                 "evidence": group.evidence(sample_keys=group.keys),
                 "suggestion": f"run (or fix) the migration of {parent_name}"}]
    keys = group.keys
    cascade = sorted({k for k in keys if waiting.parked(group.parent, group.key, k)})
    rest = [k for k in keys if k not in set(cascade)]
    missing = _missing_in_source(source, parent, group.key, rest) if source is not None else []
    late = [k for k in rest if k not in missing] if source is not None else []
    hints = []
    if cascade:
        hints += _cascade_hint(group, cascade, cycles)
    if missing:
        hints.append({"table": child, "hint": f"orphans: {len(missing)} of {len(keys)} sampled "
                                              f"{parent_name}.{group.key} values are not in "
                                              "the source either",
                      "evidence": group.evidence(sample_missing_in_source=missing),
                      "suggestion": "choose on_missing: SKIP for them, or fix the source"})
    if late:
        hints.append({"table": child, "hint": f"{len(late)} of {len(keys)} sampled "
                                              f"{parent_name}.{group.key} values exist in the "
                                              "source but not in the target",
                      "evidence": group.evidence(sample_keys=late),
                      "suggestion": f"check the filter of {parent.name} (rows it leaves "
                                    "out), then rerun the migrations"})
    return hints


def _cascade_hint(group: _Group, cascade: list[str],
                  cycles: list[Cycle]) -> list[dict[str, Any]]:
    """Rows waiting for parents that wait themselves: said by the cycle's hint when both
    tables are in one cycle; else pointing at what the parents wait for."""
    if any({group.child, group.parent} <= set(c.tables) for c in cycles):
        return []
    around = next((c for c in cycles if group.parent in c.tables), None)
    first = f"the cycle {' → '.join(_shown(t) for t in around.path)}" if around else \
        f"the deferred rows of {_shown(group.parent)}"
    return [{"table": _shown(group.child),
             "hint": f"{len(cascade)} of {len(group.keys)} sampled parent keys are "
                     f"{_shown(group.parent)} rows that wait themselves (a cascade)",
             "evidence": group.evidence(sample_keys=cascade),
             "suggestion": f"resolve {first} first"}]


def _missing_in_source(source: Engine, parent: Transform, key: str,
                       values: list[str]) -> list[str]:
    """Of `values`, those the parent's source table does not hold either."""
    relation = parent.primary.relation
    if relation is None:
        return []
    with source.connect() as connection:
        column = _source_column(connection, parent, key)
        if column is None:
            return []
        present = existing_keys(connection, relation, column, values)
    return [v for v in values if key_value_text(v) not in present]


def _source_column(connection: Connection, parent: Transform, key: str) -> str | None:
    """The column of the parent's first source table that fills its target column `key`:
    an identity field's source, or (no fields: every column) the column named so."""
    if parent.fields is not None:
        field_ = next((f for f in parent.fields if f.name == key and len(f.sources) == 1
                       and f.expression is None
                       and f.sources[0].alias == parent.primary.alias), None)
        return field_.sources[0].column if field_ is not None else None
    relation = parent.primary.relation
    assert relation is not None
    columns = [c["name"] for c in inspect(connection).get_columns(relation.name,
                                                                  schema=relation.schema)]
    names, _ = target_names(columns, parent.options.identifiers)
    return next((c for c, name in zip(columns, names, strict=True) if name == key), None)


def _count_hints(tables: list[TableHealth]) -> list[dict[str, Any]]:
    hints = []
    for table in tables:
        rejected = table.counters.get("rejected", 0)
        if rejected and not table.counters.get("deferred") and \
                table.validations.get("counts") == INCOMPLETE:
            hints.append({"table": table.table,
                          "hint": f"the target holds {rejected} row(s) fewer than the source: "
                                  "exactly the rows rejected to pulsaride_dlq",
                          "evidence": {"rejected": rejected},
                          "suggestion": "review pulsaride_dlq; fix the rows or the transform "
                                        "and migrate them"})
    return hints


def _sample_hints(tables: list[TableHealth]) -> list[dict[str, Any]]:
    suggestions = {"empty string vs NULL": "set options.empty_string_as_null: true",
                   "surrounding whitespace": "trim the field in the transform: trim(?)",
                   "letter case": "normalise the field: normalize_text(?) or lower(?)"}
    return [{"table": table.table,
             "hint": f"every sample mismatch is a formatting difference: "
                     f"{', '.join(table.formatting)}",
             "evidence": {"differences": table.formatting},
             "suggestion": "; ".join(suggestions[k] for k in table.formatting)}
            for table in tables if table.formatting]
