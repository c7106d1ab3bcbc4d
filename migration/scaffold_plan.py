"""The target of a scaffold, decided once and rendered by every writer (DDL, transforms,
pipeline, review): exact target names for every table, column, type, index and constraint,
each column's type and conversion, and everything that needs a person's review.

Names follow the chosen rule (`names.target_names`): columns are unique per table; tables,
enum types, indexes and constraints share one namespace per schema (PostgreSQL keeps
tables, types and indexes in one catalog, and pt names constraints apart too, so no two
generated names can meet).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .names import IdentifierRule, Renamed, apply_rule, file_stem, literal, quote, target_names
from .scaffold_checks import json_valid_column, members_check, translate_check
from .scaffold_columns import ColumnChoice, TypeOptions, choose
from .scaffold_defaults import Default, translate
from .scaffold_graph import Edge, Graph, closing_edges, cycles, in_cycle
from .scaffold_model import (
    SourceColumn,
    SourceForeignKey,
    SourceIndex,
    SourceObject,
    SourceSchema,
    SourceTable,
)

_ACTIONS = ("CASCADE", "SET NULL", "SET DEFAULT", "RESTRICT", "NO ACTION")


@dataclass(frozen=True)
class ReviewItem:
    """Something the scaffold could not carry over as it is: a person decides."""

    kind: str  # view | trigger | procedure | function | index | default | check | ...
    table: str | None
    name: str | None
    what: str
    definition: str = ""


@dataclass
class ColumnPlan:
    """A target column."""

    source: SourceColumn
    name: str
    choice: ColumnChoice
    default: Default
    enum_type: str | None = None  # the enum type's name (PostgreSQL, --enums type)

    @property
    def type_name(self) -> str:
        """The column type as the transform file records it."""
        return self.enum_type or self.choice.pg_type


@dataclass(frozen=True)
class IndexPlan:
    """A secondary index or a unique constraint of the target."""

    name: str
    columns: tuple[str, ...]
    unique: bool
    constraint: bool


@dataclass(frozen=True)
class ForeignKeyPlan:
    """A target foreign key."""

    name: str
    columns: tuple[str, ...]
    parent: str
    parent_columns: tuple[str, ...]
    on_delete: str | None
    on_update: str | None
    in_cycle: bool  # between tables of one cycle (or to its own table)
    closes_cycle: bool  # left out of the SQLite flavour, where keys are inline


@dataclass(frozen=True)
class CheckPlan:
    """A target check constraint (SQL written by SQLAlchemy, see scaffold_checks)."""

    name: str
    sql: str


@dataclass
class TablePlan:
    """A target table and how it is filled."""

    source: SourceTable
    name: str
    stem: str  # file and job name
    columns: list[ColumnPlan]
    primary_key: list[str]
    primary_key_name: str
    source_key: list[str] = field(default_factory=list)  # source columns, when no PK
    indexes: list[IndexPlan] = field(default_factory=list)
    foreign_keys: list[ForeignKeyPlan] = field(default_factory=list)
    checks: list[CheckPlan] = field(default_factory=list)
    on_update_function: str | None = None  # the trigger function (PostgreSQL)

    def column(self, source_name: str) -> ColumnPlan:
        """The target column of a source column."""
        return next(c for c in self.columns if c.source.name == source_name)


@dataclass
class Plan:
    """The whole target."""

    source: SourceSchema
    rule: IdentifierRule
    options: TypeOptions
    tables: list[TablePlan]
    graph: Graph
    cycles: list[list[str]]
    review: list[ReviewItem] = field(default_factory=list)
    renamed: list[tuple[str, Renamed]] = field(default_factory=list)  # (what, rename)

    @property
    def flavour(self) -> str:
        """postgresql | sqlite: which DDL the target gets."""
        return "sqlite" if self.options.sqlite_target else "postgresql"

    def table(self, name: str) -> TablePlan:
        """The plan of the target table `name`."""
        return next(t for t in self.tables if t.name == name)


def make_plan(source: SourceSchema, rule: IdentifierRule, options: TypeOptions,
              taken_stems: set[str]) -> Plan:
    """The target of `source` under `rule` and `options`."""
    table_names, renamed = target_names([t.name for t in source.tables], rule)
    plans: list[TablePlan] = []
    stems = set(taken_stems)
    plan = Plan(source, rule, options, plans, Graph((), ()), [],
                renamed=[("table", r) for r in renamed])
    for table, name in zip(source.tables, table_names, strict=True):
        stem = file_stem(name, stems)
        stems.add(stem)
        plans.append(_table(plan, table, name, stem))
    names = _name_objects(plan, set(table_names))
    for table_plan in plan.tables:
        _constraints(plan, table_plan, names)
    _foreign_keys(plan, names)
    _objects_for_review(plan, source.objects)
    return plan


# ---- tables and columns ----------------------------------------------------------------------


def _table(plan: Plan, table: SourceTable, name: str, stem: str) -> TablePlan:
    column_names, renamed = target_names([c.name for c in table.columns], plan.rule)
    plan.renamed += [("column", _in_table(table.name, r)) for r in renamed]
    json_columns = {json_valid_column(c.sql) for c in table.checks} - {None}
    columns = []
    for col, target in zip(table.columns, column_names, strict=True):
        choice = choose(col, plan.source.dialect, plan.options,
                        profile=plan.source.profile(table.name, col.name),
                        json_checked=col.name in json_columns)
        default = translate(col.default, choice.pg_type, dialect=plan.source.dialect,
                            enum=choice.enum, is_set=choice.set_members is not None)
        if choice.identity:
            default = Default()  # the identity is the default
        elif default.dropped:
            choice.notes.append(f"{default.dropped}: not carried over (objects-to-review.md)")
        columns.append(ColumnPlan(col, target, choice, default))
    by_source = dict(zip([c.name for c in table.columns], column_names, strict=True))
    result = TablePlan(table, name, stem, columns,
                       primary_key=[by_source[k] for k in table.primary_key],
                       primary_key_name=apply_rule(f"{name}_pkey", plan.rule))
    _review_columns(plan, result)
    if not table.primary_key:
        _fallback_key(plan, result)
    return result


def _in_table(table: str, rename: Renamed) -> Renamed:
    return Renamed(f"{table}.{rename.source}", rename.target, rename.why)


def _review_columns(plan: Plan, table: TablePlan) -> None:
    for col in table.columns:
        name = col.source.name
        if col.default.dropped:
            plan.review.append(ReviewItem("default", table.source.name, name,
                                          col.default.dropped, col.source.default or ""))
        for what in col.choice.review:
            kind = "zero-dates" if "zero date" in what else "column"
            plan.review.append(ReviewItem(kind, table.source.name, name, what))
        if col.choice.spatial_wkb:
            plan.review.append(ReviewItem("spatial", table.source.name, name,
                                          "spatial values kept as WKB bytea (no PostGIS in "
                                          "the target)", col.source.declared))
        if col.source.on_update and plan.options.sqlite_target:
            plan.review.append(ReviewItem("on-update", table.source.name, name,
                                          f"ON UPDATE {col.source.on_update} is not emulated "
                                          "on a SQLite target"))


def _fallback_key(plan: Plan, table: TablePlan) -> None:
    """No primary key: a unique key of NOT NULL columns orders and checks the copy
    (`source_key`) and is the target's primary key (pt's copies and checks need one)."""
    for index in table.source.indexes:
        if index.unique and not index.untranslatable and index.columns and all(
                not table.source.column(c).nullable for c in index.columns):
            table.source_key = list(index.columns)
            table.primary_key = [table.column(c).name for c in index.columns]
            plan.review.append(ReviewItem(
                "table", table.source.name, index.name,
                f"no primary key: the unique key ({', '.join(index.columns)}) is the target's "
                "primary key"))
            return
    plan.review.append(ReviewItem("table", table.source.name, None,
                                  "no primary key and no unique key of NOT NULL columns: set "
                                  f"source_key in {table.stem}.yaml"))


# ---- indexes, constraints, types: one namespace per schema ----------------------------------

NameKey = tuple[str, str, int]  # (target table, kind, position among its kind)


def _name_objects(plan: Plan, tables: set[str]) -> dict[NameKey, str]:
    """Every generated name, resolved together (the table names are taken already)."""
    wanted: dict[NameKey, str] = {}
    for table in plan.tables:
        wanted[(table.name, "pkey", 0)] = table.primary_key_name
        wanted.update(_desired_names(plan, table))
    names, renamed = target_names(list(wanted.values()), plan.rule, taken=tables)
    plan.renamed += [("index, constraint or type", r) for r in renamed]
    resolved = dict(zip(wanted, names, strict=True))
    functions, _ = target_names([apply_rule(f"{t.name}_on_update", plan.rule)
                                 for t in plan.tables], plan.rule)
    for table, function in zip(plan.tables, functions, strict=True):
        table.primary_key_name = resolved[(table.name, "pkey", 0)]
        if any(c.source.on_update for c in table.columns) and not plan.options.sqlite_target:
            table.on_update_function = function
    return resolved


def _desired_names(plan: Plan, table: TablePlan) -> dict[NameKey, str]:
    """The names wanted for the table's enum types, indexes and constraints."""
    rule, found = plan.rule, {}
    for number, col in enumerate(table.columns):
        if col.choice.enum is not None:
            as_check = plan.options.enums == "check" or plan.options.sqlite_target
            found[(table.name, "enum", number)] = apply_rule(
                f"{table.name}_{col.name}{'_check' if as_check else ''}", rule)
        if col.choice.set_members is not None and not plan.options.sqlite_target:
            found[(table.name, "set", number)] = apply_rule(
                f"{table.name}_{col.name}_members", rule)
    # Foreign keys first: MariaDB names the index it makes for a key after the key, and
    # the key's name is the one people know.
    for number, fk in enumerate(table.source.foreign_keys):
        columns = "_".join(table.column(c).name for c in fk.columns)
        found[(table.name, "fk", number)] = apply_rule(
            fk.name or f"{table.name}_{columns}_fkey", rule)
    for number, check in enumerate(table.source.checks):
        label = check.name or str(number + 1)
        found[(table.name, "check", number)] = apply_rule(f"{table.name}_{label}_check", rule)
    for number, index in enumerate(table.source.indexes):
        if not _index_problem(index)[1] and not (
                index.unique and list(index.columns) == table.source_key):
            columns = "_".join(table.column(c).name for c in index.columns)
            suffix = "key" if index.unique else "idx"
            found[(table.name, "index", number)] = apply_rule(
                index.name or f"{table.name}_{columns}_{suffix}", rule)
    return found


