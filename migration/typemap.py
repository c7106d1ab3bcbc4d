"""Source column types to PostgreSQL types, from the type as the source database spells it.

Works on the declared type text (e.g. `NUMBER(10,2)`, `VARCHAR2(100 CHAR)`, `TINYINT(1)`), so
Oracle, MariaDB, SQLite and PostgreSQL sources all go through the same rules. Oracle NUMBER is
mapped by precision and scale: whole numbers to smallint / integer / bigint by how many digits
they hold, anything else to numeric(p,s). Unsigned integers take the next wider type. What
depends on more than the declared text (the source dialect, the data, options) is decided by
scaffold_columns.py on top of these rules; SQLite's own affinity rules are `sqlite_affinity`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TYPE = re.compile(
    r"^\s*(?P<name>[A-Za-z][A-Za-z0-9_ ]*)"
    r"(?:\(\s*(?P<p>-?\d+|\*)\s*(?:(?:BYTE|CHAR)\s*)?(?:,\s*(?P<s>-?\d+)\s*)?\))?"
    r"\s*(?P<rest>[^()]*)$", re.IGNORECASE)


@dataclass(frozen=True)
class Mapped:
    """A PostgreSQL type for a source type, with a note when the mapping is a judgement."""

    pg_type: str
    note: str = ""


_SPATIAL = ("GEOMETRY", "POINT", "LINESTRING", "POLYGON", "MULTIPOINT", "MULTILINESTRING",
            "MULTIPOLYGON", "GEOMETRYCOLLECTION", "GEOGRAPHY", "SDO_GEOMETRY")
SPATIAL_NOTE = "spatial values kept as WKB in bytea (no PostGIS in the target)"


def postgres_type(declared: str, *, tinyint1_boolean: bool = True) -> Mapped:  # noqa: PLR0912
    """The PostgreSQL type for a source column declared as `declared` (a table of cases).
    `tinyint1_boolean`: whether MySQL's TINYINT(1) counts as boolean (a convention only:
    what a boolean target accepts when preflight compares types; `pt scaffold` makes it
    smallint unless --tinyint1-boolean)."""
    spelled = declared.strip().upper()
    if spelled.startswith("INTERVAL"):
        return Mapped("interval")
    if spelled.endswith("[]"):  # a PostgreSQL array of a type
        element = postgres_type(declared.strip()[:-2], tinyint1_boolean=tinyint1_boolean)
        return Mapped(f"{element.pg_type}[]", element.note)
    head = spelled.split("(")[0].strip()
    if head == "ENUM":
        return Mapped("text", "ENUM members become an enum type or a CHECK")
    if head == "SET":
        return Mapped("text[]", "SET becomes an array of its members")
    if head in _SPATIAL:
        return Mapped("bytea", SPATIAL_NOTE)
    match = _TYPE.match(declared or "")
    if match is None or not declared.strip():
        return Mapped("text", f"unknown type {declared!r} mapped to text")
    name = " ".join(match["name"].upper().split())
    precision = int(match["p"]) if match["p"] and match["p"] != "*" else None
    scale = int(match["s"]) if match["s"] else None
    rest = match["rest"].upper()
    # MariaDB/MySQL: `INT UNSIGNED` (no width) ends up in the name, `INT(10) UNSIGNED` in rest.
    unsigned = "UNSIGNED" in name.split() or "UNSIGNED" in rest.split()
    name = " ".join(w for w in name.split() if w not in ("UNSIGNED", "SIGNED", "ZEROFILL"))
    if name in ("NUMBER", "NUMERIC", "DECIMAL", "DEC"):
        return _number(precision, scale)
    if name in ("INTEGER", "INT", "INT4", "MEDIUMINT"):
        return Mapped("bigint" if unsigned and name != "MEDIUMINT" else "integer")
    if name in ("BIGINT", "INT8"):
        return Mapped("numeric(20)", "BIGINT UNSIGNED exceeds bigint") if unsigned else \
            Mapped("bigint")
    if name in ("SMALLINT", "INT2"):
        return Mapped("integer" if unsigned else "smallint")
    if name == "TINYINT":
        if precision == 1 and tinyint1_boolean:
            return Mapped("boolean", "TINYINT(1) read as boolean")
        return Mapped("smallint")
    if name == "YEAR":
        return Mapped("smallint", "YEAR kept as a number of years")
    if name in ("BOOLEAN", "BOOL", "BIT") and (precision in (None, 1)):
        return Mapped("boolean")
    if name in ("BIT", "VARBIT", "BIT VARYING"):  # PostgreSQL bit strings
        return Mapped(f"bit({precision})" if name == "BIT" else
                      f"varbit({precision})" if precision else "varbit")
    if name in ("FLOAT", "BINARY_FLOAT", "REAL", "FLOAT4"):
        return Mapped("real" if name != "FLOAT" or (precision or 53) <= 24 else
                      "double precision")
    if name in ("DOUBLE", "DOUBLE PRECISION", "BINARY_DOUBLE", "FLOAT8"):
        return Mapped("double precision")
    if name in ("VARCHAR2", "NVARCHAR2", "VARCHAR", "NVARCHAR", "CHARACTER VARYING",
                "VARCHAR CHARACTER"):
        return Mapped(f"varchar({precision})" if precision else "text")
    if name in ("CHAR", "NCHAR", "CHARACTER", "BPCHAR"):
        return Mapped(f"char({precision or 1})")
    if name in ("CLOB", "NCLOB", "TEXT", "LONG", "MEDIUMTEXT", "LONGTEXT", "TINYTEXT",
                "STRING", "XMLTYPE"):
        return Mapped("text")
    if name in ("BLOB", "RAW", "LONG RAW", "BYTEA", "BINARY", "VARBINARY", "LONGBLOB",
                "MEDIUMBLOB", "TINYBLOB", "BFILE"):
        return Mapped("bytea")
    if name == "DATE":
        return Mapped("date")
    if name == "DATETIME":
        return Mapped("timestamp")
    if name.startswith("TIMESTAMP"):
        return _timestamp(name, precision, rest)
    if name in ("TIME", "TIMETZ") or name.startswith("TIME WITH"):
        # PostgreSQL spells its own types TIME WITHOUT TIME ZONE / TIME WITH TIME ZONE.
        zoned = name == "TIMETZ" or name.startswith("TIME WITH TIME ZONE")
        return Mapped("timetz" if zoned else "time")
    if name in ("JSON", "JSONB"):
        return Mapped("jsonb")
    if name == "UUID":
        return Mapped("uuid")
    return Mapped("text", f"unknown type {declared!r} mapped to text")


def _number(precision: int | None, scale: int | None) -> Mapped:
    if precision is None:
        return Mapped("numeric", "NUMBER without precision kept exact as numeric")
    if scale is None or scale == 0:
        if precision <= 4:
            return Mapped("smallint")
        if precision <= 9:
            return Mapped("integer")
        if precision <= 18:
            return Mapped("bigint")
        return Mapped(f"numeric({precision})")
    if scale < 0:
        return Mapped(f"numeric({precision - scale})", f"negative scale {scale} widened")
    return Mapped(f"numeric({precision},{scale})")


def _timestamp(name: str, precision: int | None, rest: str) -> Mapped:
    zone = "WITH TIME ZONE" in f"{name} {rest}" or name == "TIMESTAMPTZ" or \
        "WITH LOCAL TIME ZONE" in f"{name} {rest}"
    base = "timestamptz" if zone else "timestamp"
    if precision is not None and precision != 6:
        return Mapped(f"{base}({min(precision, 6)})")
    return Mapped(base)


def sqlite_affinity(declared: str) -> str:
    """SQLite's type affinity of a declared type (https://www.sqlite.org/datatype3.html
    section 3.1, rules applied in order): INTEGER, TEXT, BLOB, REAL or NUMERIC."""
    spelled = declared.upper()
    if "INT" in spelled:
        return "INTEGER"
    if any(word in spelled for word in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if "BLOB" in spelled or not spelled.strip():
        return "BLOB"
    if any(word in spelled for word in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


INTEGER_RANGES = (("smallint", -(2**15), 2**15 - 1), ("integer", -(2**31), 2**31 - 1),
                  ("bigint", -(2**63), 2**63 - 1))


def integer_type_for(minimum: int, maximum: int) -> str:
    """The narrowest PostgreSQL integer type holding [minimum, maximum] (numeric beyond)."""
    for name, low, high in INTEGER_RANGES:
        if low <= minimum and maximum <= high:
            return name
    return "numeric"
