"""The cutover confidence verdict: GO / CAUTION / NO-GO per table and overall, each with the
reasons that produced it, and root-cause hints with their evidence.

The rules (documented, not magic) — per table:
  NO-GO    the copy is not DONE (missing, RUNNING, FAILED); the latest counts or hash
           validation FAILED; rows still wait in pulsaride_deferred; a sample validation
           FAILED with a difference that is not only formatting.
  CAUTION  no counts validation since the copy finished; rows were rejected to the DLQ;
           a sample validation failed only on formatting; no sample or hash validation yet;
           a sequence is behind the migrated data.
  GO       none of the above.
Overall: the worst table verdict; a pipeline run that failed or was aborted makes it NO-GO,
one that is still running or waits for approval makes it at least CAUTION.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, func, inspect, select

from . import registry
from .cutover import CUT_OVER, latest_validations, sequences_behind
from .deferral import existing_keys, norm
from .names import target_names
from .registry import DONE
from .tables import DEFERRED, DLQ, ensure_tables
from .transform import Transform
from .validation import rejected_by_copy
from .writer import loads

GO, CAUTION, NO_GO = "GO", "CAUTION", "NO-GO"
_RANK = {GO: 0, CAUTION: 1, NO_GO: 2}
SAMPLE_KEYS = 20


@dataclass
class TableHealth:
    """The verdict of one table and why."""

    table: str
    transform: str
    verdict: str = GO
    reasons: list[str] = field(default_factory=list)
    counters: dict[str, Any] = field(default_factory=dict)
    validations: dict[str, str] = field(default_factory=dict)
    formatting: list[str] = field(default_factory=list)  # sample differences only of format

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
                "tables": [{"table": t.table, "transform": t.transform, "verdict": t.verdict,
                            "reasons": t.reasons, "counters": t.counters,
                            "validations": t.validations} for t in self.tables],
                "hints": self.hints}


def assess(target: Engine, transforms: Sequence[Transform], source: Engine | None = None,
           pipeline_state: str | None = None) -> Health:
    """The verdict for `transforms` (the source, when given, lets hints look for orphans)."""
    ensure_tables(target)
    by_table = {t.target_table: t for t in transforms}
    tables, hints = [], []
    with target.connect() as connection:
        for transform in transforms:
            tables.append(_table(connection, transform))
        hints += _deferred_hints(connection, by_table, source)
        hints += _count_hints(tables)
        hints += _sample_hints(tables)
    for table in tables:
        for behind in sequences_behind(target, table.table):
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
    health = TableHealth(transform.target_table, transform.name)
    entry = registry.read_entry(connection, transform.name)
    deferred = _count(connection, DEFERRED, transform.name)
    rejected = _count(connection, DLQ, transform.name, *rejected_by_copy(entry))
    health.counters = {"status": entry.status if entry else None, "deferred": deferred,
                       "rejected": rejected, **(entry.counters if entry else {})}
    if entry is None:
        health.worsen(NO_GO, "not migrated yet (no registry row)")
    elif entry.status not in (DONE, CUT_OVER):
        health.worsen(NO_GO, f"the copy is {entry.status}")
    if deferred:
        health.worsen(NO_GO, f"{deferred} row(s) wait in pulsaride_deferred")
    if rejected:
        health.worsen(CAUTION, f"{rejected} row(s) were rejected to pulsaride_dlq")
    _validations(connection, transform, entry, health)
    return health


def _validations(connection: Connection, transform: Transform, entry: registry.Entry | None,
                 health: TableHealth) -> None:
    latest = latest_validations(connection, transform.target_table)
    health.validations = {kind: row["status"] for kind, row in latest.items()}
    counts = latest.get("counts")
    if counts is None:
        health.worsen(CAUTION, "no row-count validation yet")
    elif counts["status"] != "PASS":
        health.worsen(NO_GO, "the latest row-count validation failed")
    elif entry is not None and entry.finished_at is not None and \
            _naive(counts["created_at"]) < _naive(entry.finished_at):
        health.worsen(CAUTION, "the row counts were validated before the copy finished")
    hashed = latest.get("hash")
    if hashed is not None and hashed["status"] != "PASS":
        health.worsen(NO_GO, "the latest hash validation failed")
    sample = latest.get("sample")
    if sample is not None and sample["status"] != "PASS":
        details = orjson.loads(sample["details"])
        kinds = [_formatting(m) for m in details.get("mismatches", [])]
        only_format = bool(kinds) and all(k is not None for k in kinds)
        health.formatting = sorted({k for k in kinds if k is not None}) if only_format else []
        health.worsen(CAUTION if only_format else NO_GO,
                      "the latest sample validation failed" +
                      (" on formatting only" if only_format else ""))
    if sample is None and hashed is None:
        health.worsen(CAUTION, "no sample or hash validation yet")


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


def _count(connection: Connection, relation: Any, transform: str, *extra: Any) -> int:
    query = select(func.count()).select_from(relation).where(relation.c.transform == transform)
    for condition in extra:
        query = query.where(condition)
    return int(connection.execute(query).scalar_one())


def _naive(moment: Any) -> Any:
    return moment.replace(tzinfo=None) if getattr(moment, "tzinfo", None) else moment


# ---- root-cause hints ------------------------------------------------------------------------


def _deferred_hints(connection: Connection, by_table: dict[str, Transform],
                    source: Engine | None) -> list[dict[str, Any]]:
    groups = connection.execute(
        select(DEFERRED.c.target_table, DEFERRED.c.blocking_table, DEFERRED.c.blocking_key,
               func.count().label("rows"))
        .group_by(DEFERRED.c.target_table, DEFERRED.c.blocking_table, DEFERRED.c.blocking_key)
    ).all()
    hints: list[dict[str, Any]] = []
    for child, parent, key, rows in groups:
        if child not in by_table:
            continue  # a table this assessment is not about
        keys = list(connection.execute(
            select(DEFERRED.c.key_value).distinct().where(
                DEFERRED.c.target_table == child, DEFERRED.c.blocking_table == parent)
            .order_by(DEFERRED.c.key_value).limit(SAMPLE_KEYS)).scalars())
        hints += _group_hints(connection, by_table.get(parent), source,
                              {"table": child, "parent": parent, "key": key, "rows": rows},
                              keys)
    return hints


def _group_hints(connection: Connection, parent: Transform | None, source: Engine | None,
                 group: dict[str, Any], keys: list[str]) -> list[dict[str, Any]]:
    """Why the sampled rows of one deferred group wait: each cause with its evidence."""
    child, parent_table, key, rows = (group["table"], group["parent"], group["key"],
                                      group["rows"])
    entry = registry.read_entry(connection, parent.name) if parent is not None else None
    if parent is None or entry is None or entry.status not in (DONE, CUT_OVER):
        state = "has not run" if entry is None else f"is {entry.status}"
        return [{"table": child, "hint": f"{rows} row(s) wait because the migration of "
                                         f"{parent_table} {state}",
                 "evidence": {**group, "sample_keys": keys},
                 "suggestion": f"run (or fix) the migration of {parent_table}"}]
    cascade = _parked_parents(connection, parent_table, key, keys)
    rest = [k for k in keys if norm(k) not in set(cascade)]
    missing = _missing_in_source(source, parent, key, rest) if source is not None else []
    late = [k for k in rest if k not in missing] if source is not None else []
    hints = []
    if cascade:
        hints.append({"table": child, "hint": f"{len(cascade)} of {len(keys)} sampled parent "
                                              f"keys are {parent_table} rows that wait "
                                              "themselves (a cascade)",
                      "evidence": {**group, "sample_keys": cascade},
                      "suggestion": f"resolve the deferred rows of {parent_table} first"})
    if missing:
        hints.append({"table": child, "hint": f"orphans: {len(missing)} of {len(keys)} sampled "
                                              f"{parent_table}.{key} values are not in the "
                                              "source either",
                      "evidence": {**group, "sample_missing_in_source": missing},
                      "suggestion": "choose on_missing: SKIP for them, or fix the source"})
    if late:
        hints.append({"table": child, "hint": f"{len(late)} of {len(keys)} sampled "
                                              f"{parent_table}.{key} values exist in the "
                                              "source but not in the target",
                      "evidence": {**group, "sample_keys": late},
                      "suggestion": f"check the filter of {parent.name} (rows it leaves "
                                    "out), then rerun the migrations"})
    return hints


def _parked_parents(connection: Connection, parent: str, key: str,
                    values: list[str]) -> list[str]:
    """Of `values`, the parent keys that wait in pulsaride_deferred themselves."""
    wanted = {norm(v) for v in values}
    payloads = connection.execute(select(DEFERRED.c.payload).where(
        DEFERRED.c.target_table == parent)).scalars()
    parked = {norm(loads(p).get(key)) for p in payloads}
    return sorted(wanted & parked)


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
    return [v for v in values if norm(v) not in present]


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
        if rejected and table.validations.get("counts") == "PASS":
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