def _index_problem(index: SourceIndex) -> tuple[str, bool]:
    """What to tell a reviewer about an index ('' when nothing), and whether that keeps it
    from being created."""
    if index.untranslatable:
        return f"index not created: {index.untranslatable}", True
    if not index.columns:
        return "index without columns not created", True
    if index.kind in ("FULLTEXT", "SPATIAL"):
        return (f"{index.kind} index not created (PostgreSQL has none; e.g. a GIN index on "
                "to_tsvector(...) for full-text search, GiST with PostGIS)"), True
    if index.kind:
        return f"{index.kind} index created as a b-tree", False
    return "", False


def _constraints(plan: Plan, table: TablePlan, names: dict[NameKey, str]) -> None:
    """The table's enum types (or checks), SET checks, indexes and check constraints."""
    for number, col in enumerate(table.columns):
        enum = names.get((table.name, "enum", number))
        if enum is not None and (plan.options.enums == "check" or plan.options.sqlite_target):
            table.checks.append(CheckPlan(enum, members_check(col.name, col.choice.enum or (),
                                                              plan.flavour)))
        elif enum is not None:
            col.enum_type = enum
        members = names.get((table.name, "set", number))
        if members is not None:
            table.checks.append(CheckPlan(members, _set_check(col)))
    for number, index in enumerate(table.source.indexes):
        what, dropped = _index_problem(index)
        if table.source_key and list(index.columns) == table.source_key and index.unique:
            continue  # it became the primary key
        if what:
            plan.review.append(ReviewItem("index", table.source.name, index.name, what,
                                          ", ".join(index.columns)))
        if not dropped:
            table.indexes.append(IndexPlan(
                names[(table.name, "index", number)],
                tuple(table.column(c).name for c in index.columns), index.unique,
                index.constraint or index.unique))
    columns = {c.source.name: c.name for c in table.columns}
    for number, check in enumerate(table.source.checks):
        if json_valid_column(check.sql) is not None:
            continue  # the column became jsonb, which is valid JSON by itself
        sql = translate_check(check.sql, columns, plan.flavour)
        if sql is None:
            plan.review.append(ReviewItem("check", table.source.name, check.name,
                                          "check constraint not translated", check.sql))
            continue
        table.checks.append(CheckPlan(names[(table.name, "check", number)], sql))


