"""`pt preflight`: before any data moves, is the migration of each table possible?

Both databases answer; the source tables and columns exist; the target table exists with a
compatible column (type, length, precision, nullability) for every field and a primary key;
the parents and keys of `depends_on` and the `expect.key_columns` exist. Every problem comes
with the table, the column, both types and a suggested fix.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Table, func, select
from sqlalchemy.exc import SQLAlchemyError

from pulsaride.engine.errors import PulsarideError

from .compat import fits, shape, target_shape
from .database import SOURCE, TARGET, describe, open_engine, open_source, resolve_url
from .grammar import Call, parse
from .graphs import strongly_connected
from .held import held, problems, wider_type
from .names import TableName, match_name, quote
from .relations import NoSuchTable, declared_type, reflect_table
from .source import SourcePlan, plan_source
from .transform import Field, OnMissing, Transform
from .typemap import postgres_type

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Finding:
    """One incompatibility (error: blocks the migration) or doubt (warning)."""

    severity: str
    table: str
    problem: str
    column: str | None = None
    source_type: str | None = None
    target_type: str | None = None
    fix: str | None = None

    def text(self) -> str:
        """One line for people."""
        where = f"{self.table}.{self.column}" if self.column else self.table
        types = f" ({self.source_type} -> {self.target_type})" if self.source_type or \
            self.target_type else ""
        fix = f"; fix: {self.fix}" if self.fix else ""
        return f"{self.severity}: {where}{types}: {self.problem}{fix}"


@dataclass
class Report:
    """The findings of one transform file."""

    transform: str
    target_table: str
    findings: list[Finding]
    fields_checked: int = 0

    @property
    def blocked(self) -> bool:
        """True if any finding blocks the migration."""
        return any(f.severity == ERROR for f in self.findings)

    def document(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"transform": self.transform, "target_table": self.target_table,
                "status": "blocked" if self.blocked else "ok",
                "fields_checked": self.fields_checked,
                "findings": [asdict(f) for f in self.findings]}


def preflight(transform: Transform, source_url: str | None, target_url: str | None) -> Report:
    """Check one transform against both databases."""
    report = Report(transform.name, transform.target_table, [])
    engines: list[Engine] = []
    try:
        source = _engine(SOURCE, source_url, transform.source_url, report, engines)
        target = _engine(TARGET, target_url, transform.target_url, report, engines)
        if source is None or target is None:
            return report
        with source.connect() as reader, target.connect() as writer:
            plan = _plan(reader, transform, report)
            table = _target_table(writer, transform, report)
            if plan is not None and table is not None:
                _check_fields(reader, plan, table, transform=transform, report=report,
                              dialect=writer.dialect)
                if reader.dialect.name == "sqlite":  # declared types SQLite does not enforce
                    _check_held(reader, plan, table, transform=transform, report=report,
                                dialect=writer.dialect)
                _check_keys(writer, table, transform, report)
    finally:
        for engine in engines:
            engine.dispose()
    return report


def _engine(side: Any, flag: str | None, from_file: str | None, report: Report,
            engines: list[Engine]) -> Engine | None:
    url = resolve_url(side, flag, from_file)
    engine = open_source(url) if side is SOURCE else open_engine(url)
    engines.append(engine)
    try:
        with engine.connect():
            return engine
    except SQLAlchemyError as exc:
        report.findings.append(Finding(ERROR, report.target_table,
                                       f"the {side.side} database {describe(url)} does not "
                                       f"answer: {_first_line(exc)}"))
        return None


def _plan(reader: Connection, transform: Transform, report: Report) -> SourcePlan | None:
    try:
        return plan_source(reader, transform)
    except PulsarideError as exc:
        report.findings.append(Finding(ERROR, transform.target_table, f"source: {exc}",
                                       fix="correct the transform file or the source URL"))
        return None


def _target_table(writer: Connection, transform: Transform, report: Report) -> Table | None:
    table = _reflect(writer, transform.target)
    if table is None:
        report.findings.append(Finding(
            ERROR, transform.target_table, "the target table does not exist",
            fix="create it, e.g. pt migrate schema target-schema.sql (from pt scaffold)"))
    return table


def _check_fields(reader: Connection, plan: SourcePlan, table: Table, *,
                  transform: Transform, report: Report, dialect: Any) -> None:
    columns = {c.name: c for c in table.columns}
    for field in plan.fields:
        report.fields_checked += 1
        name = match_name(field.name, columns)
        column = columns[name] if name is not None else None
        if column is None:
            expected = _expected_type(field, plan)
            report.findings.append(Finding(
                ERROR, transform.target_table, "the target has no such column",
                column=field.name, source_type=expected,
                fix=f"ALTER TABLE {transform.target.quoted} ADD COLUMN {quote(field.name)} "
                    f"{expected or 'text'}"))
            continue
        actual = _spelled(column, dialect)
        _check_type(field, plan, actual, transform, report)
        _check_nulls(reader, field, plan, target_nullable=bool(column.nullable),
                     transform=transform, report=report)


_RESULT_TYPES = {"to_date": "date", "to_timestamp": "timestamp", "to_boolean": "boolean",
                 "to_int": "bigint", "to_long": "bigint", "concat": "text"}
_SAME_TYPE = {"upper", "lower", "trim", "normalize_text", "coalesce", "nullif"}


def _expected_type(field: Field, plan: SourcePlan) -> str | None:
    """The type a field's values have: target_type, the source column's, or what the
    expression's outer function returns."""
    if field.target_type:
        return field.target_type
    declared = plan.declared_types.get(field.name)
    if declared:
        return postgres_type(declared).pg_type
    if field.expression is None:
        return None
    node = parse(field.expression)
    if isinstance(node, Call) and node.name in _RESULT_TYPES:
        return _RESULT_TYPES[node.name]
    if isinstance(node, Call) and node.name in _SAME_TYPE and field.sources:
        source = plan.source_types.get(str(field.sources[0]))
        return postgres_type(source).pg_type if source else None
    return None


