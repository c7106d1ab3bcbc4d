"""`pt preflight`: before any data moves, every incompatibility is listed with its table, column,
both types and a fix (exit 1); a compatible migration passes (exit 0, warnings allowed).

One SQLite source table (Oracle-style types) and one PostgreSQL target table per case; every
blocked case is a transform file of its own, all checked by ONE `pt preflight ... --json`, and
each report must hold exactly its one error. A MariaDB source goes through the same checks
in-process (run_preflight, what the command calls).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from pulsaride.migration.preflight import run_preflight
from pulsaride.migration.transform import load_transform
from tests.migration.conftest import Db, create_table, pt, write_transform

SOURCE_COLUMNS = [("id", "INTEGER"), ("name", "VARCHAR(100)"), ("price", "NUMERIC(10,3)"),
                  ("qty", "NUMBER(10)"), ("at", "TIMESTAMP"), ("maybe", "VARCHAR(20)"),
                  ("extra", "VARCHAR(50)"), ("parent_id", "INTEGER")]
SOURCE_ROWS = [(1, "a", "1.125", 10, "2024-01-01 10:00:00", "x", "e", 1),
               (2, "b", "2.5", 20, "2024-01-02 11:30:00", None, "f", 1)]

# target table -> its columns (besides `id integer PRIMARY KEY`, unless said otherwise)
TARGETS = {
    "t_ok": "name varchar(100) NOT NULL, price numeric(12,3), qty bigint, at timestamp, "
            "maybe varchar(20), label varchar(100)",
    "t_no_column": "name varchar(100)",
    "t_short": "name varchar(10)",
    "t_scale": "price numeric(10,2)",
    "t_overflow": "qty integer",
    "t_date": "at date",
    "t_not_null": "maybe varchar(20) NOT NULL",
    "t_no_pk": "-id integer, name varchar(100)",
    "t_no_parent": "parent_id integer",
    "t_no_parent_key": "parent_id integer",
    "t_expect": "name varchar(100)",
    "parents": "",
}


def _fields(*names: str) -> list[dict[str, str]]:
    return [{"name": n, "source": f"s.{n}"} for n in ("id", *names)]


# transform file -> (its extra keys, the one error it must report)
BLOCKED: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "missing_table": ({"fields": _fields("name"), "target_table": "t_nowhere"}, {
        "table": "t_nowhere", "column": None, "problem": "the target table does not exist",
        "source_type": None, "target_type": None,
        "fix": "create it, e.g. pt migrate schema target-schema.sql (from pt scaffold)"}),
    "no_column": ({"fields": _fields("name", "extra"), "target_table": "t_no_column"}, {
        "table": "t_no_column", "column": "extra", "problem": "the target has no such column",
        "source_type": "varchar(50)", "target_type": None,
        "fix": "ALTER TABLE t_no_column ADD COLUMN extra varchar(50)"}),
    "short": ({"fields": _fields("name"), "target_table": "t_short"}, {
        "table": "t_short", "column": "name",
        "problem": "values up to 100 characters may not fit varchar(10)",
        "source_type": "VARCHAR(100)", "target_type": "VARCHAR(10)",
        "fix": "ALTER TABLE t_short ALTER COLUMN name TYPE varchar(100)"}),
    "scale": ({"fields": _fields("price"), "target_table": "t_scale"}, {
        "table": "t_scale", "column": "price", "problem": "scale 3 is cut to 2 decimals",
        "source_type": "NUMERIC(10,3)", "target_type": "NUMERIC(10, 2)",
        "fix": "ALTER TABLE t_scale ALTER COLUMN price TYPE numeric(10,3)"}),
    "overflow": ({"fields": _fields("qty"), "target_table": "t_overflow"}, {
        "table": "t_overflow", "column": "qty", "problem": "bigint values may overflow integer",
        "source_type": "NUMBER(10)", "target_type": "INTEGER",
        "fix": "ALTER TABLE t_overflow ALTER COLUMN qty TYPE bigint"}),
    "date": ({"fields": _fields("at"), "target_table": "t_date"}, {
        "table": "t_date", "column": "at", "problem": "the time of day would be lost",
        "source_type": "TIMESTAMP", "target_type": "DATE",
        "fix": "ALTER TABLE t_date ALTER COLUMN at TYPE timestamp"}),
    "not_null": ({"fields": _fields("maybe"), "target_table": "t_not_null"}, {
        "table": "t_not_null", "column": "maybe",
        "problem": "1 source row(s) have NULL here, the target column is NOT NULL",
        "source_type": "VARCHAR(20) NULL", "target_type": "NOT NULL",
        "fix": "fill the NULLs with an expression (coalesce(?, ...)) or ALTER TABLE "
               "t_not_null ALTER COLUMN maybe DROP NOT NULL"}),
    "no_pk": ({"fields": _fields("name"), "target_table": "t_no_pk", "key": ["id"]}, {
        "table": "t_no_pk", "column": None, "problem": "the target table has no primary key",
        "source_type": None, "target_type": None,
        "fix": "ALTER TABLE t_no_pk ADD PRIMARY KEY (id)"}),
    "no_parent": ({"fields": _fields("parent_id"), "target_table": "t_no_parent",
                   "depends_on": [{"table": "ghosts", "key": "id", "via": "s.parent_id"}]}, {
        "table": "t_no_parent", "column": None,
        "problem": "depends_on parent table ghosts does not exist in the target",
        "source_type": None, "target_type": None, "fix": "create it before this migration"}),
    "no_parent_key": ({"fields": _fields("parent_id"), "target_table": "t_no_parent_key",
                       "depends_on": [{"table": "parents", "key": "code",
                                       "via": "s.parent_id"}]}, {
        "table": "t_no_parent_key", "column": "code",
        "problem": "depends_on key parents.code does not exist in the target",
        "source_type": None, "target_type": None, "fix": "correct depends_on.key"}),
    "expect": ({"fields": _fields("name"), "target_table": "t_expect",
                "expect": {"key_columns": ["id", "nope"]}}, {
        "table": "t_expect", "column": "nope",
        "problem": "expect.key_columns names a missing column",
        "source_type": None, "target_type": None, "fix": "correct expect.key_columns"}),
}


def _target(db: Db) -> None:
    for table, columns in TARGETS.items():
        key = "" if columns.startswith("-") else "id integer PRIMARY KEY"
        parts = [p for p in (key, columns.lstrip("-")) if p]
        db.execute(f"CREATE TABLE {table} ({', '.join(parts)})")


def _source(db: Db, columns: list[tuple[str, str]]) -> None:
    create_table(db, "src", columns, primary_key=["id"])
    db.insert("src", SOURCE_ROWS)


def _transform(folder: Path, name: str, extra: dict[str, Any]) -> Path:
    return write_transform(folder, {
        "name": name, "sources": [{"name": "src", "table": "src", "alias": "s"}], **extra},
        name=f"{name}.yaml")


OK_FIELDS = [*_fields("name", "price", "qty", "at", "maybe"),
             {"name": "label", "source": ["s.name", "s.extra"], "expression": "concat(?1, ?2)"}]


@pytest.fixture
def setup(pg: Db, sqlite_db: Any, tmp_path: Path) -> tuple[Db, Db, Path]:
    source = sqlite_db("source")
    _source(source, SOURCE_COLUMNS)
    _target(pg)
    return source, pg, tmp_path


def test_a_compatible_migration_passes_with_its_warnings(setup: tuple[Db, Db, Path]) -> None:
    source, target, folder = setup
    path = _transform(folder, "ok", {"fields": OK_FIELDS, "target_table": "t_ok"})
    result = pt("preflight", str(path), "--source-url", source.url, "--target-url", target.url,
                "--json", cwd=folder)
    assert result.returncode == 0, result.stdout + result.stderr
    document = orjson.loads(result.stdout)
    assert document["status"] == "ok"
    (report,) = document["tables"]
    assert (report["transform"], report["status"], report["fields_checked"]) == ("ok", "ok", 7)
    assert {f["severity"] for f in report["findings"]} == {"warning"}
    warned = {(f["column"], f["problem"]) for f in report["findings"]}
    assert warned == {
        ("name", "the source allows NULL, the target column is NOT NULL (none now)"),
        ("label", "unbounded text into varchar(100)")}


def test_every_incompatibility_is_listed_with_a_fix(setup: tuple[Db, Db, Path]) -> None:
    source, target, folder = setup
    paths = [_transform(folder, name, extra) for name, (extra, _) in BLOCKED.items()]
    paths.append(_transform(folder, "ok", {"fields": OK_FIELDS, "target_table": "t_ok"}))
    result = pt("preflight", *map(str, paths), "--source-url", source.url, "--target-url",
                target.url, "--json", cwd=folder)
    assert result.returncode == 1, result.stdout + result.stderr
    document = orjson.loads(result.stdout)
    assert document["status"] == "blocked"
    reports = {r["transform"]: r for r in document["tables"]}
    assert list(reports) == [*BLOCKED, "ok"]
    assert reports["ok"]["status"] == "ok"  # one blocked table does not hide the others
    for name, (_, expected) in BLOCKED.items():
        report = reports[name]
        errors = [f for f in report["findings"] if f["severity"] == "error"]
        assert errors == [{"severity": "error", **expected}], name
        assert report["status"] == "blocked"
        others = [f for f in report["findings"] if f["severity"] != "error"]
        assert others == [], (name, others)
    # Nothing moved: no pt tables were created in the target.
    assert not {t for t in target.tables() if t.startswith("pulsaride_")}


def test_the_text_form_names_table_column_types_and_fix(setup: tuple[Db, Db, Path]) -> None:
    source, target, folder = setup
    paths = [_transform(folder, name, BLOCKED[name][0]) for name in ("short", "missing_table")]
    result = pt("preflight", *map(str, paths), "--source-url", source.url, "--target-url",
                target.url, cwd=folder)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "short -> t_short: BLOCKED (2 fields checked)",
        "  error: t_short.name (VARCHAR(100) -> VARCHAR(10)): values up to 100 characters may "
        "not fit varchar(10); fix: ALTER TABLE t_short ALTER COLUMN name TYPE varchar(100)",
        "missing_table -> t_nowhere: BLOCKED (0 fields checked)",
        "  error: t_nowhere: the target table does not exist; fix: create it, e.g. pt migrate "
        "schema target-schema.sql (from pt scaffold)"]


def test_unreachable_databases_block(setup: tuple[Db, Db, Path]) -> None:
    source, _, folder = setup
    path = _transform(folder, "short", BLOCKED["short"][0])
    dead_target = "postgresql://postgres@127.0.0.1:9/nothing_here"
    dead_source = "mysql://root@127.0.0.1:9/nothing_here"
    result = pt("preflight", str(path), "--source-url", source.url, "--target-url", dead_target,
                "--json", cwd=folder)
    assert result.returncode == 1, result.stderr
    (report,) = orjson.loads(result.stdout)["tables"]
    (finding,) = report["findings"]
    assert finding["severity"] == "error"
    assert finding["problem"].startswith("the target database postgresql+psycopg://postgres@"
                                         "127.0.0.1:9/nothing_here does not answer: ")
    assert "Connection refused" in finding["problem"]
    # In-process for the second case (the command calls run_preflight): both sides dead, both
    # reported.
    (report2,) = run_preflight([load_transform(path)], dead_source, dead_target)
    problems = [f.problem for f in report2.findings]
    assert [p.split(" does not answer")[0] for p in problems] == [
        "the source database mysql+pymysql://root@127.0.0.1:9/nothing_here",
        "the target database postgresql+psycopg://postgres@127.0.0.1:9/nothing_here"]
    assert report2.blocked


MARIA_COLUMNS = [("id", "INT"), ("name", "VARCHAR(100)"), ("price", "DECIMAL(10,3)"),
                 ("qty", "DECIMAL(10,0)"), ("at", "DATETIME"), ("maybe", "VARCHAR(20)"),
                 ("extra", "VARCHAR(50)"), ("parent_id", "INT")]


def test_a_mariadb_source_gets_the_same_findings(maria: Db, pg: Db, tmp_path: Path) -> None:
    create_table(maria, "src", MARIA_COLUMNS, primary_key=["id"])
    maria.insert("src", SOURCE_ROWS)
    _target(pg)
    cases = ["short", "scale", "overflow", "date", "not_null", "no_column"]
    transforms = [load_transform(_transform(tmp_path, name, BLOCKED[name][0]))
                  for name in cases]
    transforms.append(load_transform(_transform(tmp_path, "ok", {"fields": OK_FIELDS,
                                                                 "target_table": "t_ok"})))
    reports = {r.transform: r for r in run_preflight(transforms, maria.url, pg.url)}
    # MariaDB's own spelling (information_schema.COLUMNS.COLUMN_TYPE).
    spelled = {"short": "varchar(100)", "scale": "decimal(10,3)", "overflow": "decimal(10,0)",
               "date": "datetime", "not_null": "varchar(20) NULL", "no_column": "varchar(50)"}
    for name in cases:
        errors = [f for f in reports[name].findings if f.severity == "error"]
        expected = BLOCKED[name][1]
        assert [(f.column, f.problem, f.source_type, f.target_type, f.fix) for f in errors] == [
            (expected["column"], expected["problem"], spelled[name], expected["target_type"],
             expected["fix"])], name
    assert not reports["ok"].blocked


def test_depends_on_rules_that_wait_for_each_other_in_a_circle_are_named(
        pg: Db, sqlite_db: Callable[[str], Db], tmp_path: Path) -> None:
    source = sqlite_db("source")
    for db in (source, pg):
        create_table(db, "store", [("store_id", "int"), ("manager_staff_id", "int")],
                     primary_key=["store_id"])
        create_table(db, "staff", [("staff_id", "int"), ("store_id", "int"),
                                   ("boss_id", "int")], primary_key=["staff_id"])
    files = [write_transform(tmp_path, {
        "name": name, "sources": [{"name": name, "table": name, "alias": "s"}],
        "options": {"identifiers": "keep"}, "depends_on": rules})
        for name, rules in (
            ("store", [{"table": "staff", "key": "staff_id", "via": "s.manager_staff_id"}]),
            ("staff", [{"table": "store", "key": "store_id", "via": "s.store_id"},
                       {"table": "staff", "key": "staff_id", "via": "s.boss_id"}]))]
    result = pt("preflight", *map(str, files), "--source-url", source.url, "--target-url",
                pg.url, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stdout  # a warning: circles are written together
    document = orjson.loads(result.stdout)
    problems = {t["transform"]: [f["problem"] for f in t["findings"]]
                for t in document["tables"]}
    for name in ("store", "staff"):
        assert [p for p in problems[name] if "cycle" in p] == [
            "depends_on DEFER rules form a cycle (staff -> store -> staff): rows that refer to "
            "each other in a circle are written together at the end of the copies, which the "
            "target allows only if the foreign keys between these tables are DEFERRABLE or not "
            "there yet; otherwise they wait in pulsaride_deferred"]


def test_what_a_sqlite_source_really_holds_is_checked_against_the_target(
        pg: Db, sqlite_db: Callable[[str], Db], tmp_path: Path) -> None:
    # SQLite keeps what it is given: the declared types promise nothing.
    source = sqlite_db("source")
    source.execute('CREATE TABLE "Track" ("TrackId" INTEGER PRIMARY KEY, "Bytes" INTEGER, '
                   '"Code" NVARCHAR(5), "Ratio" INTEGER)')
    source.insert("Track", [(1, 3_000_000_000, "x" * 40, 1), (2, -5, "ok", 2.5)])
    pg.execute('CREATE TABLE "Track" ("TrackId" integer PRIMARY KEY, "Bytes" integer, '
               '"Code" varchar(5), "Ratio" integer)')
    path = write_transform(tmp_path, {
        "name": "track", "sources": [{"name": "t", "table": "Track"}],
        "target_table": "Track", "options": {"identifiers": "keep"}})
    result = pt("preflight", str(path), "--source-url", source.url, "--target-url", pg.url,
                "--json", cwd=tmp_path)
    assert result.returncode == 1, result.stdout
    findings = {(f["column"], f["problem"], f["fix"])
                for f in orjson.loads(result.stdout)["tables"][0]["findings"]}
    assert findings == {
        ("Bytes", "the source holds 3000000000, beyond the range of integer",
         'ALTER TABLE "Track" ALTER COLUMN "Bytes" TYPE bigint'),
        ("Code", "the source holds text of 40 characters, longer than varchar(5)",
         'ALTER TABLE "Track" ALTER COLUMN "Code" TYPE text'),
        ("Ratio", "the source holds 1 value(s) with decimals",
         'ALTER TABLE "Track" ALTER COLUMN "Ratio" TYPE numeric')}
    pg.execute('ALTER TABLE "Track" ALTER COLUMN "Bytes" TYPE bigint',
               'ALTER TABLE "Track" ALTER COLUMN "Code" TYPE text',
               'ALTER TABLE "Track" ALTER COLUMN "Ratio" TYPE numeric')
    again = pt("preflight", str(path), "--source-url", source.url, "--target-url", pg.url,
               cwd=tmp_path)
    assert again.returncode == 0, again.stdout