def _set_check(col: ColumnPlan) -> str:
    """Every element of a SET's array is one of its members (PostgreSQL)."""
    array = ", ".join(literal(m) for m in col.choice.set_members or ())
    return f"{quote(col.name)} <@ ARRAY[{array}]::text[]"


# ---- foreign keys ---------------------------------------------------------------------------


def _foreign_keys(plan: Plan, names: dict[NameKey, str]) -> None:
    by_source = {t.source.name: t for t in plan.tables}
    edges: list[Edge] = []
    for table in plan.tables:
        for number, fk in enumerate(table.source.foreign_keys):
            parent = by_source.get(fk.parent) if fk.parent_schema is None else None
            if parent is None or not _references_a_key(parent, fk):
                plan.review.append(_unkept(table, fk, parent))
                continue
            table.foreign_keys.append(_fk_plan(plan, table, names[(table.name, "fk", number)],
                                               fk, parent))
            edges.append((table.name, parent.name))
    plan.graph = Graph(tuple(t.name for t in plan.tables), tuple(edges))
    plan.cycles = cycles(plan.graph)
    cyclic, closing = in_cycle(plan.graph, plan.cycles), closing_edges(plan.graph)
    for table in plan.tables:
        table.foreign_keys = [replace(fk, in_cycle=(table.name, fk.parent) in cyclic,
                                      closes_cycle=(table.name, fk.parent) in closing)
                              for fk in table.foreign_keys]