def _check_type(field: Field, plan: SourcePlan, actual: str, transform: Transform,
                report: Report) -> None:
    expected = _expected_type(field, plan)
    if expected is None:
        report.findings.append(Finding(
            WARNING, transform.target_table, "the type of an expression cannot be checked",
            column=field.name, target_type=actual, fix="add target_type to the field"))
        return
    verdict = fits(shape(postgres_type(expected).pg_type), target_shape(actual))
    if verdict.severity == "ok":
        return
    source = plan.declared_types.get(field.name) or expected
    report.findings.append(Finding(
        verdict.severity, transform.target_table, verdict.problem, column=field.name,
        source_type=source, target_type=actual,
        fix=f"ALTER TABLE {transform.target.quoted} ALTER COLUMN {quote(field.name)} TYPE "
            f"{postgres_type(expected).pg_type}" if verdict.severity == ERROR else None))


def _check_nulls(reader: Connection, field: Field, plan: SourcePlan, *, target_nullable: bool,
                 transform: Transform, report: Report) -> None:
    if target_nullable or not plan.nullable.get(field.name, False):
        return
    ref = field.sources[0]
    column = plan.columns[plan.positions[ref]]
    query = select(func.count()).select_from(plan.from_clause).where(column.is_(None))
    if plan.condition is not None:
        query = query.where(plan.condition)
    nulls = reader.execute(query).scalar_one()
    severity = ERROR if nulls else WARNING
    problem = (f"{nulls} source row(s) have NULL here, the target column is NOT NULL" if nulls
               else "the source allows NULL, the target column is NOT NULL (none now)")
    report.findings.append(Finding(
        severity, transform.target_table, problem, column=field.name,
        source_type=f"{plan.declared_types.get(field.name, '')} NULL".strip(),
        target_type="NOT NULL",
        fix=f"fill the NULLs with an expression (coalesce(?, ...)) or ALTER TABLE "
            f"{transform.target.quoted} ALTER COLUMN {quote(field.name)} DROP NOT NULL"))


