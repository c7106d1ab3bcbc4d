"""Type mapping (Oracle, MariaDB, PostgreSQL source types to PostgreSQL) and `pt scaffold` on
real sources: the target schema it writes applies on PostgreSQL, and the pipeline it writes
validates and runs, with foreign-key cycles and self-references as depends_on DEFER."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from pulsaride.migration.typemap import postgres_type
from tests.migration.conftest import Db, pt

# ---- postgres_type (pure) ------------------------------------------------------------------------


@pytest.mark.parametrize(("declared", "expected"), [
    # Oracle NUMBER by precision and scale
    ("NUMBER(1)", "smallint"), ("NUMBER(4)", "smallint"), ("NUMBER(5)", "integer"),
    ("NUMBER(9)", "integer"), ("NUMBER(10)", "bigint"), ("NUMBER(18)", "bigint"),
    ("NUMBER(19)", "numeric(19)"), ("NUMBER(38)", "numeric(38)"), ("NUMBER(4,0)", "smallint"),
    ("NUMBER(10,2)", "numeric(10,2)"), ("NUMBER(12, 4)", "numeric(12,4)"),
    ("NUMBER", "numeric"), ("NUMBER(*,0)", "numeric"), ("NUMBER(5,-2)", "numeric(7)"),
    ("number(9)", "integer"),
    # Oracle text, time and binary types
    ("VARCHAR2(100)", "varchar(100)"), ("VARCHAR2(100 CHAR)", "varchar(100)"),
    ("VARCHAR2(100 BYTE)", "varchar(100)"), ("NVARCHAR2(50)", "varchar(50)"),
    ("CHAR(1)", "char(1)"), ("NCHAR(2)", "char(2)"), ("CLOB", "text"), ("NCLOB", "text"),
    ("LONG", "text"), ("BLOB", "bytea"), ("RAW(16)", "bytea"), ("LONG RAW", "bytea"),
    ("DATE", "date"), ("TIMESTAMP", "timestamp"), ("TIMESTAMP(6)", "timestamp"),
    ("TIMESTAMP(3)", "timestamp(3)"), ("TIMESTAMP(9)", "timestamp(6)"),
    ("TIMESTAMP(6) WITH TIME ZONE", "timestamptz"), ("TIMESTAMP WITH TIME ZONE", "timestamptz"),
    ("TIMESTAMP WITH LOCAL TIME ZONE", "timestamptz"),
    ("INTERVAL DAY(2) TO SECOND(6)", "interval"), ("BINARY_DOUBLE", "double precision"),
    ("BINARY_FLOAT", "real"), ("FLOAT(126)", "double precision"), ("XMLTYPE", "text"),
    # MariaDB / MySQL
    ("TINYINT(1)", "boolean"), ("TINYINT(4)", "smallint"), ("TINYINT", "smallint"),
    ("TINYINT(3) UNSIGNED", "smallint"), ("SMALLINT UNSIGNED", "integer"),
    ("INT(11)", "integer"), ("INT UNSIGNED", "bigint"), ("INT(10) UNSIGNED", "bigint"),
    ("MEDIUMINT", "integer"), ("BIGINT(20)", "bigint"), ("BIGINT(20) UNSIGNED", "numeric(20)"),
    ("DECIMAL(10,2)", "numeric(10,2)"), ("DECIMAL(10,2) UNSIGNED", "numeric(10,2)"),
    ("DATETIME", "timestamp"), ("DATETIME(6)", "timestamp"), ("DOUBLE", "double precision"),
    ("VARCHAR(255)", "varchar(255)"), ("MEDIUMTEXT", "text"), ("LONGBLOB", "bytea"),
    ("VARBINARY(16)", "bytea"), ("BIT(1)", "boolean"), ("JSON", "jsonb"),
    # PostgreSQL as SQLAlchemy spells reflected types
    ("INTEGER", "integer"), ("BIGINT", "bigint"), ("SMALLINT", "smallint"),
    ("NUMERIC(12, 3)", "numeric(12,3)"), ("NUMERIC", "numeric"), ("BOOLEAN", "boolean"),
    ("CHARACTER VARYING(20)", "varchar(20)"), ("TEXT", "text"), ("BYTEA", "bytea"),
    ("TIMESTAMP WITHOUT TIME ZONE", "timestamp"), ("TIME WITHOUT TIME ZONE", "time"),
    ("TIME WITH TIME ZONE", "timetz"), ("TIME", "time"), ("JSONB", "jsonb"), ("UUID", "uuid"),
    ("DOUBLE PRECISION", "double precision"), ("REAL", "real"), ("INTERVAL", "interval"),
])
def test_postgres_type(declared: str, expected: str) -> None:
    assert postgres_type(declared).pg_type == expected


@pytest.mark.parametrize(("declared", "note"), [
    ("NUMBER", "NUMBER without precision kept exact as numeric"),
    ("TINYINT(1)", "TINYINT(1) read as boolean"),
    ("GEOMETRY", "unknown type 'GEOMETRY' mapped to text"),
    ("", "unknown type '' mapped to text"),
    ("BIGINT UNSIGNED", "BIGINT UNSIGNED exceeds bigint"),
])
def test_judgement_calls_carry_a_note(declared: str, note: str) -> None:
    assert postgres_type(declared).note == note


def test_unknown_types_become_text() -> None:
    for declared in ("GEOMETRY", "SDO_GEOMETRY", "ENUM('a','b')", "((("):
        assert postgres_type(declared).pg_type == "text"


# ---- helpers -------------------------------------------------------------------------------------


def column_types(db: Db, table: str) -> dict[str, str]:
    """PostgreSQL's own spelling of each column type of `table`."""
    return dict(db.rows(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "WHERE a.attrelid = CAST(:t AS regclass) AND a.attnum > 0 AND NOT a.attisdropped",
        t=table))


