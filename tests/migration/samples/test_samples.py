"""The sample builders themselves: each schema builds on each of its dialects, holds what its
SampleInfo says, and content() / fingerprint() read it back."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy import inspect, text

from tests.migration.conftest import Db
from tests.migration.samples import catalog, dvdrental, hostile, musicstore
from tests.migration.samples.content import content, contents
from tests.migration.samples.dvdrental_data import ALL_BYTES, BIG_RENTAL_ID
from tests.migration.samples.fingerprint import fingerprint
from tests.migration.samples.info import SampleInfo, Trait
from tests.migration.samples.musicstore_data import (
    BIG_BYTES,
    LONG_EXTENSION,
    NEGATIVE_BYTES,
    generate,
)

KINDS = ["sqlite", "mariadb", "postgresql"]

# SQLAlchemy's reflection warns about SQLite's MySQL-style types ("smallint(5) unsigned") and
# MariaDB's POINT; the tests reflect on purpose.
pytestmark = [pytest.mark.filterwarnings("ignore:Could not instantiate type"),
              pytest.mark.filterwarnings("ignore:Did not recognize type")]
BUILDERS: dict[str, Callable[[Db, int], SampleInfo]] = {
    "dvdrental": dvdrental.build, "musicstore": musicstore.build}


def scalar(db: Db, query: str, **params: Any) -> Any:
    with db.engine.connect() as connection:
        return connection.execute(text(query), params).scalar()


def all_counts(db: Db, info: SampleInfo) -> dict[str, int]:
    return {t: len(rows) for t, rows in contents(db, info.tables).items()}


# ---- every schema on every dialect ----------------------------------------------------------


@pytest.mark.parametrize("sample", sorted(BUILDERS))
@pytest.mark.parametrize("any_db", KINDS, indirect=True)
def test_builds_with_the_rows_tables_and_keys_its_info_lists(sample: str, any_db: Db) -> None:
    info = BUILDERS[sample](any_db, 1)
    assert info.kind == any_db.kind
    assert any_db.tables() == set(info.tables)
    assert all_counts(any_db, info) == info.tables
    assert 2000 < info.total_rows < 6000
    with any_db.engine.connect() as connection:
        inspector = inspect(connection)
        keys = {t: tuple(inspector.get_pk_constraint(t)["constrained_columns"])
                for t in info.tables}
    assert keys == info.primary_keys
    assert catalog.foreign_keys(any_db) == set(info.foreign_keys)


@pytest.mark.parametrize("any_db", KINDS, indirect=True)
def test_dvdrental_views_triggers_routines_and_fulltext_exist(any_db: Db) -> None:
    info = dvdrental.build(any_db)
    found = catalog.objects(any_db)
    assert found["views"] == set(info.views)
    assert found["triggers"] == set(info.triggers)
    assert found["routines"] == set(info.routines)
    assert found["fulltext_indexes"] == set(info.fulltext_indexes)
    assert (Trait.ROUTINES in info.traits) == bool(info.routines)
    assert scalar(any_db, "SELECT count(*) FROM customer_list") == info.tables["customer"]
    assert scalar(any_db, "SELECT count(*) FROM film_list") >= info.tables["film"]


@pytest.mark.parametrize("any_db", KINDS, indirect=True)
def test_dvdrental_has_the_row_level_staff_store_cycle(any_db: Db) -> None:
    dvdrental.build(any_db)
    cycle = any_db.rows("SELECT s.store_id, m.staff_id FROM store s "
                        "JOIN staff m ON m.staff_id = s.manager_staff_id "
                        "WHERE m.store_id = s.store_id")
    assert cycle == list(dvdrental.CYCLE)


@pytest.mark.parametrize("any_db", KINDS, indirect=True)
def test_dvdrental_blobs_round_trip(any_db: Db) -> None:
    dvdrental.build(any_db)
    by_staff = dict(content(any_db, "staff", columns=["staff_id", "picture"]))
    assert by_staff == {1: ALL_BYTES, 2: b"", 3: None}
    assert isinstance(by_staff[1], bytes)
    assert len(set(by_staff[1])) == 256


@pytest.mark.parametrize("any_db", KINDS, indirect=True)
def test_dvdrental_triggers_kept_film_text_and_left_the_key_counter_ahead(any_db: Db) -> None:
    info = dvdrental.build(any_db)
    films = info.tables["film"]
    texts = content(any_db, "film_text", columns=["film_id", "title"])
    assert [t[0] for t in texts] == list(range(1, films + 1))
    assert texts[0] == (1, "ACADEMY DINOSAUR (REMASTERED)")
    counter = {
        "sqlite": "SELECT seq FROM sqlite_sequence WHERE name = 'film'",
        "mariadb": "SELECT AUTO_INCREMENT - 1 FROM information_schema.TABLES "
                   "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'film'",
        "postgresql": "SELECT last_value FROM film_film_id_seq",
    }[any_db.kind]
    assert scalar(any_db, counter) == films + 1
    assert scalar(any_db, "SELECT max(rental_id) FROM rental") == BIG_RENTAL_ID


def test_dvdrental_mariadb_zero_dates_set_year_json_and_geometry(maria: Db) -> None:
    dvdrental.build(maria)
    zero = "'0000-00-00 00:00:00'"
    assert scalar(maria, f"SELECT count(*) FROM customer WHERE create_date = {zero}") == 2
    assert scalar(maria, f"SELECT count(*) FROM rental WHERE return_date = {zero}") > 5
    customers = dict(content(maria, "customer", columns=["customer_id", "create_date"]))
    assert customers[25] is None
    marked = content(maria, "customer", columns=["customer_id", "create_date"], zero_date="0")
    assert dict(marked)[25] == "0"
    films = dict(content(maria, "film", columns=["film_id", "special_features"]))
    assert films[3] == ("Commentaries", "Trailers")
    assert films[16] == ()
    assert films[17] is None
    years = dict(content(maria, "film", columns=["film_id", "release_year"]))
    assert (years[1], years[2]) == (1901, 2155)
    preferences = {row[1] for row in content(maria, "customer",
                                             columns=["customer_id", "preferences"])}
    assert {None, "null", "{}", "[]"} <= preferences
    points = dict(content(maria, "address", columns=["address_id", "location"]))
    assert points[1] == "POINT(-142.75 -76.5)"


def test_dvdrental_content_agrees_across_dialects(sqlite_db: Callable[[str], Db], maria: Db,
                                                  pg: Db) -> None:
    lite = sqlite_db("dvdrental")
    for db in (lite, maria, pg):
        dvdrental.build(db)
    differ = {"address": {"location"}, "film": {"special_features"},
              "customer": {"create_date"}, "rental": {"return_date"}}
    tables = dvdrental.info("sqlite").tables
    read = {db.kind: [_without(db, t, differ.get(t, set()), rows)
                      for t, rows in contents(db, tables).items()] for db in (lite, maria, pg)}
    assert read["sqlite"] == read["mariadb"] == read["postgresql"]
    assert content(maria, "film", columns=["film_id", "special_features"]) == content(
        pg, "film", columns=["film_id", "special_features"])


def _without(db: Db, table: str, dropped: set[str],
             rows: list[tuple[Any, ...]]) -> tuple[str, list[tuple[Any, ...]]]:
    """`rows` of `table` without the `dropped` columns."""
    names = [c["name"] for c in inspect(db.engine).get_columns(table)]
    keep = [i for i, name in enumerate(names) if name not in dropped]
    return table, [tuple(row[i] for i in keep) for row in rows]


# ---- musicstore -----------------------------------------------------------------------------


@pytest.mark.parametrize("any_db", KINDS, indirect=True)
def test_musicstore_text_round_trips_exactly(any_db: Db) -> None:
    musicstore.build(any_db)
    expected = generate(any_db.kind)
    for table in ("Artist", "Playlist", "Genre"):
        assert content(any_db, table) == sorted(expected[table].rows), table
    composers = {r[0] for r in content(any_db, "Track", columns=["Composer"])}
    assert {None, "", "  ", "坂本龍一", "Steven Tyler\tJoe Perry"} <= composers
    names = {r[0] for r in content(any_db, "Artist", columns=["Name"])}
    assert {"Trailing Space ", " Leading Space", "Carriage\r\nReturn", "Emoji 😀 Band",
            "فيروز", "No\u00a0Break", "Zero\u200bWidth"} <= names


def test_musicstore_sqlite_holds_what_its_types_do_not_allow(
        sqlite_db: Callable[[str], Db]) -> None:
    db = sqlite_db("chinook")
    info = musicstore.build(db)
    assert {Trait.SQLITE_BIG_INTEGER, Trait.SQLITE_OVERLONG_TEXT,
            Trait.SQLITE_MIXED_NUMERIC} <= info.traits
    assert db.rows('SELECT "Bytes", typeof("Bytes") FROM "Track" WHERE "TrackId" IN (2, 3)') == [
        (NEGATIVE_BYTES, "integer"), (BIG_BYTES, "integer")]
    assert scalar(db, 'SELECT "Extension" FROM "Employee" WHERE "EmployeeId" = 4') == \
        LONG_EXTENSION
    assert len(LONG_EXTENSION) == 40
    assert {r[0] for r in db.rows('SELECT DISTINCT typeof("UnitPrice") FROM "Track"')} == {
        "integer", "real"}
    declared = {r[0] for r in db.rows("SELECT type FROM pragma_table_info('Employee')")}
    assert {"NVARCHAR(5)", "DATETIME"} <= declared


def test_musicstore_mariadb_nvarchar_is_utf8mb3(maria: Db) -> None:
    musicstore.build(maria)
    charsets = dict(maria.rows(
        "SELECT CONCAT(TABLE_NAME, '.', COLUMN_NAME), CHARACTER_SET_NAME "
        "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
        "AND COLUMN_NAME = 'Name'"))
    assert charsets["Genre.Name"] == "utf8mb3"
    assert charsets["Artist.Name"] == "utf8mb4"


# ---- hostile names --------------------------------------------------------------------------


@pytest.mark.parametrize("any_db", KINDS, indirect=True)
def test_hostile_tables_exist_under_their_exact_names(any_db: Db) -> None:
    info = hostile.build_hostile(any_db, hostile.hostile_names(extra=15))
    assert any_db.tables() == set(info.tables)
    assert set(info.tables) | set(info.skipped) >= set(hostile.HOSTILE_NAMES)
    for name, rows in contents(any_db, info.tables).items():
        assert len(rows) == info.tables[name], name
        if name not in (hostile.SENTINEL, hostile.VICTIM):
            assert [r[0] for r in rows] == [1, 2, 3]
    for sentinel in (hostile.SENTINEL, hostile.VICTIM):
        assert content(any_db, sentinel) == [hostile.SENTINEL_ROW]
    assert hostile.NAME_63 in info.tables
    assert Trait.LONG_NAMES in info.traits


def test_hostile_names_each_dialect_refuses() -> None:
    assert hostile.unfit("postgresql", hostile.NAME_63) is None
    assert hostile.unfit("postgresql", hostile.NAME_64) is not None
    assert hostile.unfit("postgresql", hostile.NAME_64_BYTES_32_CHARS) is not None
    assert hostile.unfit("mariadb", hostile.NAME_64_BYTES_32_CHARS) is None
    assert hostile.unfit("mariadb", hostile.NAME_64_A) is None
    assert hostile.unfit("mariadb", hostile.NAME_70) is not None
    assert hostile.unfit("mariadb", "trailing space ") is not None
    assert hostile.unfit("mariadb", "emoji😀") is not None
    assert hostile.unfit("sqlite", "emoji😀") is None
    assert hostile.unfit("sqlite", "sqlite_shadow") is not None
    assert hostile.NAME_64_A.encode()[:63] == hostile.NAME_64_B.encode()[:63]
    assert hostile.hostile_names(extra=10) == hostile.hostile_names(extra=10)


def test_hostile_case_pairs_are_two_tables_where_the_dialect_allows(
        sqlite_db: Callable[[str], Db], maria: Db, pg: Db) -> None:
    pair = ["Genre", "genre"]
    assert set(hostile.build_hostile(sqlite_db("pairs"), pair).skipped) == {"genre"}
    for db in (maria, pg):
        info = hostile.build_hostile(db, pair)
        assert {"Genre", "genre"} <= set(info.tables)
        assert Trait.CASE_PAIRS in info.traits


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=hostile.hostile_name_strategy("sqlite"))
def test_any_generated_name_builds_on_sqlite(name: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        db = Db("sqlite", f"sqlite:///{Path(folder) / 'h.db'}")
        try:
            info = hostile.build_hostile(db, [name])
            assert db.tables() == set(info.tables)
            assert content(db, hostile.SENTINEL) == [hostile.SENTINEL_ROW]
            for table in info.tables:
                assert len(content(db, table)) == info.tables[table]
        finally:
            db.dispose()


# ---- determinism, scale, fingerprint ----------------------------------------------------------


@pytest.mark.parametrize("sample", sorted(BUILDERS))
def test_builds_are_deterministic(sample: str, sqlite_db: Callable[[str], Db]) -> None:
    first, second = sqlite_db("one"), sqlite_db("two")
    info = BUILDERS[sample](first, 1)
    BUILDERS[sample](second, 1)
    assert contents(first, info.tables) == contents(second, info.tables)


def test_scale_multiplies_the_big_tables(sqlite_db: Callable[[str], Db]) -> None:
    db = sqlite_db("scaled")
    info = dvdrental.build(db, 2)
    one = dvdrental.info("sqlite", 1)
    assert info.tables["rental"] == 2 * one.tables["rental"]
    assert info.tables["store"] == one.tables["store"]
    assert all_counts(db, info) == info.tables
    assert musicstore.info("sqlite", 3).tables["Track"] == 3 * musicstore.info(
        "sqlite").tables["Track"]
    with pytest.raises(ValueError, match="scale"):
        dvdrental.info("mariadb", 0)


def test_fingerprint_of_the_postgresql_dvdrental(pg: Db) -> None:
    info = dvdrental.build(pg)
    document = fingerprint(pg.url, "public")
    json.dumps(document)
    assert {t: d["rows"] for t, d in document["tables"].items()} == info.tables
    assert document["enums"] == {"mpaa_rating": ["G", "PG", "PG-13", "R", "NC-17"]}
    assert document["domains"]["year"]["type"] == "integer"
    film = document["tables"]["film"]
    assert film["primary_key"] == {"name": "film_pkey", "columns": ["film_id"]}
    columns = {c["name"]: c for c in film["columns"]}
    assert columns["film_id"]["identity"] == "by default"
    assert columns["special_features"]["type"] == "text[]"
    assert columns["rental_rate"]["default"] == "4.99"
    assert {"name": "fk_film_language", "validated": True,
            "definition": "FOREIGN KEY (language_id) REFERENCES language(language_id) "
                          "ON UPDATE CASCADE ON DELETE RESTRICT"} in film["foreign_keys"]
    assert {"name": "idx_title", "definition": "CREATE INDEX idx_title ON film USING btree (title)",
            "unique": False, "constraint": False} in film["indexes"]
    assert sequences_of(document)["film_film_id_seq"]["last_value"] == info.tables["film"] + 1
    assert sequences_of(document)["category_category_id_seq"]["owned_by"] == "category.category_id"
    assert "inventory_in_stock(p_inventory_id integer)" in document["functions"]
    assert {"customer_list", "film_list"} == set(document["views"])
    assert {t["name"] for t in document["triggers"]} == set(info.triggers)


def sequences_of(document: dict[str, Any]) -> dict[str, Any]:
    return {s["name"]: s for s in document["sequences"]}


def test_content_reads_enum_arrays_json_null_and_bpchar(pg: Db) -> None:
    pg.execute("CREATE TYPE feature AS ENUM ('b', 'a')",
               "CREATE TABLE t (id int PRIMARY KEY, s feature[], j jsonb, c char(5), "
               "at timestamptz, f float8)",
               "INSERT INTO t VALUES (2, '{}', NULL, NULL, NULL, 0.1), "
               "(1, '{b,a}', 'null', 'x', '2020-01-01 12:00+02', 'NaN')")
    assert content(pg, "t") == [
        (1, ("a", "b"), "null", "x", datetime(2020, 1, 1, 10, 0), "NaN"),
        (2, (), None, None, None, Decimal("0.1"))]
