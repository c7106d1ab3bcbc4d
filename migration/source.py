"""Reading the source: the query of a transform (sources, joins, filter), in key order, in
batches that resume after a checkpoint (keyset pagination on the source key)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    FromClause,
    Select,
    Text,
    cast,
    column,
    false,
    func,
    literal_column,
    select,
    text,
    tuple_,
    type_coerce,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.types import NullType

from pulsaride.engine.errors import BadInputError

from .filters import compile_filter
from .grammar import Column as ColumnNode
from .grammar import GrammarError
from .names import match_name, target_names
from .relations import NoSuchTable, declared_type, reflect_table
from .sqlcheck import UnsafeSql, check_condition, check_query
from .transform import ColumnRef, Field, Source, Transform


class SourceError(BadInputError):
    """The source does not have what the transform file names."""


@dataclass(frozen=True)
class SourcePlan:
    """What to select from the source, and where each value lands in a row."""

    columns: tuple[ColumnElement[Any], ...]
    raw_columns: tuple[ColumnElement[Any], ...]  # the same, as the source types them
    positions: dict[ColumnRef, int]
    key: tuple[ColumnElement[Any], ...]
    key_positions: tuple[int, ...]
    from_clause: FromClause
    condition: ColumnElement[bool] | None
    fields: tuple[Field, ...]
    declared_types: dict[str, str]  # target field -> source type text (identity fields)
    source_types: dict[str, str]  # "alias.COLUMN" -> source type text
    nullable: dict[str, bool]  # target field -> whether its source column allows NULL

    def batch(self, checkpoint: Sequence[Any] | None, limit: int) -> Select[Any]:
        """The next `limit` rows after `checkpoint`, in key order."""
        query = select(*self.columns).select_from(self.from_clause)
        if self.condition is not None:
            query = query.where(self.condition)
        if checkpoint is not None:
            if len(self.key) == 1:
                query = query.where(self.key[0] > checkpoint[0])
            else:
                query = query.where(tuple_(*self.key) > tuple_(*checkpoint))
        return query.order_by(*self.key).limit(limit)

    def count(self, checkpoint: Sequence[Any] | None = None) -> Select[Any]:
        """How many rows the transform reads (after `checkpoint`, when given)."""
        query = select(func.count()).select_from(self.from_clause)
        if self.condition is not None:
            query = query.where(self.condition)
        if checkpoint is not None:
            query = query.where(tuple_(*self.key) > tuple_(*checkpoint)) if len(self.key) > 1 \
                else query.where(self.key[0] > checkpoint[0])
        return query


def plan_source(connection: Connection, transform: Transform) -> SourcePlan:
    """Reflect the source tables and lay out the query of `transform`."""
    relations = {s.alias: _relation(connection, s) for s in transform.sources}
    resolver = _Resolver(relations, transform.sources[0].alias)
    fields = transform.fields or _all_columns(relations[transform.primary.alias], transform)
    wanted: list[ColumnRef] = []
    for ref in [r for f in fields for r in f.sources] + [d.via for d in transform.depends_on]:
        if ref not in wanted:
            wanted.append(ref)
    key_refs = list(transform.source_key or _primary_key(relations[transform.primary.alias],
                                                         transform))
    for ref in key_refs:
        if ref not in wanted:
            wanted.append(ref)
    columns = tuple(resolver.resolve(ref) for ref in wanted)
    positions = {ref: i for i, ref in enumerate(wanted)}
    spelled: dict[str, dict[str, str]] = {}
    types = {ref: _declared(col, connection, spelled) for ref, col in zip(wanted, columns,
                                                                        strict=True)}
    return SourcePlan(
        # Values come as the driver gives them: no SQLAlchemy result processing (which would
        # turn SQLite NUMERIC integers into Decimal('1.0000000000'), for one).
        columns=tuple(_as_read(c, types[ref], connection.dialect.name).label(f"c{i}")
                      for i, (ref, c) in enumerate(zip(wanted, columns, strict=True))),
        raw_columns=columns,
        positions=positions,
        key=tuple(columns[positions[r]] for r in key_refs),
        key_positions=tuple(positions[r] for r in key_refs),
        from_clause=_joined(relations, transform, connection.dialect.name),
        condition=_condition(transform, resolver),
        fields=tuple(fields),
        declared_types={f.name: types[f.sources[0]]
                        for f in fields if len(f.sources) == 1 and f.expression is None},
        source_types={str(ref): spelling for ref, spelling in types.items()},
        nullable={f.name: bool(getattr(resolver.resolve(f.sources[0]), "nullable", True))
                  and f.sources[0] not in key_refs
                  for f in fields if len(f.sources) == 1 and f.expression is None},
    )


def _as_read(column_: ColumnElement[Any], declared: str, dialect: str) -> ColumnElement[Any]:
    """A source column as the copy reads it: as the driver gives it, except PostgreSQL JSON,
    read as its text (psycopg decodes the document `null` to None, which is SQL NULL: the
    copy would turn one into the other)."""
    if dialect == "postgresql" and declared.strip().upper().startswith("JSON"):
        return cast(column_, Text)
    return type_coerce(column_, NullType())


def _relation(connection: Connection, source: Source) -> FromClause:
    if source.sql is not None:
        try:
            check_query(source.sql, connection.dialect.name)
        except UnsafeSql as exc:
            raise SourceError(f"source '{source.name}': its sql {exc}") from None
        probe: Select[Any] = select(literal_column("*")).select_from(
            text(source.sql).columns().subquery("pt_probe")).where(false())
        try:
            names = list(connection.execute(probe).keys())
        except SQLAlchemyError as exc:
            raise SourceError(f"source '{source.name}': its sql query fails: "
                              f"{_first_line(exc)}") from None
        return text(source.sql).columns(*(column(n) for n in names)).subquery(source.alias)
    relation = source.relation
    assert relation is not None
    try:
        return reflect_table(connection, relation).alias(source.alias)
    except NoSuchTable as exc:
        raise SourceError(f"source '{source.name}': {exc}") from None


class _Resolver:
    """Finds `alias.COLUMN` among the source relations (names matched case-insensitively)."""

    def __init__(self, relations: dict[str, FromClause], primary: str) -> None:
        self.relations = relations
        self.primary = primary

    def resolve(self, ref: ColumnRef) -> ColumnElement[Any]:
        relation = self.relations[ref.alias]
        by_name = {c.name: c for c in relation.columns}
        name = match_name(ref.column, by_name)
        found = by_name[name] if name is not None else None
        if found is None:
            raise SourceError(f"source column {ref} does not exist (columns of {ref.alias}: "
                              f"{', '.join(by_name)})")
        return found

    def node(self, node: ColumnNode) -> ColumnElement[Any]:
        return self.resolve(ColumnRef(node.alias or self.primary, node.name))


def _all_columns(relation: FromClause, transform: Transform) -> list[Field]:
    sources = [c.name for c in relation.columns]
    names, _ = target_names(sources, transform.options.identifiers)
    return [Field(name=name, sources=(ColumnRef(transform.primary.alias, source),))
            for name, source in zip(names, sources, strict=True)]


def _primary_key(relation: FromClause, transform: Transform) -> list[ColumnRef]:
    key = [c.name for c in relation.primary_key] if hasattr(relation, "primary_key") else []
    if not key:
        raise SourceError(
            f"source '{transform.primary.name}' has no primary key to order and checkpoint "
            "the copy by; name one with source_key: [alias.COLUMN, ...]")
    return [ColumnRef(transform.primary.alias, name) for name in key]


def _joined(relations: dict[str, FromClause], transform: Transform,
            dialect: str) -> FromClause:
    joined = relations[transform.primary.alias]
    for join in transform.joins:
        try:
            check_condition(join.on, dialect)
        except UnsafeSql as exc:
            raise SourceError(f"joins: {join.left} -> {join.right}: on {exc}") from None
        right = relations[join.right]
        joined = joined.join(right, text(join.on), isouter=join.kind in ("LEFT", "FULL"),
                             full=join.kind == "FULL")
    return joined


def _condition(transform: Transform, resolver: _Resolver) -> ColumnElement[bool] | None:
    if transform.filter is None:
        return None
    try:
        return compile_filter(transform.filter, resolver.node)
    except GrammarError as exc:
        raise SourceError(f"filter {transform.filter!r}: {exc}") from None


def _declared(col: ColumnElement[Any], connection: Connection,
              cache: dict[str, dict[str, str]]) -> str:
    """The column's type as the source spells it (SQLite: as declared, e.g. NUMBER(10))."""
    if connection.dialect.name == "sqlite" and isinstance(col, Column):
        table = getattr(col.table, "element", col.table)
        name = getattr(table, "name", None)
        if name and name not in cache:
            cache[name] = sqlite_declared_types(connection, name, getattr(table, "schema", None))
        spelled = cache.get(name or "", {}).get(col.name)
        if spelled:
            return spelled
    if isinstance(col, Column):
        return declared_type(col, connection.dialect)
    return ""


def sqlite_declared_types(connection: Connection, table_name: str,
                          schema: str | None = None) -> dict[str, str]:
    """Column -> type as declared in a SQLite table (e.g. NUMBER(10)), which SQLite keeps but
    does not enforce; the table name is a bound parameter of pragma_table_info."""
    query = text("SELECT name, type FROM pragma_table_info(:t, :s)") if schema else \
        text("SELECT name, type FROM pragma_table_info(:t)")
    rows = connection.execute(query, {"t": table_name, "s": schema}).all()
    return {str(row[0]): str(row[1]) for row in rows}


def _first_line(exc: SQLAlchemyError) -> str:
    original = getattr(exc, "orig", None)
    return str(original if original is not None else exc).strip().splitlines()[0]
