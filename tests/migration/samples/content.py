"""Read a whole table back, normalised so a source and its PostgreSQL target compare by value.

`content(db, table)` (`contents(db, tables)` for several, on one connection) returns one tuple
per row, values in column order (or in `columns` order), rows sorted by the primary key (then
by the whole row; tables without a key by the whole row). Values are normalised by the
column's type on its own database, then by the Python value:

- NULL is None; JSON null is the string 'null' (a JSON value, not NULL).
- Booleans become 0 / 1 (TINYINT(1), SQLite 0/1 and PostgreSQL boolean compare equal).
- Integers stay int. Decimals stay Decimal (Decimal('1.5') == Decimal('1.50') == ... is value
  equality). Floats become Decimal(repr(f)), the shortest decimal that round-trips, so a
  SQLite REAL 0.99 equals a numeric 0.99. NaN and infinities become 'NaN', 'Infinity',
  '-Infinity'.
- Text stays str, unchanged, except PostgreSQL character(n) (bpchar), whose trailing spaces are
  not significant and are removed (MariaDB already drops them from CHAR values).
- Bytes (bytea, BLOB, memoryview, bytearray) become bytes.
- Dates are date; date-times are naive datetimes: aware ones (timestamptz) are converted to UTC,
  MariaDB TIMESTAMP is read with the session time zone '+00:00' so it is UTC too, DATETIME and
  timestamp without time zone are kept as stored. SQLite text in a column whose declared type
  names a date or time is parsed with fromisoformat (left as text when it does not parse).
- MySQL zero dates ('0000-00-00', '0000-00-00 00:00:00') become `zero_date` (None by default:
  PostgreSQL cannot hold them, and NULL is the usual mapping). Partly zero dates
  ('2006-02-00') stay text.
- TIME: MariaDB's timedelta becomes datetime.time when it is within one day (else stays
  timedelta); PostgreSQL's time stays time.
- MariaDB SET becomes a sorted tuple of its members ('' is ()), and so does a PostgreSQL
  array (its order is not kept: arrays stand for SETs here; arrays of an enum type, as
  pgloader makes of a SET, are read as text[]). SQLite has no SET type: its
  comma-separated text stays text.
- JSON (PostgreSQL json/jsonb, MariaDB JSON, SQLite declared json) becomes canonical JSON text:
  parsed and dumped with sorted keys, no spaces, non-ASCII kept.
- Geometry is read as WKT (MariaDB ST_AsText, PostGIS ST_AsText, PostgreSQL point as text);
  points become 'POINT(x y)' with each coordinate as repr(float).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ARRAY, TEXT, Connection, cast, column, func, select, table, text
from sqlalchemy.sql.elements import ColumnElement, quoted_name

from tests.migration.conftest import Db
from tests.migration.samples._sql import SESSION, raw

ZERO_DATES = frozenset({"0000-00-00", "0000-00-00 00:00:00"})
MARIA_GEOMETRY = frozenset({"geometry", "point", "linestring", "polygon", "multipoint",
                            "multilinestring", "multipolygon", "geometrycollection"})
PG_GEOMETRIC = frozenset({"point", "line", "lseg", "box", "path", "polygon", "circle"})
_POINT = re.compile(r"^\s*(?:POINT\s*)?\(\s*([-+0-9.eE]+)[\s,]+([-+0-9.eE]+)\s*\)\s*$")


@dataclass(frozen=True)
class Column:
    """A column as content() reads it: `kind` decides the normalisation."""

    name: str
    kind: str  # json | set | array | enum_array | geometry | postgis | pg_geometric | date |
    #            datetime | time | bpchar | plain


def content(db: Db, name: str, *, schema: str | None = None,
            columns: Sequence[str] | None = None, zero_date: Any = None) -> list[tuple[Any, ...]]:
    """Every row of table `name` (exact name; `schema`: PostgreSQL schema or MariaDB database,
    default the current one), normalised as the module docstring says, sorted by key."""
    with _reading(db) as connection:
        return read(connection, db.kind, name, schema=schema, columns=columns,
                    zero_date=zero_date)


def contents(db: Db, names: Iterable[str], *, schema: str | None = None,
             zero_date: Any = None) -> dict[str, list[tuple[Any, ...]]]:
    """content() of each table of `names`, read on one connection (a MariaDB connection
    costs about 0.1 s)."""
    with _reading(db) as connection:
        return {name: read(connection, db.kind, name, schema=schema, zero_date=zero_date)
                for name in names}


@contextmanager
def _reading(db: Db) -> Iterator[Connection]:
    with db.engine.connect() as connection:
        raw(connection, *SESSION[db.kind][:2])  # sql_mode and time zone: reading settings
        yield connection


def read(connection: Connection, kind: str, name: str, *, schema: str | None = None,
         columns: Sequence[str] | None = None, zero_date: Any = None) -> list[tuple[Any, ...]]:
    """content() on an open connection to a database of `kind` (a Db kind)."""
    described, key = describe(connection, kind, name, schema)
    if not described:
        raise LookupError(f"no table {name!r} in the {kind} database")
    by_name = {c.name: c for c in described}
    chosen = [by_name[c] for c in columns] if columns is not None else described
    source = table(quoted_name(name, quote=True),
                   *(column(quoted_name(c.name, quote=True)) for c in chosen),
                   schema=quoted_name(schema, quote=True) if schema else None)
    statement = select(*(_expression(kind, c, source.c[c.name]) for c in chosen))
    rows = connection.execute(statement.select_from(source)).all()
    normalised = [tuple(_value(v, c.kind, zero_date) for v, c in zip(row, chosen, strict=True))
                  for row in rows]
    positions = [i for k in key for i, c in enumerate(chosen) if c.name == k]
    return sorted(normalised, key=lambda row: (tuple(_order(row[i]) for i in positions),
                                               tuple(_order(v) for v in row)))


def describe(connection: Connection, kind: str, name: str,
             schema: str | None) -> tuple[list[Column], list[str]]:
    """The columns of a table (in order, with their content kind) and its key columns."""
    if kind == "sqlite":
        return _describe_sqlite(connection, name)
    if kind == "mariadb":
        return _describe_mariadb(connection, name, schema)
    return _describe_postgresql(connection, name, schema)


def _describe_sqlite(connection: Connection, name: str) -> tuple[list[Column], list[str]]:
    found = connection.execute(text("SELECT name, type, pk FROM pragma_table_info(:t) "
                                    "ORDER BY cid"), {"t": name}).all()
    columns = [Column(n, _sqlite_kind(t or "")) for n, t, _ in found]
    return columns, [n for n, _, pk in sorted(found, key=lambda r: r[2]) if pk]


def _sqlite_kind(declared: str) -> str:
    lowered = declared.lower()
    if lowered.startswith("json"):
        return "json"
    if "date" in lowered or "time" in lowered:
        if "datetime" in lowered or "timestamp" in lowered:
            return "datetime"
        return "date" if "date" in lowered else "time"
    return "plain"


def _describe_mariadb(connection: Connection, name: str,
                      schema: str | None) -> tuple[list[Column], list[str]]:
    where = "TABLE_SCHEMA = COALESCE(:s, DATABASE()) AND TABLE_NAME = :t"
    params = {"s": schema, "t": name}
    found = [r[1:] for r in connection.execute(text(
        f"SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS "
        f"WHERE {where} ORDER BY ORDINAL_POSITION"), params) if r[0] == name]
    checks = {r[1] for r in connection.execute(text(
        "SELECT TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
        "WHERE CONSTRAINT_SCHEMA = COALESCE(:s, DATABASE()) AND TABLE_NAME = :t"), params)
        if r[0] == name}
    key = [r[1] for r in connection.execute(text(
        f"SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE "
        f"WHERE {where} AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION"), params)
        if r[0] == name]
    json_check = "json_valid(`{}`)"
    columns = [Column(c, _mariadb_kind(t.lower(), json_check.format(c.replace("`", "``"))
                                       in checks)) for c, t in found]
    return columns, key


def _mariadb_kind(data_type: str, is_json: bool) -> str:
    if is_json or data_type == "json":
        return "json"
    if data_type == "set":
        return "set"
    if data_type in MARIA_GEOMETRY:
        return "geometry"
    if data_type == "date":
        return "date"
    if data_type in ("datetime", "timestamp"):
        return "datetime"
    return "time" if data_type == "time" else "plain"


def _describe_postgresql(connection: Connection, name: str,
                         schema: str | None) -> tuple[list[Column], list[str]]:
    relation = ("(SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relname = :t AND n.nspname = COALESCE(:s, current_schema()))")
    params = {"s": schema, "t": name}
    found = connection.execute(text(
        "SELECT a.attname, t.typname, t.typcategory, COALESCE(b.typname, ''), "
        "COALESCE(e.typtype, '') "
        "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "LEFT JOIN pg_type b ON b.oid = t.typbasetype AND t.typtype = 'd' "
        "LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A' "
        f"WHERE a.attrelid = {relation} AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum"), params).all()
    key = [r[0] for r in connection.execute(text(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
        "ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) "
        f"WHERE i.indrelid = {relation} AND i.indisprimary "
        "ORDER BY array_position(i.indkey::int2[], a.attnum)"), params)]
    return [Column(n, _pg_kind(base or typname, category, element))
            for n, typname, category, base, element in found], key


def _pg_kind(typname: str, category: str, element: str) -> str:
    if typname in ("json", "jsonb"):
        return "json"
    if category == "A":
        return "enum_array" if element == "e" else "array"
    if typname in ("geometry", "geography"):
        return "postgis"
    if typname in PG_GEOMETRIC:
        return "pg_geometric"
    return "bpchar" if typname == "bpchar" else "plain"


def _expression(kind: str, described: Column, value: ColumnElement[Any]) -> ColumnElement[Any]:
    if kind == "postgresql" and described.kind in ("json", "pg_geometric"):
        return cast(value, TEXT)
    if described.kind == "enum_array":  # psycopg leaves arrays of unknown types as text
        return cast(value, ARRAY(TEXT))
    if described.kind in ("geometry", "postgis"):
        return func.ST_AsText(value)
    return value


def _value(value: Any, kind: str, zero_date: Any) -> Any:
    """One value normalised (see the module docstring)."""
    if value is None:
        return None
    if kind == "json":
        return _json(value)
    if kind == "set":
        return tuple(sorted(m for m in value.split(",") if m)) if isinstance(value, str) \
            else tuple(sorted(value))
    if kind in ("array", "enum_array"):
        return tuple(sorted(value, key=_order))
    if kind in ("geometry", "postgis", "pg_geometric"):
        return _wkt(value)
    if kind == "bpchar" and isinstance(value, str):
        return value.rstrip(" ")
    if isinstance(value, str):
        return _text_date(value, kind, zero_date)
    return _plain(value)


def _plain(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return Decimal(repr(value))
    if isinstance(value, Decimal) and not value.is_finite():
        return "NaN" if value.is_nan() else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, (memoryview, bytearray)):
        return bytes(value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, timedelta) and timedelta(0) <= value < timedelta(days=1):
        return (datetime.min + value).time()
    return value


def _text_date(value: str, kind: str, zero_date: Any) -> Any:
    """A date held as text: zero dates, and SQLite's ISO text parsed."""
    if kind not in ("date", "datetime", "time"):
        return value
    if value in ZERO_DATES:
        return zero_date
    try:
        if kind == "date":
            return date.fromisoformat(value)
        if kind == "time":
            return time.fromisoformat(value)
        return _plain(datetime.fromisoformat(value))
    except ValueError:
        return value


def _json(value: Any) -> str:
    try:
        parsed = json.loads(value) if isinstance(value, (str, bytes)) else value
    except ValueError:
        return str(value)
    return json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _wkt(value: Any) -> Any:
    if isinstance(value, (bytes, memoryview)):
        return bytes(value)
    match = _POINT.match(str(value))
    if match is None:
        return str(value)
    return f"POINT({float(match[1])!r} {float(match[2])!r})"


def _order(value: Any) -> tuple[int, str, Any]:
    """A sort key that orders any mix of normalised values without comparing across types
    (numbers of any Python type compare by value)."""
    if value is None:
        return (0, "", 0)
    if isinstance(value, (int, Decimal)):
        return (1, "", Decimal(value))
    if isinstance(value, (str, bytes)):
        return (2, type(value).__name__, value)
    if isinstance(value, (date, time, timedelta)):
        return (3, type(value).__name__, value)
    if isinstance(value, tuple):
        return (4, "", tuple(_order(v) for v in value))
    return (5, type(value).__name__, repr(value))
