"""A music store modelled on the "Chinook" sample: 11 tables with CamelCase names, on SQLite
(as Chinook_Sqlite.sql writes it: [bracket] quoting, NVARCHAR, inline foreign keys), MariaDB
(backquotes, AUTO_INCREMENT keys, NVARCHAR, foreign keys added by ALTER TABLE) and PostgreSQL
(quoted "CamelCase" names, varchar, foreign keys added after the data).

What it models: CamelCase table and column names (`GenreId`, `UnitPrice`), NUMERIC(10,2),
NVARCHAR(n), DATETIME, the composite key of PlaylistTrack, the Employee.ReportsTo
self-reference and Customer.SupportRepId -> Employee, non-ASCII and oddly spaced text, NULL next
to ''. MariaDB's NVARCHAR is utf8mb3 and cannot hold emoji, so the columns that do
(Artist.Name, Album.Title, Track.Name, Playlist.Name) are VARCHAR (utf8mb4) there. SQLite also
gets the values its declared types do not restrict (see musicstore_data).
"""

from __future__ import annotations

from tests.migration.conftest import Db
from tests.migration.samples._sql import load, raw, session
from tests.migration.samples.info import ForeignKey, SampleInfo, Trait
from tests.migration.samples.musicstore_data import generate

KINDS = ("sqlite", "mariadb", "postgresql")

Spec = tuple[tuple[str, str, bool], ...]  # (column, logical type, NOT NULL)

_ADDRESS: Spec = (("Address", "nv70", False), ("City", "nv40", False),
                  ("State", "nv40", False), ("Country", "nv40", False),
                  ("PostalCode", "nv10", False), ("Phone", "nv24", False),
                  ("Fax", "nv24", False))
TABLES: dict[str, Spec] = {
    "Artist": (("ArtistId", "int", True), ("Name", "v4_120", False)),
    "Genre": (("GenreId", "int", True), ("Name", "nv120", False)),
    "MediaType": (("MediaTypeId", "int", True), ("Name", "nv120", False)),
    "Album": (("AlbumId", "int", True), ("Title", "v4_160", True), ("ArtistId", "int", True)),
    "Track": (("TrackId", "int", True), ("Name", "v4_200", True), ("AlbumId", "int", False),
              ("MediaTypeId", "int", True), ("GenreId", "int", False),
              ("Composer", "nv220", False), ("Milliseconds", "int", True),
              ("Bytes", "int", False), ("UnitPrice", "money", True)),
    "Playlist": (("PlaylistId", "int", True), ("Name", "v4_120", False)),
    "PlaylistTrack": (("PlaylistId", "int", True), ("TrackId", "int", True)),
    "Employee": (("EmployeeId", "int", True), ("LastName", "nv20", True),
                 ("FirstName", "nv20", True), ("Title", "nv30", False),
                 ("ReportsTo", "int", False), ("BirthDate", "datetime", False),
                 ("HireDate", "datetime", False), *_ADDRESS, ("Email", "nv60", False),
                 ("Extension", "nv5", False)),
    "Customer": (("CustomerId", "int", True), ("FirstName", "nv40", True),
                 ("LastName", "nv20", True), ("Company", "nv80", False), *_ADDRESS,
                 ("Email", "nv60", True), ("SupportRepId", "int", False)),
    "Invoice": (("InvoiceId", "int", True), ("CustomerId", "int", True),
                ("InvoiceDate", "datetime", True), ("BillingAddress", "nv70", False),
                ("BillingCity", "nv40", False), ("BillingState", "nv40", False),
                ("BillingCountry", "nv40", False), ("BillingPostalCode", "nv10", False),
                ("Total", "money", True)),
    "InvoiceLine": (("InvoiceLineId", "int", True), ("InvoiceId", "int", True),
                    ("TrackId", "int", True), ("UnitPrice", "money", True),
                    ("Quantity", "int", True)),
}
PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    **{t: (s[0][0],) for t, s in TABLES.items()}, "PlaylistTrack": ("PlaylistId", "TrackId")}

_FKS = (  # (child, column, parent, parent column)
    ("Album", "ArtistId", "Artist", "ArtistId"),
    ("Customer", "SupportRepId", "Employee", "EmployeeId"),
    ("Employee", "ReportsTo", "Employee", "EmployeeId"),
    ("Invoice", "CustomerId", "Customer", "CustomerId"),
    ("InvoiceLine", "InvoiceId", "Invoice", "InvoiceId"),
    ("InvoiceLine", "TrackId", "Track", "TrackId"),
    ("PlaylistTrack", "PlaylistId", "Playlist", "PlaylistId"),
    ("PlaylistTrack", "TrackId", "Track", "TrackId"),
    ("Track", "AlbumId", "Album", "AlbumId"),
    ("Track", "GenreId", "Genre", "GenreId"),
    ("Track", "MediaTypeId", "MediaType", "MediaTypeId"),
)
FOREIGN_KEYS = tuple(ForeignKey(t, (c,), p, (k,)) for t, c, p, k in _FKS)
# Chinook indexes every foreign key but PlaylistTrack.PlaylistId (the key's first column).
INDEXES = tuple((f"IFK_{t}{c}", t, c) for t, c, _, _ in _FKS if (t, c) != ("PlaylistTrack",
                                                                          "PlaylistId"))

