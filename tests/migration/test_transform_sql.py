"""A transform file's `sources[].sql` and `joins[].on` reach the source only as one read-only
query: several statements, a statement that is not a SELECT, SELECT ... INTO, or a
data-modifying part are refused with one line before anything runs, on every source dialect
(PostgreSQL's simple protocol and MariaDB would otherwise run them all)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.migration.conftest import Db, create_table, new_maria_database, new_pg_database, pt
from tests.migration.conftest import write_transform as write
from tests.migration.test_bad_input import error_line

HOSTILE_SQL = [
    ("SELECT id FROM people; DROP TABLE pt_sentinel",
     "must be exactly one SELECT statement (found: SELECT, DROP)"),
    ("DELETE FROM pt_sentinel", "must be exactly one SELECT statement (found: DELETE)"),
    ("SELECT 1 AS id) x; DROP TABLE pt_sentinel; SELECT * FROM (SELECT 1 AS id",
     "is not SQL pt can read"),
    ("SELECT * INTO stolen FROM pt_sentinel", "may only read: it holds INTO"),
]
HOSTILE_ON = [
    ("p.id = q.id) ; DROP TABLE pt_sentinel; SELECT (1", "on must be one SQL condition"),
]


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Db:
    if request.param == "sqlite":
        db = Db("sqlite", f"sqlite:///{tmp_path / 'source.db'}")
    else:
        db, drop = new_pg_database() if request.param == "postgresql" else new_maria_database()
        request.addfinalizer(drop)
    create_table(db, "people", [("id", "int"), ("name", "text")], primary_key=["id"])
    db.insert("people", [(1, "Ada")])
    db.execute("CREATE TABLE pt_sentinel (x integer)", "INSERT INTO pt_sentinel VALUES (42)")
    return db


def _run(tmp_path: Path, source: Db, target: Db, document: dict[str, object]) -> str:
    path = write(tmp_path, {"name": "q", "target_table": "people",
                            "options": {"identifiers": "keep"}, **document})
    for command in (["migrate", "run"], ["preflight"]):
        result = pt(*command, str(path), "--source-url", source.url, "--target-url",
                    target.url, cwd=tmp_path)
        if command == ["migrate", "run"]:
            line = error_line(result, 2)
    assert source.scalar("SELECT x FROM pt_sentinel") == 42
    assert "stolen" not in source.tables()
    return line


@pytest.mark.parametrize(("sql", "why"), HOSTILE_SQL)
def test_a_sql_source_must_be_one_select(sql: str, why: str, source: Db, pg: Db,
                                         tmp_path: Path) -> None:
    create_table(pg, "people", [("id", "int")], primary_key=["id"])
    line = _run(tmp_path, source, pg, {"sources": [{"name": "q", "sql": sql}],
                                       "source_key": ["q.id"]})
    assert line.startswith(f"source 'q': its sql {why}"), line


@pytest.mark.parametrize(("on", "why"), HOSTILE_ON)
def test_a_join_condition_must_be_one_condition(on: str, why: str, source: Db, pg: Db,
                                                tmp_path: Path) -> None:
    create_table(pg, "people", [("id", "int")], primary_key=["id"])
    line = _run(tmp_path, source, pg, {
        "sources": [{"name": "p", "table": "people"}, {"name": "q", "table": "people"}],
        "joins": [{"from": "p", "to": "q", "on": on}],
        "fields": [{"name": "id", "source": "p.id"}]})
    assert line.startswith(f"joins: p -> q: {why}"), line


def test_one_plain_select_and_condition_still_work(source: Db, pg: Db, tmp_path: Path) -> None:
    create_table(pg, "people", [("id", "int"), ("name", "text")], primary_key=["id"])
    path = write(tmp_path, {
        "name": "q", "target_table": "people", "options": {"identifiers": "keep"},
        "sources": [{"name": "p", "table": "people"}, {"name": "q", "table": "people"}],
        "joins": [{"from": "p", "to": "q", "on": "p.id = q.id AND q.name IS NOT NULL"}],
        "fields": [{"name": "id", "source": "p.id"}, {"name": "name", "source": "q.name"}]})
    result = pt("migrate", "run", str(path), "--source-url", source.url, "--target-url",
                pg.url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert pg.rows("SELECT * FROM people") == [(1, "Ada")]
