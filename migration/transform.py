"""Transform files (one target table each): reading, validating and the model.

The format is Pulsaride's public one (`name`, `version`, `sources`, `joins`, `fields`,
`filter`, `target_table`, `depends_on`, `reject_policy`, `expect`) plus pt's options
(`source_url`, `target_url`, `source_key`, `key`, `options`). Every problem is reported at
once, each naming the field or key it is about.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from pulsaride.engine.errors import PipelineDefinitionError
from pulsaride.engine.inputs import TRANSFORM_FILE_BYTES, read_bounded
from pulsaride.engine.yamlsafe import load_mapping
from pulsaride.schemas import load_schema

from .expressions import Evaluator, compile_expression
from .grammar import GrammarError, parse
from .names import IdentifierRule, TableName, apply_rule

# Rows per batch (one transaction with its checkpoint): pgloader's default too. Measured on
# 1,000,000 rows (bench/bench_migrate.py): 10,000 took 1.93x the time of psql \copy, 25,000
# 1.72x, 50,000 1.82x; a wide table (LOBs) sets a smaller `options: {batch_size: N}`.
DEFAULT_BATCH_SIZE = 25_000


class TransformError(PipelineDefinitionError):
    """A transform file that cannot be used; lists every problem."""


class OnMissing(StrEnum):
    """What happens to a row whose parent row is not in the target yet."""

    DEFER = "DEFER"
    FAIL = "FAIL"
    SKIP = "SKIP"


class RejectPolicy(StrEnum):
    """What happens to a row a field expression cannot compute."""

    FAIL = "FAIL"  # stop the migration
    FAIL_ROW = "FAIL_ROW"  # send the row to pulsaride_dlq and go on


@dataclass(frozen=True)
class ColumnRef:
    """`alias.COLUMN` in a transform file (alias defaults to the first source)."""

    alias: str
    column: str

    def __str__(self) -> str:
        return f"{self.alias}.{self.column}"


@dataclass(frozen=True)
class Source:
    """A source table (or query) and the alias the file uses for it."""

    name: str
    alias: str
    table: str | None
    sql: str | None
    schema: str | None = None

    @property
    def relation(self) -> TableName | None:
        """The source table's exact name (None for a query)."""
        return None if self.table is None else TableName(self.table, self.schema)


@dataclass(frozen=True)
class Join:
    """A join between two sources."""

    left: str
    right: str
    on: str
    kind: str


@dataclass(frozen=True)
class Field:
    """One target column and how its value is computed."""

    name: str
    sources: tuple[ColumnRef, ...]
    expression: str | None = None
    target_type: str | None = None
    evaluate: Evaluator | None = None


@dataclass(frozen=True)
class Dependency:
    """Row-level ordering: this row needs `table.key = <value of via>` in the target."""

    table: str
    key: str
    via: ColumnRef
    on_missing: OnMissing = OnMissing.DEFER
    schema: str | None = None

    @property
    def parent(self) -> TableName:
        """The parent table's exact name."""
        return TableName(self.table, self.schema)


@dataclass(frozen=True)
class Options:
    """pt's options of a transform."""

    empty_string_as_null: bool | None = None  # None: decided by the source dialect
    identifiers: IdentifierRule = IdentifierRule.FOLD_UPPER
    batch_size: int = DEFAULT_BATCH_SIZE
    # Whether the file names tables exactly (it states `identifiers`), rather than the first
    # published way (`SCHEMA.TABLE` in one string).
    exact_names: bool = False


@dataclass(frozen=True)
class Transform:
    """A validated transform file."""

    path: Path
    sha256: str
    name: str
    version: str
    sources: tuple[Source, ...]
    target_table: str
    fields: tuple[Field, ...] | None  # None: every column of the first source
    joins: tuple[Join, ...] = ()
    filter: str | None = None
    source_key: tuple[ColumnRef, ...] | None = None
    key: tuple[str, ...] | None = None
    depends_on: tuple[Dependency, ...] = ()
    reject_policy: RejectPolicy = RejectPolicy.FAIL
    expect: Mapping[str, Any] = field(default_factory=dict)
    options: Options = field(default_factory=Options)
    source_url: str | None = None
    target_url: str | None = None
    target_schema: str | None = None

    @property
    def primary(self) -> Source:
        """The first source: its key orders and checkpoints the copy."""
        return self.sources[0]

    @property
    def target(self) -> TableName:
        """The target table's exact name; `target.key()` stands for it in pt's tables."""
        return TableName(self.target_table, self.target_schema)