def foreign_keys(db: Db) -> set[tuple[str, str]]:
    return set(db.rows(
        "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint "
        "WHERE contype = 'f'"))


def scaffold(folder: Path, source: Db, target_url: str, *extra: str) -> str:
    folder.mkdir(exist_ok=True)
    result = pt("scaffold", "--source-url", source.url, "-o",
                str(folder / "pulsaride-pipeline.yml"), "--target-url", target_url, *extra,
                cwd=folder)
    assert result.returncode == 0, result.stderr
    return result.stdout


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


# ---- scaffold on a real PostgreSQL source --------------------------------------------------------


def test_scaffold_of_a_postgresql_source_applies_on_postgresql(pg: Db, pg2: Db,
                                                               tmp_path: Path) -> None:
    pg.script("""
        CREATE TABLE kinds (
            a_int integer PRIMARY KEY, a_big bigint, a_small smallint NOT NULL,
            a_num numeric(12,3), a_free numeric, a_vc varchar(40), a_text text, a_char char(3),
            a_bool boolean, a_date date, a_ts timestamp, a_tstz timestamptz, a_time time,
            a_bytea bytea, a_json jsonb, a_uuid uuid, a_dbl double precision, a_real real,
            a_span interval);
        CREATE TABLE child_first (id bigint PRIMARY KEY, kind integer REFERENCES kinds (a_int))
        """)
    out = scaffold(tmp_path / "scaffold", pg, pg2.url)
    assert "kinds" in out and "child_first" in out
    schema = tmp_path / "scaffold" / "target-schema.sql"
    for _ in range(2):  # applies, and applies again (IF NOT EXISTS)
        result = pt("migrate", "schema", str(schema), "--target-url", pg2.url, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    assert column_types(pg2, "kinds") == {
        "a_int": "integer", "a_big": "bigint", "a_small": "smallint",
        "a_num": "numeric(12,3)", "a_free": "numeric", "a_vc": "character varying(40)",
        "a_text": "text", "a_char": "character(3)", "a_bool": "boolean", "a_date": "date",
        "a_ts": "timestamp without time zone", "a_tstz": "timestamp with time zone",
        "a_time": "time without time zone", "a_bytea": "bytea", "a_json": "jsonb",
        "a_uuid": "uuid", "a_dbl": "double precision", "a_real": "real", "a_span": "interval"}
    assert pg2.scalar("SELECT attnotnull FROM pg_attribute WHERE attname = 'a_small' "
                      "AND attrelid = 'kinds'::regclass") is True
    assert foreign_keys(pg2) == {("child_first", "kinds")}


# ---- scaffold on a real MariaDB source, then its pipeline into PostgreSQL ------------------------

MARIA_SCHEMA = """
    CREATE TABLE owners (
        ID INT(11) NOT NULL PRIMARY KEY, NAME VARCHAR(50) NOT NULL, FAVOURITE_ITEM BIGINT);
    CREATE TABLE items (
        ID BIGINT NOT NULL PRIMARY KEY, OWNER_ID INT(11), QTY SMALLINT UNSIGNED,
        SERIAL BIGINT UNSIGNED, AMOUNT DECIMAL(10,2), FLAG TINYINT(1), LEVEL TINYINT,
        CREATED DATETIME, BORN DATE, NOTES TEXT, PIC BLOB, RATIO DOUBLE,
        FOREIGN KEY (OWNER_ID) REFERENCES owners (ID));
    ALTER TABLE owners ADD FOREIGN KEY (FAVOURITE_ITEM) REFERENCES items (ID);
    CREATE TABLE accounts (
        ID INT NOT NULL PRIMARY KEY, OWNER_ID INT(11) NOT NULL,
        FOREIGN KEY (OWNER_ID) REFERENCES owners (ID))
"""
OWNERS = [(1, "Ada", None), (2, "Grace", None), (3, "Edsger", None)]
ITEMS = [
    (10, 1, 65535, 18446744073709551615, Decimal("12.50"), 1, 127,
     datetime(2024, 2, 29, 13, 45, 7), date(1815, 12, 10), "first", b"\x00\xff\x10", 0.5),
    (11, 2, 0, 0, Decimal("-0.01"), 0, -128, None, None, "", b"", 1e-300),
    (12, None, None, None, None, None, None, None, None, None, None, None),
]
ACCOUNTS = [(100, 1), (101, 3), (102, 3)]


def test_scaffold_of_a_mariadb_source_applies_and_runs_on_postgresql(maria: Db, pg: Db,
                                                                     tmp_path: Path) -> None:
    maria.script(MARIA_SCHEMA)
    maria.insert("owners", OWNERS)
    maria.insert("items", ITEMS)
    # Row by row the references form chains, not cycles: owner 3 -> item 10 -> owner 1 ->
    # item 11 -> owner 2 (a row-level cycle could never be written with immediate keys).
    maria.execute("UPDATE owners SET FAVOURITE_ITEM = 11 WHERE ID = 1",
                  "UPDATE owners SET FAVOURITE_ITEM = 10 WHERE ID = 3")
    maria.insert("accounts", ACCOUNTS)
    folder = tmp_path / "scaffold"
    out = scaffold(folder, maria, pg.url)
    assert "depends_on DEFER (cycle or self-reference): items(OWNER_ID) -> owners" in out
    assert "depends_on DEFER (cycle or self-reference): owners(FAVOURITE_ITEM) -> items" in out
    assert "note: items.FLAG: TINYINT(1) read as boolean" in out

    pipeline = load(folder / "pulsaride-pipeline.yml")
    jobs = pipeline["jobs"]
    assert jobs["migrate-accounts"]["needs"] == ["migrate-owners"]  # parents first
    assert "needs" not in jobs["migrate-items"]  # the cycle is not a needs
    assert "needs" not in jobs["migrate-owners"]
    assert pipeline["variables"]["PT_TARGET_URL"] == pg.url
    assert load(folder / "items.yaml")["depends_on"] == [
        {"table": "owners", "key": "id", "via": "s.OWNER_ID", "on_missing": "DEFER"}]

    result = pt("pipeline", "validate", "pulsaride-pipeline.yml", cwd=folder)
    assert result.returncode == 0, result.stdout + result.stderr
    result = pt("pipeline", "run", "pulsaride-pipeline.yml", "--no-wait", "-q", cwd=folder)
    assert result.returncode == 3, result.stdout + result.stderr  # stops at the cutover gate

    assert column_types(pg, "items") == {
        "id": "bigint", "owner_id": "integer", "qty": "integer", "serial": "numeric(20,0)",
        "amount": "numeric(10,2)", "flag": "boolean", "level": "smallint",
        "created": "timestamp without time zone", "born": "date", "notes": "text",
        "pic": "bytea", "ratio": "double precision"}
    assert foreign_keys(pg) == {("items", "owners"), ("owners", "items"),
                                ("accounts", "owners")}
    assert pg.rows("SELECT * FROM owners") == [(1, "Ada", 11), (2, "Grace", None),
                                               (3, "Edsger", 10)]
    assert pg.rows("SELECT * FROM accounts") == ACCOUNTS
    assert pg.rows("SELECT * FROM items") == sorted([
        (10, 1, 65535, Decimal(18446744073709551615), Decimal("12.50"), True, 127,
         datetime(2024, 2, 29, 13, 45, 7), date(1815, 12, 10), "first", b"\x00\xff\x10", 0.5),
        (11, 2, 0, Decimal(0), Decimal("-0.01"), False, -128, None, None, "", b"", 1e-300),
        (12, None, None, None, None, None, None, None, None, None, None, None)],
        key=lambda r: r[0])
    assert pg.count("pulsaride_deferred") == 0
    assert pg.rows("SELECT transform, status FROM pulsaride_run_registry") == [
        ("accounts", "DONE"), ("items", "DONE"), ("owners", "DONE")]


# ---- scaffold -> validate -> run, end to end, on SQLite ------------------------------------------

SQLITE_SCHEMA = """
    CREATE TABLE DEPARTMENTS (
        DEPT_ID NUMBER(6) PRIMARY KEY, NAME VARCHAR2(40) NOT NULL,
        HEAD_ID NUMBER(9) REFERENCES EMPLOYEES (EMP_ID));
    CREATE TABLE EMPLOYEES (
        EMP_ID NUMBER(9) PRIMARY KEY, NAME VARCHAR2(60) NOT NULL, HIRED DATE,
        SALARY NUMBER(10,2), MANAGER_ID NUMBER(9) REFERENCES EMPLOYEES (EMP_ID),
        DEPT_ID NUMBER(6) REFERENCES DEPARTMENTS (DEPT_ID));
    CREATE TABLE TIMESHEETS (
        SHEET_ID NUMBER(12) PRIMARY KEY, EMP_ID NUMBER(9) NOT NULL REFERENCES EMPLOYEES (EMP_ID),
        DAY DATE NOT NULL, HOURS NUMBER(4,2))
"""


def _sqlite_source(db: Db) -> None:
    db.script(SQLITE_SCHEMA)
    # Departments 1 and 3 are headed by employee 40, who has no manager and is in department
    # 2, which has no head: references chain across the cycle of tables, never in a circle.
    db.insert("DEPARTMENTS", [(1, "Research", 40), (2, "Sales", None), (3, "Ops", 40)])
    # Managers come LATER in key order than the people they manage (parents after children),
    # and chains span several batches.
    employees = [(i, f"Person {i}", f"2020-01-{(i % 28) + 1:02d}", 1000 + i * 10.5,
                  None if i == 40 else min(i + 13, 40), (i % 3) + 1) for i in range(1, 41)]
    db.insert("EMPLOYEES", employees)
    db.insert("TIMESHEETS", [(s, (s % 40) + 1, f"2024-03-{(s % 28) + 1:02d}", 7.5)
                             for s in range(1, 121)])


def test_scaffold_validate_run_end_to_end_on_sqlite(sqlite_db: Callable[[str], Db],
                                                    tmp_path: Path) -> None:
    source = sqlite_db("source")
    _sqlite_source(source)
    folder = tmp_path / "migration"
    out = scaffold(folder, source, "sqlite:///target.db")
    for edge in ("DEPARTMENTS(HEAD_ID) -> EMPLOYEES", "EMPLOYEES(DEPT_ID) -> DEPARTMENTS",
                 "EMPLOYEES(MANAGER_ID) -> EMPLOYEES"):
        assert f"depends_on DEFER (cycle or self-reference): {edge}" in out

    jobs = load(folder / "pulsaride-pipeline.yml")["jobs"]
    assert set(jobs) == {"create-schema", "migrate-departments", "migrate-employees",
                         "migrate-timesheets", "report-deferred", "cutover-gate"}
    assert "needs" not in jobs["migrate-departments"]
    assert "needs" not in jobs["migrate-employees"]  # neither its cycle nor itself
    assert jobs["migrate-timesheets"]["needs"] == ["migrate-employees"]
    assert jobs["cutover-gate"]["when"] == "manual"
    assert jobs["create-schema"]["stage"] == "preflight"
    employees = load(folder / "employees.yaml")
    assert sorted(employees["depends_on"], key=lambda d: d["via"]) == [
        {"table": "departments", "key": "dept_id", "via": "s.DEPT_ID", "on_missing": "DEFER"},
        {"table": "employees", "key": "emp_id", "via": "s.MANAGER_ID", "on_missing": "DEFER"}]
    assert {f["name"]: f["target_type"] for f in employees["fields"]} == {
        "emp_id": "integer", "name": "varchar(60)", "hired": "date",
        "salary": "numeric(10,2)", "manager_id": "integer", "dept_id": "integer"}

    result = pt("pipeline", "validate", "pulsaride-pipeline.yml", cwd=folder)
    assert result.returncode == 0, result.stdout + result.stderr
    result = pt("pipeline", "run", "pulsaride-pipeline.yml", "--no-wait", "-q", cwd=folder,
                env={"PT_SOURCE_URL": source.url})
    assert result.returncode == 3, result.stdout + result.stderr

    target = Db("sqlite", f"sqlite:///{folder / 'target.db'}")
    for table in ("DEPARTMENTS", "EMPLOYEES", "TIMESHEETS"):
        assert target.rows(f"SELECT * FROM {table.lower()}") == \
            source.rows(f"SELECT * FROM {table}"), table
    assert target.count("pulsaride_deferred") == 0
    assert target.count("pulsaride_dlq") == 0
    assert target.rows("SELECT transform, status, rows_read, rows_written FROM "
                       "pulsaride_run_registry") == [
        ("departments", "DONE", 3, 3), ("employees", "DONE", 40, 40),
        ("timesheets", "DONE", 120, 120)]
    target.dispose()


def test_scaffold_refuses_to_overwrite_and_names_missing_tables(
        sqlite_db: Callable[[str], Db], tmp_path: Path) -> None:
    source = sqlite_db("source")
    source.script(SQLITE_SCHEMA)
    folder = tmp_path / "out"
    scaffold(folder, source, "sqlite:///target.db", "--tables", "departments")
    assert sorted(p.name for p in folder.iterdir()) == [
        "departments.yaml", "pulsaride-pipeline.yml", "target-schema.sql"]
    again = pt("scaffold", "--source-url", source.url, "-o", "pulsaride-pipeline.yml",
               cwd=folder)
    assert again.returncode == 2
    assert "refusing to overwrite" in again.stderr and "(use --force)" in again.stderr
    missing = pt("scaffold", "--source-url", source.url, "-o", "x.yml", "--tables", "NOPE",
                 cwd=folder)
    assert missing.returncode == 2
    assert missing.stderr.strip() == ("pt: error: no table NOPE in the source (tables: "
                                      "DEPARTMENTS, EMPLOYEES, TIMESHEETS)")