COMMON = frozenset({Trait.CAMEL_CASE, Trait.DECIMAL, Trait.COMPOSITE_PK, Trait.SELF_REFERENCE,
                    Trait.SECONDARY_INDEX, Trait.NON_ASCII, Trait.EMOJI, Trait.ODD_WHITESPACE,
                    Trait.EMPTY_VS_NULL})
TRAITS: dict[str, frozenset[Trait]] = {
    "sqlite": COMMON | {Trait.NVARCHAR, Trait.DATETIME, Trait.SQLITE_BIG_INTEGER,
                        Trait.SQLITE_OVERLONG_TEXT, Trait.SQLITE_MIXED_NUMERIC},
    "mariadb": COMMON | {Trait.NVARCHAR, Trait.NVARCHAR_UTF8MB3, Trait.DATETIME,
                         Trait.AUTO_INCREMENT},
    "postgresql": COMMON | {Trait.TIMESTAMP},
}

_TYPES = {
    "sqlite": {"int": "INTEGER", "datetime": "DATETIME", "money": "NUMERIC(10,2)",
               "nv": "NVARCHAR({})", "v4_": "NVARCHAR({})"},
    "mariadb": {"int": "INT", "datetime": "DATETIME", "money": "NUMERIC(10,2)",
                "nv": "NVARCHAR({})", "v4_": "VARCHAR({})"},
    "postgresql": {"int": "integer", "datetime": "timestamp", "money": "numeric(10,2)",
                   "nv": "varchar({})", "v4_": "varchar({})"},
}
_QUOTES = {"sqlite": "[{}]", "mariadb": "`{}`", "postgresql": '"{}"'}
NO_ACTION = "ON DELETE NO ACTION ON UPDATE NO ACTION"


def _type(kind: str, logical: str) -> str:
    for prefix in ("v4_", "nv"):
        if logical.startswith(prefix):
            return _TYPES[kind][prefix].format(logical.removeprefix(prefix))
    return _TYPES[kind][logical]


def create_table(kind: str, name: str) -> str:
    """CREATE TABLE for `name`, spelled as the sample's dump for `kind` writes it."""
    q = _QUOTES[kind].format
    key = PRIMARY_KEYS[name]
    auto = kind == "mariadb" and len(key) == 1
    lines = [f"{q(c)} {_type(kind, t)}{' NOT NULL' if not_null else ''}"
             f"{' AUTO_INCREMENT' if auto and c == key[0] else ''}"
             for c, t, not_null in TABLES[name]]
    lines.append(f"CONSTRAINT {q('PK_' + name)} PRIMARY KEY ({', '.join(q(c) for c in key)})")
    if kind == "sqlite":
        lines += [f"FOREIGN KEY ({q(c)}) REFERENCES {q(p)} ({q(k)}) {NO_ACTION}"
                  for t, c, p, k in _FKS if t == name]
    body = ",\n    ".join(lines)
    suffix = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4" if kind == "mariadb" else ""
    return f"CREATE TABLE {q(name)}\n(\n    {body}\n){suffix}"


def post_data(kind: str) -> list[str]:
    """Indexes, and on MariaDB / PostgreSQL the foreign keys (ALTER TABLE)."""
    q = _QUOTES[kind].format
    statements = [f"CREATE INDEX {q(n)} ON {q(t)} ({q(c)})" for n, t, c in INDEXES]
    if kind != "sqlite":
        statements += [f"ALTER TABLE {q(t)} ADD CONSTRAINT {q(f'FK_{t}{c}')} FOREIGN KEY "
                       f"({q(c)}) REFERENCES {q(p)} ({q(k)}) {NO_ACTION}"
                       for t, c, p, k in _FKS]
    return statements


def build(db: Db, scale: int = 1) -> SampleInfo:
    """Create the music-store schema and its rows in `db` (an empty database); scale=1 is
    about 4,700 rows, and each scale step adds as many."""
    if db.kind not in KINDS:
        raise ValueError(f"musicstore has no {db.kind} spelling")
    data = generate(db.kind, scale)
    with session(db) as connection:
        raw(connection, *(create_table(db.kind, name) for name in TABLES))
        if db.kind == "sqlite":
            raw(connection, *post_data(db.kind))
        for name, rows in data.items():
            load(connection, db.kind, name, rows.columns, rows.rows)
        if db.kind != "sqlite":
            raw(connection, *post_data(db.kind))
    return info(db.kind, scale)


def info(kind: str, scale: int = 1) -> SampleInfo:
    """The SampleInfo that build(db of `kind`, scale) returns, without building."""
    counts = {name: len(rows.rows) for name, rows in generate(kind, scale).items()}
    return SampleInfo(sample="musicstore", kind=kind, tables=dict(sorted(counts.items())),
                      primary_keys=dict(PRIMARY_KEYS), foreign_keys=FOREIGN_KEYS,
                      traits=TRAITS[kind])