def _check_held(reader: Connection, plan: SourcePlan, table: Table, *, transform: Transform,
                report: Report, dialect: Any) -> None:
    """What the source really holds against each target column (one query)."""
    types = {c.name: _spelled(c, dialect) for c in table.columns}
    for name, values in held(reader, plan, plan.fields).items():
        column = match_name(name, types)
        if column is None:
            continue
        for problem in problems(values, types[column]):
            report.findings.append(Finding(
                ERROR, transform.target_table, problem, column=name,
                source_type=plan.declared_types.get(name), target_type=types[column],
                fix=f"ALTER TABLE {transform.target.quoted} ALTER COLUMN {quote(column)} TYPE "
                    f"{wider_type(values, types[column])}"))


def _check_keys(writer: Connection, table: Table, transform: Transform, report: Report) -> None:
    if not list(table.primary_key):
        key = ", ".join(quote(k) for k in transform.key) if transform.key else "<key columns>"
        report.findings.append(Finding(
            ERROR, transform.target_table, "the target table has no primary key",
            fix=f"ALTER TABLE {transform.target.quoted} ADD PRIMARY KEY ({key})"))
    names = [c.name for c in table.columns]
    for column in transform.expect.get("key_columns", []):
        if match_name(str(column), names) is None:
            report.findings.append(Finding(
                ERROR, transform.target_table, "expect.key_columns names a missing column",
                column=str(column), fix="correct expect.key_columns"))
    for dependency in transform.depends_on:
        parent = _reflect(writer, dependency.parent)
        if parent is None:
            report.findings.append(Finding(
                ERROR, transform.target_table, f"depends_on parent table {dependency.table} "
                "does not exist in the target", fix="create it before this migration"))
        elif match_name(dependency.key, [c.name for c in parent.columns]) is None:
            report.findings.append(Finding(
                ERROR, transform.target_table, f"depends_on key {dependency.table}."
                f"{dependency.key} does not exist in the target", column=dependency.key,
                fix="correct depends_on.key"))


def _reflect(connection: Connection, name: TableName) -> Table | None:
    try:
        return reflect_table(connection, name)
    except NoSuchTable:
        return None


def _spelled(column: Any, dialect: Any) -> str:
    return declared_type(column, dialect)


def _first_line(exc: SQLAlchemyError) -> str:
    original = getattr(exc, "orig", None)
    return str(original if original is not None else exc).strip().splitlines()[0]


def run_preflight(transforms: list[Transform], source_url: str | None,
                  target_url: str | None) -> list[Report]:
    """Check every transform; a database error in one does not hide the others."""
    reports = []
    circles = deferral_circles(transforms)
    for transform in transforms:
        try:
            report = preflight(transform, source_url, target_url)
        except SQLAlchemyError as exc:
            report = Report(transform.name, transform.target_table, [Finding(
                ERROR, transform.target_table, f"database error: {_first_line(exc)}")])
        report.findings += circles.get(transform.name, [])
        reports.append(report)
    return reports


def deferral_circles(transforms: list[Transform]) -> dict[str, list[Finding]]:
    """Tables whose `depends_on: DEFER` rules wait for each other in a circle (store waits
    for staff, staff for store), as a warning on each of their transforms."""
    by_table = {t.target.key(): t for t in transforms}
    graph = {key: sorted({d.parent.key() for d in t.depends_on
                          if d.on_missing is OnMissing.DEFER and d.parent.key() in by_table})
             for key, t in by_table.items()}
    findings: dict[str, list[Finding]] = {}
    for component in strongly_connected(graph):
        if len(component) < 2:
            continue  # a table referring to itself: its rows are written as parents arrive
        path = " -> ".join(str(TableName.from_key(k)) for k in [*component, component[0]])
        for key in component:
            transform = by_table[key]
            findings.setdefault(transform.name, []).append(Finding(
                WARNING, transform.target_table,
                f"depends_on DEFER rules form a cycle ({path}): rows that refer to each other "
                "in a circle are written together at the end of the copies, which the target "
                "allows only if the foreign keys between these tables are DEFERRABLE or not "
                "there yet; otherwise they wait in pulsaride_deferred",
                fix="create the foreign keys after the data (pt scaffold writes them into "
                    "target-post-data.sql) and drop these depends_on, or make the keys "
                    "DEFERRABLE INITIALLY DEFERRED"))
    return findings