def load_transform(path: Path) -> Transform:
    """Read and validate the transform file at `path`."""
    data = read_bounded(path, TRANSFORM_FILE_BYTES, "transform file")
    shape = "a transform file is a mapping with at least 'sources'"
    document = load_mapping(data, str(path), empty=shape, not_mapping=shape, error=TransformError)
    _unbool_join_keys(document)
    problems = _schema_problems(document)
    if problems:
        raise TransformError(str(path), problems)
    builder = _Builder(document)
    transform = builder.build(path.resolve(), hashlib.sha256(data).hexdigest())
    if builder.problems:
        raise TransformError(str(path), builder.problems)
    return transform


def fold(name: str, enabled: bool = True) -> str:
    """The target spelling of a source identifier: unquoted UPPER names become lower case."""
    return apply_rule(name, IdentifierRule.FOLD_UPPER) if enabled else name


def split_legacy(text: str, exact: bool) -> tuple[str | None, str]:
    """(schema, name) of a table named in a file: exactly as written when the file states
    its identifier rule, else `SCHEMA.TABLE` split at the last dot (the first format)."""
    if exact:
        return None, text
    schema, _, name = text.rpartition(".")
    return schema or None, name


def _unbool_join_keys(document: dict[str, Any]) -> None:
    """YAML 1.1 reads a bare `on` key as the boolean true; in a join it is the condition."""
    joins = document.get("joins")
    for join in joins if isinstance(joins, list) else ():
        if isinstance(join, dict) and True in join and "on" not in join:
            join["on"] = join.pop(True)


def _schema_problems(document: Mapping[str, Any]) -> list[str]:
    from jsonschema import Draft202012Validator  # noqa: PLC0415 - 40 ms; only loading needs it

    validator = Draft202012Validator(load_schema("transform"))
    errors = sorted(validator.iter_errors(document), key=lambda e: [str(p) for p in e.path])
    problems = []
    for error in errors:
        where = ".".join(str(p) for p in error.absolute_path) or "top level"
        problems.append(f"{where}: {error.message}")
    return problems


