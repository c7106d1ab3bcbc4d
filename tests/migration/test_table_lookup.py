"""Tables are named exactly (ADR 0011) by `pt validate`, `pt health` and `pt migrate deferred`:
`Genre`, `genre` and `sales.Genre` are three tables (keep mode), each found by its own name,
validated, recorded and assessed under its own key; a name that only differs in case is
taken only when it is the only one; `--transform FILE` names a table by its file; every
mistake is one line, exit 2.

SQLite source, PostgreSQL target; `Genre` and `sales.Genre` rows wait for `kinds`, never
copied (so their checks are INCOMPLETE), `genre` is copied whole (PASS).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.migration.conftest import Db, create_table, new_pg_database, pt, write_transform


@dataclass(frozen=True)
class World:
    target: Db
    folder: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("lookup")
    target, drop = new_pg_database()
    source = Db("sqlite", f"sqlite:///{folder / 'source.db'}")
    try:
        create_table(source, "genres", [("id", "int"), ("name", "text"), ("kind_id", "int")],
                     primary_key=["id"])
        source.insert("genres", [(1, "rock", 1), (2, "jazz", 2), (3, "folk", 1)])
        target.script("""
            CREATE TABLE kinds (id integer PRIMARY KEY);
            CREATE SCHEMA sales;
            CREATE TABLE "Genre" (id integer PRIMARY KEY, name text, kind_id integer);
            CREATE TABLE genre (id integer PRIMARY KEY, name text, kind_id integer);
            CREATE TABLE sales."Genre" (id integer PRIMARY KEY, name text, kind_id integer)""")
        urls = {"source_url": source.url, "target_url": target.url}
        waits = {"depends_on": [{"table": "kinds", "key": "id", "via": "s.kind_id"}]}
        for name, table, extra in (("genre_upper", "Genre", waits), ("genre_lower", "genre", {}),
                                   ("sales_genre", "Genre", {"target_schema": "sales",
                                                             **waits})):
            write_transform(folder, {
                "name": name, **urls, "options": {"identifiers": "keep"},
                "sources": [{"name": "genres", "table": "genres", "alias": "s"}],
                "target_table": table, **extra})
            result = pt("migrate", "run", f"{name}.yaml", cwd=folder)
            assert result.returncode == 0, result.stderr
        yield World(target, folder)
    finally:
        source.dispose()
        drop()


def _counts(world: World, *args: str) -> tuple[int, dict[str, Any]]:
    result = pt("validate", "counts", *args, "--json", cwd=world.folder)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return result.returncode, orjson.loads(result.stdout)


def _error(world: World, *args: str) -> str:
    """The one line `pt ARGS` says on stderr (exit 2, nothing on stdout)."""
    result = pt(*args, cwd=world.folder)
    assert (result.returncode, result.stdout) == (2, ""), result.stdout + result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("pt: error: ")
    return line.removeprefix("pt: error: ")


def test_each_table_is_found_by_its_exact_name(world: World) -> None:
    found = {}
    for table in ("Genre", "genre", "sales.Genre", "genre_upper"):
        _code, document = _counts(world, "--table", table)
        (result,) = document["results"]
        found[table] = (result["transform"], result["target"], result["status"])
    assert found == {
        "Genre": ("genre_upper", {"schema": None, "name": "Genre"}, "INCOMPLETE"),
        "genre": ("genre_lower", {"schema": None, "name": "genre"}, "PASS"),
        "sales.Genre": ("sales_genre", {"schema": "sales", "name": "Genre"}, "INCOMPLETE"),
        "genre_upper": ("genre_upper", {"schema": None, "name": "Genre"}, "INCOMPLETE")}
    # Each result is kept under its own table's key.
    assert set(world.target.rows("SELECT target_table, transform FROM pulsaride_validation")) \
        == {("Genre", "genre_upper"), ("genre", "genre_lower"),
            ('["sales","Genre"]', "sales_genre")}


def test_a_name_differing_in_case_is_taken_only_when_it_is_the_only_one(world: World) -> None:
    _code, document = _counts(world, "--table", "SALES.GENRE")
    assert [r["transform"] for r in document["results"]] == ["sales_genre"]
    assert _error(world, "validate", "counts", "--table", "GENRE") == (
        "several transform files fill a table named like 'GENRE': genre_lower.yaml ('genre'), "
        "genre_upper.yaml ('Genre'), sales_genre.yaml ('sales.Genre'); names are exact: give "
        "the exact name, or --transform FILE")
    assert _error(world, "validate", "hash", "--table", "nothing").startswith(
        "no transform file in . fills table 'nothing' (tables with transform files: 'Genre', "
        "'genre', 'sales.Genre'); use --transforms DIR or --transform FILE")


def test_transform_files_name_the_tables_instead(world: World) -> None:
    code, document = _counts(world, "--transform", "genre_lower.yaml",
                             "--transform", "sales_genre.yaml")
    assert code == 1
    assert [(r["table"], r["status"]) for r in document["results"]] == [
        ("genre", "PASS"), ("sales.Genre", "INCOMPLETE")]
    one_of_two = "name the tables to check with --table T ... or with --transform FILE ..., " \
                 "one of the two"
    assert _error(world, "validate", "counts") == one_of_two
    assert _error(world, "validate", "sample", "--table", "genre",
                  "--transform", "genre_lower.yaml") == f"{one_of_two} (not both)"
    assert _error(world, "validate", "hash", "--transform", "missing.yaml") == \
        "missing.yaml: no such transform file"


def test_health_reads_each_tables_own_validations(world: World) -> None:
    for table in ("Genre", "genre", "sales.Genre"):
        _counts(world, "--table", table)
    result = pt("health", "--transforms", str(world.folder), "--json", cwd=world.folder)
    assert result.returncode == 1
    tables = {t["table"]: (t["verdict"], t["validations"]["counts"], t["counters"]["deferred"])
              for t in orjson.loads(result.stdout)["tables"]}
    assert tables == {"Genre": ("NO-GO", "INCOMPLETE", 3), "genre": ("CAUTION", "PASS", 0),
                      "sales.Genre": ("NO-GO", "INCOMPLETE", 3)}


def test_deferred_rows_are_shown_readably_and_filtered_by_exact_name(world: World) -> None:
    def shown(*args: str) -> list[str]:
        result = pt("migrate", "deferred", "--target-url", world.target.url, *args,
                    cwd=world.folder)
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()

    genre = "Genre: 3 row(s) wait for kinds.id in (1, 2)"
    sales = "sales.Genre: 3 row(s) wait for kinds.id in (1, 2)"
    assert shown() == [genre, sales]
    assert shown("--table", "sales.Genre") == [sales]
    assert shown("--table", "Genre") == [genre]  # exactly so printed: not sales.Genre
    assert shown("--table", "genre") == [
        "no deferred rows for table 'genre' (rows wait for 'Genre', 'sales.Genre': names are "
        "exact)"]
    result = pt("migrate", "deferred", "--target-url", world.target.url, "--table",
                "sales.Genre", "--json", cwd=world.folder)
    (group,) = orjson.loads(result.stdout)["groups"]
    assert {k: group[k] for k in ("target_table", "target", "blocking_table", "rows")} == {
        "target_table": "sales.Genre", "target": {"schema": "sales", "name": "Genre"},
        "blocking_table": "kinds", "rows": 3}