def _references_a_key(parent: TablePlan, fk: SourceForeignKey) -> bool:
    """PostgreSQL wants the referenced columns to be the primary key or a unique key."""
    wanted = set(fk.parent_columns)
    keys = [set(parent.source.primary_key)] + [
        set(i.columns) for i in parent.source.indexes if i.unique and not i.untranslatable]
    return wanted in keys


def _unkept(table: TablePlan, fk: SourceForeignKey, parent: TablePlan | None) -> ReviewItem:
    target = f"{fk.parent_schema}.{fk.parent}" if fk.parent_schema else fk.parent
    why = "refers to a table that is not scaffolded" if parent is None else \
        "refers to columns that are neither the primary key nor a unique key"
    return ReviewItem("foreign-key", table.source.name, fk.name,
                      f"foreign key not created: {why}",
                      f"({', '.join(fk.columns)}) -> {target}({', '.join(fk.parent_columns)})")


def _fk_plan(plan: Plan, table: TablePlan, name: str, fk: SourceForeignKey,
             parent: TablePlan) -> ForeignKeyPlan:
    actions: list[str | None] = []
    for action in (fk.on_delete, fk.on_update):
        known = action is not None and action.upper() in _ACTIONS
        if action is not None and not known:
            plan.review.append(ReviewItem("foreign-key", table.source.name, fk.name,
                                          f"action {action} not kept"))
        actions.append(action.upper() if action is not None and known else None)
    return ForeignKeyPlan(
        name=name, columns=tuple(table.column(c).name for c in fk.columns), parent=parent.name,
        parent_columns=tuple(parent.column(c).name for c in fk.parent_columns),
        on_delete=actions[0], on_update=actions[1], in_cycle=False, closes_cycle=False)


# ---- the rest of the schema -----------------------------------------------------------------

_OBJECTS = {"view": "view not created (its SQL is the source's)",
            "trigger": "trigger not created (its body is the source's SQL)",
            "procedure": "procedure not created (its body is the source's SQL)",
            "function": "function not created (its body is the source's SQL)"}


def _objects_for_review(plan: Plan, objects: list[SourceObject]) -> None:
    for item in objects:
        plan.review.append(ReviewItem(item.kind, item.table, item.name,
                                      _OBJECTS.get(item.kind, f"{item.kind} not created"),
                                      item.definition))