class _Builder:
    """Turns a schema-valid document into a Transform, collecting semantic problems."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        self.problems: list[str] = []
        self.options = self._options()
        self.sources = tuple(self._source(s) for s in document["sources"])
        self.aliases = [s.alias for s in self.sources]
        if len(set(self.aliases)) != len(self.aliases):
            self.problems.append(f"sources: aliases must be unique (got {', '.join(self.aliases)})")

    def build(self, path: Path, sha256: str) -> Transform:
        doc = self.document
        primary = self.sources[0]
        rule = self.options.identifiers
        target = doc.get("target_table") or apply_rule(primary.table or primary.name, rule)
        schema, target = (doc["target_schema"], target) if "target_schema" in doc else \
            split_legacy(target, self.options.exact_names)
        fields = tuple(self._field(i, f) for i, f in enumerate(doc["fields"])) \
            if "fields" in doc else None
        self._check_filter(doc.get("filter"))
        names = [f.name for f in fields] if fields is not None else None
        if names is not None and len(set(names)) != len(names):
            self.problems.append("fields: target column names must be unique")
        key = tuple(doc["key"]) if "key" in doc else None
        if key is not None and names is not None:
            self.problems += [f"key: '{k}' is not a field" for k in key if k not in names]
        return Transform(
            path=path, sha256=sha256, name=doc.get("name") or target,
            version=str(doc.get("version", "1")), sources=self.sources, target_table=target,
            fields=fields, joins=tuple(self._join(j) for j in doc.get("joins", ())),
            filter=doc.get("filter"),
            source_key=tuple(self._ref(r, "source_key") for r in doc["source_key"])
            if "source_key" in doc else None,
            key=key,
            depends_on=tuple(self._dependency(i, d)
                             for i, d in enumerate(doc.get("depends_on", ()))),
            reject_policy=RejectPolicy(doc.get("reject_policy", "FAIL")),
            expect=dict(doc.get("expect", {})), options=self.options,
            source_url=doc.get("source_url"), target_url=doc.get("target_url"),
            target_schema=schema,
        )

    def _options(self) -> Options:
        raw = self.document.get("options", {})
        empty = raw.get("empty_string_as_null", "auto")
        if "identifiers" in raw:
            rule = IdentifierRule(raw["identifiers"])
        elif raw.get("fold_identifiers", True) is False:
            rule = IdentifierRule.KEEP  # the first format's way to say it
        else:
            rule = IdentifierRule.FOLD_UPPER
        return Options(empty_string_as_null=None if empty == "auto" else bool(empty),
                       identifiers=rule, exact_names="identifiers" in raw,
                       batch_size=raw.get("batch_size", DEFAULT_BATCH_SIZE))

    def _source(self, spec: Mapping[str, Any]) -> Source:
        if "table" not in spec and "sql" not in spec:
            self.problems.append(f"sources: '{spec['name']}' needs a table or an sql query")
        table, schema = spec.get("table"), spec.get("schema")
        if table is not None and schema is None:
            schema, table = split_legacy(table, self.options.exact_names)
        return Source(name=spec["name"], alias=spec.get("alias", spec["name"]),
                      table=table, sql=spec.get("sql"), schema=schema)

    def _join(self, spec: Mapping[str, Any]) -> Join:
        for side in ("from", "to"):
            if spec[side] not in self.aliases:
                self.problems.append(f"joins: '{spec[side]}' is not a source alias "
                                     f"(aliases: {', '.join(self.aliases)})")
        return Join(left=spec["from"], right=spec["to"], on=spec["on"],
                    kind=str(spec.get("type", "INNER")).upper())

    def _ref(self, text: str, where: str) -> ColumnRef:
        # `alias.COLUMN`: the alias ends at the first dot, so a column name may hold dots.
        alias, dot, column = text.partition(".")
        if not dot:
            alias, column = self.aliases[0], text
        if alias not in self.aliases:
            self.problems.append(f"{where}: '{text}' names the unknown source alias '{alias}' "
                                 f"(aliases: {', '.join(self.aliases)})")
        return ColumnRef(alias, column)

    def _field(self, index: int, spec: Mapping[str, Any]) -> Field:
        name = spec["name"]
        where = f"fields[{index}] '{name}'"
        raw = spec.get("source", [])
        refs = tuple(self._ref(r, where) for r in ([raw] if isinstance(raw, str) else raw))
        expression = spec.get("expression")
        if not refs and expression is None:
            self.problems.append(f"{where}: needs a source, an expression, or both")
        evaluate = None
        if expression is not None:
            try:
                evaluate = compile_expression(expression, len(refs))
            except GrammarError as exc:
                self.problems.append(f"{where}: bad expression {expression!r}: {exc}")
        return Field(name=name, sources=refs, expression=expression,
                     target_type=spec.get("target_type"), evaluate=evaluate)

    def _dependency(self, index: int, spec: Mapping[str, Any]) -> Dependency:
        table, schema = spec["table"], spec.get("schema")
        if schema is None:
            schema, table = split_legacy(table, self.options.exact_names)
        return Dependency(table=table, key=spec["key"],
                          via=self._ref(spec["via"], f"depends_on[{index}].via"),
                          on_missing=OnMissing(spec.get("on_missing", "DEFER")), schema=schema)

    def _check_filter(self, text: str | None) -> None:
        if text is None:
            return
        try:
            parse(text)
        except GrammarError as exc:
            self.problems.append(f"filter {text!r}: {exc}")
