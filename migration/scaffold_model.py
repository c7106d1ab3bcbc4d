"""What `pt scaffold` reads from a source catalog: tables with everything that defines them,
and the other objects of the schema (views, triggers, routines) that are only reported.

Every name and text here is exactly as the source database holds it; nothing is folded or
quoted yet (that is the plan's job, scaffold_plan.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SourceColumn:
    """A column as declared in the source."""

    name: str
    declared: str  # the exact declared type: `int(10) unsigned`, `enum('a','b')`, `NUMBER`
    nullable: bool = True
    default: str | None = None  # the default as the source spells it (SQL text), if any
    autoincrement: bool = False  # auto_increment, identity, serial, SQLite AUTOINCREMENT
    on_update: str | None = None  # MariaDB/MySQL: ON UPDATE current_timestamp()
    generated: str | None = None  # the expression of a generated (computed) column
    enum_values: tuple[str, ...] | None = None  # ENUM members (and SET members for SET)


@dataclass(frozen=True)
class SourceIndex:
    """A secondary index (or a unique constraint, `constraint=True`)."""

    name: str | None
    columns: tuple[str, ...]
    unique: bool = False
    kind: str = ""  # FULLTEXT | SPATIAL | another access method; "" for a plain b-tree
    constraint: bool = False  # a UNIQUE constraint rather than an index
    untranslatable: str = ""  # why it cannot be written for the target (expressions, prefix)


@dataclass(frozen=True)
class SourceForeignKey:
    """child(columns) REFERENCES parent(parent_columns)."""

    name: str | None
    columns: tuple[str, ...]
    parent: str
    parent_columns: tuple[str, ...]
    parent_schema: str | None = None
    on_delete: str | None = None  # CASCADE | SET NULL | SET DEFAULT | RESTRICT | NO ACTION
    on_update: str | None = None


@dataclass(frozen=True)
class SourceCheck:
    """A check constraint, in the source's SQL."""

    name: str | None
    sql: str


@dataclass
class SourceTable:
    """A source table and what defines it."""

    name: str
    columns: list[SourceColumn]
    primary_key: list[str] = field(default_factory=list)
    indexes: list[SourceIndex] = field(default_factory=list)
    foreign_keys: list[SourceForeignKey] = field(default_factory=list)
    checks: list[SourceCheck] = field(default_factory=list)
    next_identity: int | None = None  # the source's next auto-increment value, when known

    def column(self, name: str) -> SourceColumn:
        """The column called exactly `name`."""
        return next(c for c in self.columns if c.name == name)


@dataclass(frozen=True)
class SourceObject:
    """A view, trigger, procedure or function: reported for review, never translated."""

    kind: str  # view | trigger | procedure | function
    name: str
    definition: str
    table: str | None = None  # the table of a trigger


@dataclass(frozen=True)
class ColumnProfile:
    """What the data of a column actually holds (SQLite does not enforce declared types;
    Oracle NUMBER without precision says nothing of its range)."""

    rows: int = 0  # non-NULL values
    minimum: int | None = None  # of the whole numbers
    maximum: int | None = None
    max_length: int | None = None  # of text values, in characters
    fractional: int = 0  # values with a fractional part (or REAL values in SQLite)
    texts: int = 0  # text values in a column SQLite holds numbers in
    blobs: int = 0
    zero_dates: int = 0  # MariaDB/MySQL dates with a zero year, month or day


@dataclass
class SourceSchema:
    """Everything read from one source schema."""

    dialect: str  # sqlite | mysql | postgresql | oracle | ...
    schema: str | None
    tables: list[SourceTable]
    objects: list[SourceObject] = field(default_factory=list)
    profiles: dict[str, dict[str, ColumnProfile]] = field(default_factory=dict)
    mariadb: bool = False

    def profile(self, table: str, column: str) -> ColumnProfile | None:
        """The data profile of a column, when one was read."""
        return self.profiles.get(table, {}).get(column)
