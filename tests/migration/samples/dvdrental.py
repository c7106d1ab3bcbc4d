"""A DVD-rental shop modelled on MySQL's "Sakila" sample: 16 tables, on MariaDB (the primary
dialect), SQLite (as a MySQL -> SQLite dump writes it) and PostgreSQL (Pagila style).

What it models, beyond ordinary tables:
- a foreign-key cycle, store.manager_staff_id -> staff and staff.store_id -> store, that is also
  a row-level cycle: store 1 is managed by staff 1, who works at store 1 (`CYCLE`);
- ENUM (film.rating), SET (film.special_features), YEAR (film.release_year, with its bounds
  1901 and 2155), unsigned TINYINT/SMALLINT/MEDIUMINT/INT keys (and one rental id above
  2**31 - 1), AUTO_INCREMENT keys with a gap at the end (a film is inserted and deleted again,
  so the counter is ahead of max(film_id)), TIMESTAMP ... ON UPDATE CURRENT_TIMESTAMP,
  DATETIME, DECIMAL(4,2) / DECIMAL(5,2), TINYINT(1) booleans, a BLOB with all 256 byte values,
  an empty one and NULL, JSON (with the JSON value null next to SQL NULL), a POINT;
- secondary, unique, composite and FULLTEXT indexes, a CHECK, ON DELETE SET NULL and
  ON DELETE RESTRICT ON UPDATE CASCADE;
- views (customer_list, film_list), triggers (ins_film / upd_film / del_film keep film_text in
  sync; payment_date), routines (MariaDB: inventory_in_stock, film_in_stock);
- MariaDB only: zero dates ('0000-00-00 00:00:00') in customer.create_date and
  rental.return_date.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, func
from sqlalchemy.sql.elements import ColumnElement

from tests.migration.conftest import Db
from tests.migration.samples import dvdrental_mariadb as maria
from tests.migration.samples import dvdrental_postgresql as postgres
from tests.migration.samples import dvdrental_sqlite as lite
from tests.migration.samples._sql import Wrap, load, raw, session
from tests.migration.samples.dvdrental_data import TableRows, generate, sizes
from tests.migration.samples.info import ForeignKey, SampleInfo, Trait

KINDS = ("mariadb", "sqlite", "postgresql")

# (store_id, staff_id): store 1 is managed by staff 1 who works at store 1; same for 2.
CYCLE = ((1, 1), (2, 2))

RC = ("RESTRICT", "CASCADE")
_FKS: tuple[tuple[str, str, str, str, str, tuple[str, str]], ...] = (
    ("fk_city_country", "city", "country_id", "country", "country_id", RC),
    ("fk_address_city", "address", "city_id", "city", "city_id", RC),
    ("fk_film_language", "film", "language_id", "language", "language_id", RC),
    ("fk_film_language_original", "film", "original_language_id", "language", "language_id",
     RC),
    ("fk_film_actor_actor", "film_actor", "actor_id", "actor", "actor_id", RC),
    ("fk_film_actor_film", "film_actor", "film_id", "film", "film_id", RC),
    ("fk_film_category_film", "film_category", "film_id", "film", "film_id", RC),
    ("fk_film_category_category", "film_category", "category_id", "category", "category_id",
     RC),
    ("fk_store_staff", "store", "manager_staff_id", "staff", "staff_id", RC),
    ("fk_store_address", "store", "address_id", "address", "address_id", RC),
    ("fk_staff_store", "staff", "store_id", "store", "store_id", RC),
    ("fk_staff_address", "staff", "address_id", "address", "address_id", RC),
    ("fk_customer_address", "customer", "address_id", "address", "address_id", RC),
    ("fk_customer_store", "customer", "store_id", "store", "store_id", RC),
    ("fk_inventory_store", "inventory", "store_id", "store", "store_id", RC),
    ("fk_inventory_film", "inventory", "film_id", "film", "film_id", RC),
    ("fk_rental_staff", "rental", "staff_id", "staff", "staff_id", RC),
    ("fk_rental_inventory", "rental", "inventory_id", "inventory", "inventory_id", RC),
    ("fk_rental_customer", "rental", "customer_id", "customer", "customer_id", RC),
    ("fk_payment_rental", "payment", "rental_id", "rental", "rental_id", ("SET NULL", "CASCADE")),
    ("fk_payment_customer", "payment", "customer_id", "customer", "customer_id", RC),
    ("fk_payment_staff", "payment", "staff_id", "staff", "staff_id", RC),
)

FOREIGN_KEYS = tuple(ForeignKey(t, (c,), p, (k,), on_delete=d, on_update=u)
                     for _, t, c, p, k, (d, u) in _FKS)

PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    **{t: (f"{t}_id",) for t in ("actor", "address", "category", "city", "country", "customer",
                                  "film", "inventory", "language", "payment",
                                  "rental", "staff", "store")},
    "film_text": ("film_id",),
    "film_actor": ("actor_id", "film_id"),
    "film_category": ("film_id", "category_id"),
}

COMMON = frozenset({
    Trait.FK_CYCLE, Trait.ROW_CYCLE, Trait.ENUM, Trait.SET, Trait.YEAR, Trait.BLOB,
    Trait.DECIMAL, Trait.TIMESTAMP, Trait.COMPOSITE_PK, Trait.SECONDARY_INDEX, Trait.UNIQUE,
    Trait.CHECK, Trait.FK_SET_NULL, Trait.FK_RESTRICT_CASCADE, Trait.JSON, Trait.JSON_NULL,
    Trait.VIEWS, Trait.TRIGGERS, Trait.NON_ASCII, Trait.EMPTY_VS_NULL,
    Trait.UNSIGNED_ABOVE_SIGNED,
})
TRAITS: dict[str, frozenset[Trait]] = {
    "mariadb": COMMON | {Trait.UNSIGNED, Trait.MEDIUMINT, Trait.AUTO_INCREMENT,
                         Trait.ON_UPDATE_TIMESTAMP, Trait.DATETIME, Trait.TINYINT_BOOL,
                         Trait.ROUTINES, Trait.FULLTEXT, Trait.GEOMETRY, Trait.ZERO_DATES},
    "sqlite": COMMON | {Trait.UNSIGNED, Trait.MEDIUMINT, Trait.AUTO_INCREMENT, Trait.DATETIME,
                        Trait.TINYINT_BOOL, Trait.MYSQL_DECLARED_TYPES},
    "postgresql": COMMON | {Trait.IDENTITY, Trait.SERIAL, Trait.TIMESTAMPTZ, Trait.BOOLEAN,
                            Trait.DOMAIN, Trait.ARRAY, Trait.ROUTINES, Trait.FULLTEXT,
                            Trait.GEOMETRY},
}

# Applied after the rows: exercises upd_film (and ON UPDATE semantics: last_update is set
# explicitly, so it stays deterministic) and del_film, leaving the key counter ahead.
_RETITLE = ("UPDATE film SET title = 'ACADEMY DINOSAUR (REMASTERED)', "
            "last_update = '2006-02-15 05:03:42' WHERE film_id = 1")


def build(db: Db, scale: int = 1) -> SampleInfo:
    """Create the DVD-rental schema and its rows in `db` (an empty database); scale=1 is about
    3,500 rows, each scale step adds as many (at most dvdrental_data.MAX_SCALE)."""
    if db.kind not in KINDS:
        raise ValueError(f"dvdrental has no {db.kind} spelling")
    data = generate(db.kind, scale)
    films = sizes(scale).films
    with session(db) as connection:
        {"mariadb": _mariadb, "sqlite": _sqlite, "postgresql": _postgresql}[db.kind](
            connection, data, films)
    return info(db.kind, scale)


def info(kind: str, scale: int = 1) -> SampleInfo:
    """The SampleInfo that build(db of `kind`, scale) returns, without building."""
    counts = {name: len(rows.rows) for name, rows in generate(kind, scale).items()}
    counts["film"] -= 1  # the deleted one
    counts["film_text"] = counts["film"]
    views, triggers = {"mariadb": (maria.VIEWS, maria.TRIGGERS),
                       "sqlite": (lite.VIEWS, lite.TRIGGERS),
                       "postgresql": (postgres.VIEWS, postgres.TRIGGERS)}[kind]
    routines = {"mariadb": tuple(maria.ROUTINES), "postgresql": tuple(postgres.FUNCTIONS)}
    return SampleInfo(
        sample="dvdrental", kind=kind, tables=dict(sorted(counts.items())),
        primary_keys=dict(PRIMARY_KEYS), foreign_keys=FOREIGN_KEYS, traits=TRAITS[kind],
        views=tuple(views), triggers=tuple(triggers), routines=routines.get(kind, ()),
        fulltext_indexes=() if kind == "sqlite" else ("film_text.idx_title_description",))


def _load_all(connection: Connection, kind: str, data: Mapping[str, TableRows],
              wrap: Mapping[str, Mapping[str, Wrap]] | None = None) -> None:
    for name, rows in data.items():
        load(connection, kind, name, rows.columns, rows.rows, (wrap or {}).get(name))


def _finish(connection: Connection, films: int) -> None:
    raw(connection, _RETITLE, f"DELETE FROM film WHERE film_id = {films + 1}")


def _point(value: ColumnElement[Any]) -> ColumnElement[Any]:
    return func.ST_PointFromText(value)


def _mariadb(connection: Connection, data: Mapping[str, TableRows], films: int) -> None:
    raw(connection, *maria.TABLES, *maria.TRIGGERS.values(), *maria.ROUTINES.values(),
        *maria.VIEWS.values())
    _load_all(connection, "mariadb", data, {"address": {"location": _point}})
    _finish(connection, films)


def _sqlite(connection: Connection, data: Mapping[str, TableRows], films: int) -> None:
    raw(connection, *lite.TABLES, *lite.INDEXES, *lite.TRIGGERS.values(),
        *lite.VIEWS.values())
    _load_all(connection, "sqlite", data)
    _finish(connection, films)


def _postgresql(connection: Connection, data: Mapping[str, TableRows], films: int) -> None:
    raw(connection, *postgres.TYPES, *postgres.TABLES, *postgres.FUNCTIONS.values(),
        *postgres.TRIGGERS.values(), *postgres.VIEWS.values())
    _load_all(connection, "postgresql", data)
    _finish(connection, films)
    last = {name: max(row[0] for row in rows.rows) for name, rows in data.items()
            if len(PRIMARY_KEYS[name]) == 1}
    raw(connection, *(f"SELECT setval(pg_get_serial_sequence('{t}', '{PRIMARY_KEYS[t][0]}'), {n})"
                      for t, n in sorted(last.items())))
    raw(connection, *postgres.INDEXES, *(
        f"ALTER TABLE {t} ADD CONSTRAINT {name} FOREIGN KEY ({c}) REFERENCES {p} ({k}) "
        f"ON DELETE {d} ON UPDATE {u}" for name, t, c, p, k, (d, u) in _FKS))
