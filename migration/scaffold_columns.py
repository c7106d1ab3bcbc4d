"""One source column's target type, the conversion its values need on the way, and the
notes that say why: what depends on the source dialect, the data and the options, on top of
typemap's rules for declared types.

Every choice that is a judgement carries a note (written as a SQL comment beside the column
in the DDL); what cannot be carried over goes to the review report instead of being lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .scaffold_model import ColumnProfile, SourceColumn
from .typemap import SPATIAL_NOTE, Mapped, integer_type_for, postgres_type, sqlite_affinity

INTEGER_TYPES = ("smallint", "integer", "bigint")
_MYSQL_DATES = ("date", "datetime", "timestamp")


@dataclass(frozen=True)
class TypeOptions:
    """The scaffold options that change type choices."""

    enums: str = "type"  # type: CREATE TYPE ... AS ENUM; check: text + CHECK
    tinyint1_boolean: bool = False
    sqlite_types: str = "data"  # data: declared types corrected by the data; affinity
    postgis: bool = False  # the target has PostGIS
    sqlite_target: bool = False


@dataclass
class ColumnChoice:
    """What a source column becomes."""

    pg_type: str
    notes: list[str] = field(default_factory=list)
    conversions: list[str] = field(default_factory=list)  # functions, innermost first
    enum: tuple[str, ...] | None = None  # members of an ENUM (type or CHECK)
    set_members: tuple[str, ...] | None = None  # members of a SET (an array CHECK)
    identity: bool = False
    nullable: bool = True  # the target column's (set by choose)
    drop_not_null: bool = False  # NULLs made on the way must fit
    review: list[str] = field(default_factory=list)
    zero_dates: bool = False  # zero dates become NULL on the way
    spatial_wkb: bool = False  # spatial values kept as WKB

    @property
    def expression(self) -> str | None:
        """The transform expression applying the conversions: `f(g(?))`."""
        if not self.conversions:
            return None
        text = "?"
        for function in self.conversions:
            text = f"{function}({text})"
        return text


def choose(col: SourceColumn, dialect: str, options: TypeOptions, *,
           profile: ColumnProfile | None = None, json_checked: bool = False) -> ColumnChoice:
    """The target type and conversion of `col` from a `dialect` source."""
    if dialect == "mysql":
        choice = _mysql(col, options, profile, json_checked)
    elif dialect == "sqlite":
        choice = _sqlite(col, options, profile)
    else:
        choice = _generic(col, dialect, options, profile)
    choice.nullable = col.nullable or choice.drop_not_null
    if col.enum_values is not None and choice.enum is None and choice.set_members is None:
        choice.enum = col.enum_values
        choice.pg_type = "text"
        choice.notes = [_enum_note(options)]
    if col.autoincrement:
        _identity(choice, options)
    if col.generated:
        choice.review.append(f"generated column ({col.generated}) copied as plain values")
    return choice


def _enum_note(options: TypeOptions) -> str:
    if options.enums == "check" or options.sqlite_target:
        return "ENUM -> text with a CHECK of its members"
    return "ENUM -> an enum type of its members"


def _from(mapped: Mapped) -> ColumnChoice:
    return ColumnChoice(mapped.pg_type, [mapped.note] if mapped.note else [])


# ---- MariaDB / MySQL -----------------------------------------------------------------------


def _mysql(col: SourceColumn, options: TypeOptions, profile: ColumnProfile | None,
           json_checked: bool) -> ColumnChoice:
    declared = col.declared.strip().lower()
    head = declared.split("(")[0].split()[0] if declared else ""
    if head == "enum":
        return ColumnChoice("text", [_enum_note(options)], enum=col.enum_values or ())
    if head == "set":
        return _mysql_set(col, options)
    if head in _MYSQL_DATES:
        return _mysql_date(col, head, profile, options)
    if head == "time":
        return ColumnChoice("time", ["TIME read as a time of day (MySQL TIME may also hold "
                                     "durations: those rows are rejected)"], ["mysql_time"])
    if head == "bit":
        return _mysql_bit(declared)
    if head == "float" and "(" not in declared:
        return ColumnChoice("real", ["MySQL FLOAT is single precision: real"])
    if head in ("json", "longtext") and (head == "json" or json_checked):
        kind = "text" if options.sqlite_target else "jsonb"
        return ColumnChoice(kind, [f"JSON (LONGTEXT checked by json_valid) -> {kind}"
                                   if head == "longtext" else f"JSON -> {kind}"])
    mapped = postgres_type(col.declared, tinyint1_boolean=options.tinyint1_boolean)
    if mapped.note == SPATIAL_NOTE:
        return _mysql_spatial(options)
    choice = _from(mapped)
    if "unsigned" in declared.split():
        choice.notes.append(f"{head} unsigned -> {mapped.pg_type} (the next wider type)")
    if head == "tinyint" and "(1)" in declared and not options.tinyint1_boolean:
        choice.notes.append("tinyint(1) kept as a number (--tinyint1-boolean makes it boolean)")
    return choice


def _mysql_set(col: SourceColumn, options: TypeOptions) -> ColumnChoice:
    members = col.enum_values or ()
    if options.sqlite_target:
        return ColumnChoice("text", ["SET kept as its text 'a,b'"], set_members=members)
    return ColumnChoice("text[]", ["SET -> text[] ('a,b' becomes {a,b}, '' becomes {}), "
                                   "members checked"], ["set_array"], set_members=members)


def _mysql_date(col: SourceColumn, head: str, profile: ColumnProfile | None,
                options: TypeOptions) -> ColumnChoice:
    mapped = postgres_type(col.declared)
    choice = ColumnChoice(mapped.pg_type, ["zero or invalid dates ('0000-00-00') become NULL"],
                          ["zero_date_null"], zero_dates=True)
    if head == "timestamp":
        choice.pg_type = "timestamp" if options.sqlite_target else \
            mapped.pg_type.replace("timestamp", "timestamptz")
        choice.notes.append("MySQL TIMESTAMP is an instant: read in UTC (pt sets the source "
                            "session time_zone to +00:00) and written with its zone")
        if not options.sqlite_target:
            choice.conversions.append("as_utc")
    elif head == "datetime":
        choice.notes.append("DATETIME has no time zone: copied as written (timestamp without "
                            "time zone)")
    zeros = profile.zero_dates if profile is not None else 0
    if zeros:
        choice.review.append(f"{zeros} zero date(s) become NULL")
        if not col.nullable:
            choice.drop_not_null = True
            choice.notes.append(f"NOT NULL dropped: {zeros} zero date(s) become NULL")
            choice.review.append("NOT NULL dropped because zero dates become NULL")
    return choice


def _mysql_bit(declared: str) -> ColumnChoice:
    width = int(declared[declared.index("(") + 1:declared.index(")")]) if "(" in declared else 1
    if width == 1:
        return ColumnChoice("boolean", ["BIT(1) -> boolean"], ["bits_int"])
    return ColumnChoice("bigint", [f"BIT({width}) -> bigint (its bits as a number)"],
                        ["bits_int"])


def _mysql_spatial(options: TypeOptions) -> ColumnChoice:
    if options.postgis and not options.sqlite_target:
        return ColumnChoice("geometry", ["spatial -> PostGIS geometry (SRID kept, as EWKB)"],
                            ["mysql_ewkb"])
    # MariaDB/MySQL store a 4-byte SRID before the WKB: converted in Python, so the source
    # needs no ST_AsBinary() in a query of its own and the copy reads the table as it is.
    return ColumnChoice("bytea", [SPATIAL_NOTE + "; the SRID is dropped"], ["mysql_wkb"],
                        spatial_wkb=True)


# ---- SQLite --------------------------------------------------------------------------------


def _sqlite(col: SourceColumn, options: TypeOptions,
            profile: ColumnProfile | None) -> ColumnChoice:
    mapped = postgres_type(col.declared, tinyint1_boolean=options.tinyint1_boolean)
    known = not mapped.note.startswith("unknown type")
    if col.declared.strip().upper() == "NUMBER":
        return _by_range(profile, "NUMBER without precision")
    if options.sqlite_types == "affinity":
        return _affinity(col.declared, mapped, known)
    choice = _from(mapped) if known else _affinity(col.declared, mapped, known)
    if profile is None or profile.rows == 0:
        return choice
    if not col.declared.strip():
        return _untyped(profile)
    return _corrected(choice, col.declared, profile)


def _untyped(profile: ColumnProfile) -> ColumnChoice:
    """A column declared without a type keeps whatever it is given: the data decides."""
    if profile.blobs:
        return ColumnChoice("bytea", ["no declared type, holds blobs"])
    if profile.texts:
        return ColumnChoice("text", ["no declared type, holds text"])
    if profile.fractional:
        return ColumnChoice("double precision", ["no declared type, holds REAL values"])
    needed = integer_type_for(profile.minimum or 0, profile.maximum or 0)
    return ColumnChoice(needed, [f"no declared type, holds whole numbers "
                                 f"{profile.minimum}..{profile.maximum}"])


def _affinity(declared: str, mapped: Mapped, known: bool) -> ColumnChoice:
    """SQLite's rules alone: what any value of the column's affinity fits."""
    affinity = sqlite_affinity(declared)
    loose = {"INTEGER": "bigint", "TEXT": "text", "BLOB": "bytea", "REAL": "double precision"}
    if affinity in loose:
        return ColumnChoice(loose[affinity], [f"SQLite {affinity} affinity -> {loose[affinity]}"])
    if known:  # NUMERIC affinity: the declared name says more (DATE, BOOLEAN, DECIMAL(p,s))
        return _from(mapped)
    return ColumnChoice("numeric", ["SQLite NUMERIC affinity -> numeric"])


def _corrected(choice: ColumnChoice, declared: str, profile: ColumnProfile) -> ColumnChoice:
    """The declared choice, made to fit what the column really holds."""
    base = choice.pg_type
    if profile.blobs and profile.blobs == profile.rows and base != "bytea":
        return ColumnChoice("bytea", [f"declared {declared!r} but holds only blobs"])
    numbers = (*INTEGER_TYPES, "numeric", "boolean", "double precision", "real")
    if profile.texts and (base in numbers or base.startswith("numeric(")):
        return ColumnChoice("text", [f"declared {declared!r} but holds {profile.texts} text "
                                     "value(s)"])
    if base in (*INTEGER_TYPES, "boolean") and profile.fractional:
        return ColumnChoice("numeric", [f"declared {declared!r} but holds "
                                        f"{profile.fractional} fractional value(s)"])
    if base in (*INTEGER_TYPES, "boolean") and profile.minimum is not None:
        return _wide_enough(choice, declared, profile)
    if base.startswith(("varchar(", "char(")) and profile.max_length is not None:
        declared_length = int(base[base.index("(") + 1:-1])
        if profile.max_length > declared_length:
            return ColumnChoice("text", [f"declared {declared!r} but holds values of up to "
                                         f"{profile.max_length} characters"])
    return choice


def _wide_enough(choice: ColumnChoice, declared: str, profile: ColumnProfile) -> ColumnChoice:
    low, high = profile.minimum or 0, profile.maximum or 0
    if choice.pg_type == "boolean":
        if low >= 0 and high <= 1:
            return choice
        needed = integer_type_for(low, high)
        return ColumnChoice(needed, [f"declared {declared!r} but holds {low}..{high}"])
    needed = integer_type_for(low, high)
    order = [*INTEGER_TYPES, "numeric"]
    if order.index(needed) <= order.index(choice.pg_type):
        return choice
    return ColumnChoice(needed, [f"declared {declared!r} but holds {low}..{high}"])


def _by_range(profile: ColumnProfile | None, what: str) -> ColumnChoice:
    """NUMBER without precision: the narrowest integer type of the data when it holds only
    whole numbers, else numeric."""
    if profile is None or profile.rows == 0 or profile.minimum is None:
        return ColumnChoice("numeric", [f"{what}, no data to size it: numeric"])
    if profile.fractional or profile.texts:
        return ColumnChoice("numeric", [f"{what} holds fractions: numeric"])
    low, high = profile.minimum, profile.maximum or 0
    needed = integer_type_for(low, high)
    return ColumnChoice(needed, [f"{what} holds whole numbers {low}..{high}: {needed}"])


# ---- PostgreSQL, Oracle and others ---------------------------------------------------------


# Types every PostgreSQL has: from a PostgreSQL source they are kept as they are.
_PG_BUILT_IN = frozenset({
    "point", "line", "lseg", "box", "path", "polygon", "circle", "inet", "cidr", "macaddr",
    "macaddr8", "tsvector", "tsquery", "int4range", "int8range", "numrange", "tsrange",
    "tstzrange", "daterange", "int4multirange", "int8multirange", "nummultirange",
    "tsmultirange", "tstzmultirange", "datemultirange", "money", "xml", "pg_lsn",
    "txid_snapshot", "pg_snapshot"})


def _generic(col: SourceColumn, dialect: str, options: TypeOptions,
             profile: ColumnProfile | None) -> ColumnChoice:
    spelled = col.declared.strip().upper()
    base = col.declared.strip().lower().removesuffix("[]")
    if dialect == "postgresql" and base in _PG_BUILT_IN and not options.sqlite_target:
        return ColumnChoice(col.declared.strip().lower(), [
            f"{base}: a PostgreSQL type, kept as it is"])
    if spelled == "NUMBER":
        return _by_range(profile, "NUMBER without precision")
    if dialect == "oracle" and spelled == "DATE":
        return ColumnChoice("timestamp(0)", ["Oracle DATE holds a time of day"])
    mapped = postgres_type(col.declared, tinyint1_boolean=options.tinyint1_boolean)
    choice = _from(mapped)
    if mapped.pg_type == "jsonb" and dialect == "postgresql":
        choice.conversions.append("json_text")  # the driver gives objects; COPY takes text
    if options.sqlite_target:
        choice.conversions = [c for c in choice.conversions if c != "json_text"]
    return choice


# ---- identity ------------------------------------------------------------------------------


def _identity(choice: ColumnChoice, options: TypeOptions) -> None:
    """auto_increment, serial, identity, AUTOINCREMENT -> GENERATED BY DEFAULT AS IDENTITY
    (its values copied as they are, the sequence restarted past them in post-data)."""
    if choice.pg_type not in INTEGER_TYPES:
        choice.notes.append(f"identity needs an integer type: {choice.pg_type} -> bigint")
        choice.pg_type = "bigint"
    choice.identity = True
    choice.notes.append("INTEGER PRIMARY KEY (SQLite assigns the next rowid)"
                        if options.sqlite_target else
                        "auto-increment -> GENERATED BY DEFAULT AS IDENTITY, restarted past "
                        "the copied values in post-data")
