"""`pt validate counts | sample | hash` with planted faults, on a real PostgreSQL target, from a
SQLite and a MariaDB source.

One source table `items` is copied by six transform files into six PostgreSQL tables; then
exactly one fault is planted in each (key 7):

  t_missing       the row is deleted
  t_changed       one value is changed
  t_duplicate     the row is inserted twice (no primary key; expect.key_columns: [id])
  t_format        nothing: but every target table has amount numeric(12,2) for the source's
                  1.5 (target 1.50) and at timestamp(3) for the source's microseconds (rounded
                  by PostgreSQL, halves included, before and after 2000) — never a difference
  t_empty         '' in the source, NULL planted in the target (reported)
  t_empty_option  the same with options.empty_string_as_null: true (not reported)

Each check must report exactly the planted fault and nothing else: the whole mismatch list
from --json is compared. The checks marked in THROUGH_PT run as real `pt validate ... --json`
processes; the others call the same functions in-process (check, record, document — what the
command does) to keep the suite fast.
"""

from __future__ import annotations

import os
import pty
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from pulsaride.migration.canonical import canonical, rule_for, sampled
from pulsaride.migration.migrate import MigrateRequest, migrate
from pulsaride.migration.source import plan_source
from pulsaride.migration.transform import load_transform
from pulsaride.migration.validation import (
    Sides,
    _row_rules,
    record,
    source_rows,
    target_rows,
    validate_counts,
    validate_hash,
    validate_sample,
    worst,
)
from tests.conftest import PT
from tests.migration.conftest import (
    Db,
    clean_env,
    create_table,
    new_maria_database,
    new_pg_database,
    pt,
    write_transform,
)

KEY = 7
ROWS = 40
COLUMNS = ("id", "name", "amount", "at", "note")
SOURCE_TYPES = {
    "sqlite": ("INTEGER", "VARCHAR(100)", "NUMERIC(10,1)", "TIMESTAMP", "VARCHAR(100)"),
    "mariadb": ("INT", "VARCHAR(100)", "DECIMAL(10,1)", "DATETIME(6)", "VARCHAR(100)"),
}
TARGET_DDL = ("CREATE TABLE {name} (id integer{pk}, name varchar(100), amount numeric(12,2), "
              "at timestamp(3), note varchar(100))")
# Microseconds that PostgreSQL's timestamp(3) rounds: halves (up after 2000, down before),
# carries into the next second, plain cuts.
MICROS = (124_500, 123_500, 999_600, 123_456, 0, 500)


def source_row(i: int) -> tuple[Any, ...]:
    amount = Decimal(i) + Decimal("0.5") if i % 2 else Decimal(i)  # 7.5, 8, 0.5 ...
    year = 1987 if i % 4 == 0 else 2024
    at = datetime(year, 6, 30, 23, 59, 59 - i % 3, MICROS[i % len(MICROS)])
    note = "" if i % 5 == 2 else None if i % 5 == 3 else f"note {i}"
    return i, f"name {i}", amount, at, note


def stored(kind: str, row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row as the source keeps it (SQLite: text decimals and ISO text timestamps)."""
    if kind != "sqlite":
        return row
    i, name, amount, at, note = row
    return i, name, str(amount), at.isoformat(" "), note


@dataclass(frozen=True)
class Fault:
    table: str
    delta: int  # target rows minus expected rows
    mismatches: tuple[dict[str, Any], ...]
    pk: bool = True
    options: dict[str, Any] | None = None
    plant: str | None = None


def _m(field: str, source: Any, target: Any, kind: str) -> dict[str, Any]:
    return {"key": [str(KEY)], "field": field, "source": source, "target": target, "kind": kind}


FAULTS = {f.table: f for f in (
    Fault("t_missing", -1, (_m("(row)", "present", None, "missing"),),
          plant=f"DELETE FROM t_missing WHERE id = {KEY}"),
    Fault("t_changed", 0, (_m("name", f"name {KEY}", "changed!", "value"),),
          plant=f"UPDATE t_changed SET name = 'changed!' WHERE id = {KEY}"),
    Fault("t_duplicate", +1, (_m("(row)", 1, 2, "duplicate"),), pk=False,
          plant=f"INSERT INTO t_duplicate SELECT * FROM t_duplicate WHERE id = {KEY}"),
    Fault("t_format", 0, ()),
    Fault("t_empty", 0, (_m("note", "", None, "value"),),
          plant=f"UPDATE t_empty SET note = NULL WHERE id = {KEY}"),
    # The copy wrote NULL for the source's ''; plant '' back: still the same value.
    Fault("t_empty_option", 0, (), options={"empty_string_as_null": True},
          plant=f"UPDATE t_empty_option SET note = '' WHERE id = {KEY}"),
)}


@dataclass
class World:
    """A source, a PostgreSQL target with the six copied tables (faults planted), and the
    folder of their transform files (URLs written in the files)."""

    kind: str
    source: Db
    target: Db
    folder: Path

    def check(self, command: str, *args: str) -> dict[str, Any]:
        """`pt validate COMMAND ARGS --json` as the JSON document: a real process for the
        checks in THROUGH_PT, else the same functions in-process."""
        table = args[1] if command != "counts" else None
        if (self.kind, command, table) not in THROUGH_PT:
            return in_process(self.folder, command, *args)
        result = pt("validate", command, *args, "--json", cwd=self.folder)
        assert result.returncode in (0, 1), result.stderr
        document: dict[str, Any] = orjson.loads(result.stdout)
        assert result.returncode == (0 if document["status"] == "PASS" else 1)
        return document


# (source kind, command, table) checked by a real pt process.
THROUGH_PT = {("sqlite", "counts", None), ("sqlite", "sample", "t_missing"),
              ("sqlite", "sample", "t_format"), ("sqlite", "hash", "t_duplicate"),
              ("sqlite", "hash", "t_empty"), ("mariadb", "sample", "t_changed"),
              ("mariadb", "hash", "t_format")}


def in_process(folder: Path, command: str, *args: str) -> dict[str, Any]:
    """What `pt validate` does, without the process: check, record, document."""
    tables, options = _parse(args)
    results = []
    for table in tables:
        transform = load_transform(folder / f"{table}.yaml")
        sides = Sides.open(transform, None, None)
        try:
            if command == "counts":
                result = validate_counts(sides)
            elif command == "sample":
                result = validate_sample(sides, float(options.get("--sample", 0.02)),
                                         int(options.get("--seed", 0)))
            else:
                result = validate_hash(sides, int(options.get("--buckets", 256)))
            record(sides.target, result, None)
        finally:
            sides.close()
        results.append(orjson.loads(orjson.dumps(result.document(), default=str)))
    return {"status": worst(r["status"] for r in results), "results": results}


def _parse(args: tuple[str, ...]) -> tuple[list[str], dict[str, str]]:
    tables, options, index = [], {}, 0
    while index < len(args):
        if args[index] == "--table":
            index += 1
            while index < len(args) and not args[index].startswith("--"):
                tables.append(args[index])
                index += 1
        else:
            options[args[index]] = args[index + 1]
            index += 2
    return tables, options


def build_world(kind: str, source: Db, target: Db, folder: Path) -> World:
    types = SOURCE_TYPES[kind]
    create_table(source, "items", list(zip(COLUMNS, types, strict=True)), primary_key=["id"])
    source.insert("items", [stored(kind, source_row(i)) for i in range(1, ROWS + 1)])
    for fault in FAULTS.values():
        target.execute(TARGET_DDL.format(name=fault.table,
                                         pk=" PRIMARY KEY" if fault.pk else ""))
        document: dict[str, Any] = {
            "name": fault.table, "source_url": source.url, "target_url": target.url,
            "sources": [{"name": "items", "table": "items", "alias": "s"}],
            "fields": [{"name": c, "source": f"s.{c}"} for c in COLUMNS],
            "target_table": fault.table}
        if not fault.pk:
            document["expect"] = {"key_columns": ["id"]}
        if fault.options:
            document["options"] = fault.options
        path = write_transform(folder, document, name=f"{fault.table}.yaml")
        outcome = migrate(MigrateRequest(load_transform(path)))
        assert (outcome.status, outcome.written) == ("done", ROWS)
    for fault in FAULTS.values():
        if fault.plant:
            target.execute(fault.plant)
    return World(kind, source, target, folder)


@pytest.fixture(scope="module", params=["sqlite", "mariadb"])
def world(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    kind = request.param
    folder = tmp_path_factory.mktemp(f"validate-{kind}")
    target, drop_target = new_pg_database()
    if kind == "sqlite":
        source, drop_source = Db("sqlite", f"sqlite:///{folder / 'source.db'}"), None
    else:
        source, drop_source = new_maria_database()
    try:
        yield build_world(kind, source, target, folder)
    finally:
        source.dispose()
        drop_target()
        if drop_source is not None:
            drop_source()


# ---- counts, sample, hash: exactly the planted fault ------------------------------------------


def test_counts_find_exactly_the_missing_and_the_duplicated_row(world: World) -> None:
    document = world.check("counts", "--table", *FAULTS)
    by_table = {r["table"]: r for r in document["results"]}
    assert list(by_table) == list(FAULTS)
    for name, fault in FAULTS.items():
        result = by_table[name]
        assert result["kind"] == "counts"
        assert (result["source_rows"], result["expected_target_rows"]) == (ROWS, ROWS), name
        assert (result["target_rows"], result["delta"]) == (ROWS + fault.delta, fault.delta)
        assert result["status"] == ("PASS" if fault.delta == 0 else "FAIL"), name
        assert (result["deferred"], result["rejected"], result["skipped"]) == (0, 0, 0)
        assert result["registry_status"] == "DONE"
    assert document["status"] == "FAIL"


@pytest.mark.parametrize("table", list(FAULTS))
def test_sample_of_every_row_finds_exactly_the_planted_fault(world: World, table: str) -> None:
    fault = FAULTS[table]
    document = world.check("sample", "--table", table, "--sample", "1.0")
    (result,) = document["results"]
    assert result["mismatches"] == list(fault.mismatches)
    assert result["mismatches_total"] == len(fault.mismatches)
    assert result["status"] == ("FAIL" if fault.mismatches else "PASS")
    assert result["sampled_rows"] == ROWS
    assert result["fields_compared"] == ROWS * len(COLUMNS)
    assert result["rows_with_mismatches"] == (1 if fault.mismatches else 0)


@pytest.mark.parametrize("table", list(FAULTS))
def test_hash_finds_exactly_the_planted_fault(world: World, table: str) -> None:
    fault = FAULTS[table]
    document = world.check("hash", "--table", table, "--buckets", "16")
    (result,) = document["results"]
    assert result["mismatches"] == list(fault.mismatches)
    assert result["status"] == ("FAIL" if fault.mismatches else "PASS")
    assert (result["source_rows"], result["target_rows"]) == (ROWS, ROWS + fault.delta)
    assert result["differing_buckets"] == (1 if fault.mismatches else 0)


def test_a_reported_difference_is_reported_again(world: World) -> None:
    """The dead letters a sample writes are not 'explained absences' for the next check:
    a missing row stays missing however often it is checked."""
    for _ in range(2):
        (sample,) = in_process(world.folder, "sample", "--table", "t_missing",
                               "--sample", "1.0")["results"]
        assert sample["mismatches"] == list(FAULTS["t_missing"].mismatches)
    (hashed,) = in_process(world.folder, "hash", "--table", "t_missing")["results"]
    assert hashed["mismatches"] == list(FAULTS["t_missing"].mismatches)


def test_sample_mismatches_land_in_the_dead_letter_queue(world: World) -> None:
    def letters() -> list[tuple[Any, ...]]:
        return world.target.rows(
            "SELECT reason, row_key, payload, detail FROM pulsaride_dlq "
            "WHERE transform = 't_changed'")

    before = letters()
    in_process(world.folder, "sample", "--table", "t_changed", "--sample", "1.0")
    after = letters()
    assert len(after) == len(before) + 1
    reason, row_key, payload, detail = next(r for r in after if r not in before or
                                            after.count(r) > before.count(r))
    assert reason == "VALIDATION_MISMATCH"
    assert orjson.loads(row_key) == {"key": [str(KEY)]}
    assert orjson.loads(payload) == {"field": "name", "source": f"name {KEY}",
                                     "target": "changed!"}
    assert "value: name" in detail
    # Checks that find nothing write no dead letters.
    quiet = world.target.count("pulsaride_dlq WHERE transform = 't_format'")
    in_process(world.folder, "sample", "--table", "t_format", "--sample", "1.0")
    assert world.target.count("pulsaride_dlq WHERE transform = 't_format'") == quiet


def test_every_result_is_recorded_in_pulsaride_validation(world: World) -> None:
    start = world.target.scalar("SELECT coalesce(max(id), 0) FROM pulsaride_validation")
    in_process(world.folder, "counts", "--table", "t_missing", "t_format")
    in_process(world.folder, "hash", "--table", "t_changed")
    rows = world.target.rows(
        "SELECT id, target_table, transform, kind, status, details, run_id "
        "FROM pulsaride_validation WHERE id > :start", start=start)
    assert [(r[1], r[2], r[3], r[4], r[6]) for r in rows] == [
        ("t_missing", "t_missing", "counts", "FAIL", None),
        ("t_format", "t_format", "counts", "PASS", None),
        ("t_changed", "t_changed", "hash", "FAIL", None)]
    details = orjson.loads(rows[2][5])
    assert details["mismatches"] == list(FAULTS["t_changed"].mismatches)
    assert orjson.loads(rows[0][5])["delta"] == -1


@pytest.mark.parametrize("world", ["sqlite"], indirect=True)  # one source is enough
def test_validate_all_records_counts_then_hash_of_each_table(world: World) -> None:
    start = world.target.scalar("SELECT coalesce(max(id), 0) FROM pulsaride_validation")
    result = pt("validate", "all", "--table", "t_format", "t_changed", "--json",
                cwd=world.folder)
    assert result.returncode == 1, result.stderr  # t_changed's hash fails
    document = orjson.loads(result.stdout)
    assert [(r["table"], r["kind"], r["status"]) for r in document["results"]] == [
        ("t_format", "counts", "PASS"), ("t_format", "hash", "PASS"),
        ("t_changed", "counts", "PASS"), ("t_changed", "hash", "FAIL")]
    assert document["results"][3]["mismatches"] == list(FAULTS["t_changed"].mismatches)
    recorded = world.target.rows("SELECT target_table, kind, status FROM pulsaride_validation "
                                 "WHERE id > :start", start=start)
    assert recorded == sorted([("t_changed", "counts", "PASS"), ("t_changed", "hash", "FAIL"),
                               ("t_format", "counts", "PASS"), ("t_format", "hash", "PASS")])
    passing = pt("validate", "all", "--table", "t_format", cwd=world.folder)
    assert passing.returncode == 0, passing.stdout
    assert [line.split()[0] for line in passing.stdout.splitlines()] == ["PASS", "PASS"]


# ---- the text output ------------------------------------------------------------------------


@pytest.mark.parametrize("world", ["sqlite"], indirect=True)  # one source is enough
def test_text_output_names_key_field_and_both_values(world: World) -> None:
    result = pt("validate", "sample", "--table", "t_empty", "--sample", "1.0", cwd=world.folder)
    assert result.returncode == 1
    head, *rest = result.stdout.splitlines()
    assert head.startswith("FAIL  t_empty (sample): ")
    assert f"sampled rows {ROWS}" in head
    assert rest == [f"  key ['{KEY}']: value note: source '', target None"]


def _on_a_terminal(args: list[str], cwd: Path) -> tuple[int, str, str]:
    """Run pt with stderr on a pseudo-terminal (stdout a pipe): exit code, stdout, stderr."""
    leader, follower = pty.openpty()
    process = subprocess.Popen([PT, *args], cwd=cwd, env=clean_env(), stdout=subprocess.PIPE,
                               stderr=follower, text=True)
    os.close(follower)
    seen = bytearray()
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    out, _ = process.communicate(timeout=120)
    os.close(leader)
    return process.returncode, out, seen.decode()


@pytest.mark.parametrize("world", ["sqlite"], indirect=True)
def test_a_long_check_shows_its_progress_on_a_terminal_and_only_there(world: World) -> None:
    code, out, err = _on_a_terminal(
        ["validate", "hash", "--table", "t_changed", "--buckets", "4"], world.folder)
    assert code == 1, err
    assert out.startswith("FAIL  t_changed (hash): ")  # the result stays on stdout
    assert f"validate hash t_changed: hashing both sides: {ROWS:,} source rows (" in err
    assert f"validate hash t_changed: reading the differing buckets: {ROWS:,} source" in err
    assert err.endswith("\r\x1b[K")  # the line is taken away before the result
    piped = pt("validate", "hash", "--table", "t_changed", "--buckets", "4", cwd=world.folder)
    assert piped.returncode == 1
    assert piped.stderr == ""  # not a terminal: no progress


# ---- canonicalisation agrees with the real server ------------------------------------------


def test_canonical_timestamps_and_numbers_agree_with_postgresql(pg: Db) -> None:
    """Every precision 0-5, halves and near-halves before and after 2000-01-01, and carries:
    the canonical form of the source value equals that of what PostgreSQL stored."""
    bases = [datetime(1987, 6, 30, 23, 59, 59), datetime(1999, 12, 31, 23, 59, 59),
             datetime(2000, 1, 1), datetime(2024, 2, 29, 12, 0, 0)]
    micros = [0, 1, 5, 15, 25, 49, 50, 51, 500, 1500, 2500, 124_500, 123_500, 499_999,
              500_000, 500_001, 999_500, 999_999]
    moments = [base + timedelta(microseconds=m) for base in bases for m in micros]
    pg.execute("CREATE TABLE t (i integer, p integer, at timestamp(6), n numeric(12,2))")
    pg.execute(*[f"ALTER TABLE t ADD COLUMN at{p} timestamp({p})" for p in range(6)])
    columns = ", ".join(f"at{p}" for p in range(6))
    pg.execute(f"INSERT INTO t (i, at, {columns}) VALUES (:i, :at, "
               f"{', '.join(':at' for _ in range(6))})",
               params=[{"i": i, "at": m.isoformat(" ")} for i, m in enumerate(moments)])
    got = pg.rows(f"SELECT i, {columns} FROM t")
    for i, *stored_values in got:
        for p, value in enumerate(stored_values):
            rule = rule_for("at", f"TIMESTAMP({p}) WITHOUT TIME ZONE", False)
            assert canonical(moments[i], rule) == canonical(value, rule), (moments[i], p, value)
            assert canonical(moments[i].isoformat(" "), rule) == canonical(value, rule)
    numbers = ["1.5", "-0.00", "0", "7.10", "-12.345", "99999.995", "0.004"]
    pg.execute("INSERT INTO t (i, n) VALUES (:i, CAST(:n AS numeric))",
               params=[{"i": 1000 + k, "n": n} for k, n in enumerate(numbers)])
    rule = rule_for("n", "NUMERIC(12, 2)", False)
    for i, value in pg.rows("SELECT i, n FROM t WHERE i >= 1000"):
        written = Decimal(numbers[i - 1000])
        if written == written.quantize(Decimal("0.01")):  # values the column holds as they are
            assert canonical(written, rule) == canonical(value, rule), (written, value)


# ---- deferred and rejected rows: INCOMPLETE; skipped rows: PASS, reported -----------------


def _kids(pg: Db, source: Db, folder: Path) -> None:
    """parents, and kids copied four ways: DEFER, SKIP and FAIL (each also rejecting the kid
    whose label is not a number), and SKIP without that expression."""
    create_table(source, "parents", [("id", "int"), ("name", "text")], primary_key=["id"])
    create_table(source, "kids", [("id", "int"), ("parent_id", "int"), ("label", "text")],
                 primary_key=["id"])
    source.insert("parents", [(i, f"p{i}") for i in range(1, 6)])
    # kid 3 and 9 point at parent 99 (missing everywhere); kid 6's label is not a number.
    source.insert("kids", [(i, 99 if i in (3, 9) else i % 5 + 1, "x" if i == 6 else str(i))
                           for i in range(1, 13)])
    create_table(pg, "parents", [("id", "int"), ("name", "text")], primary_key=["id"])
    for name in ("kids_defer", "kids_skip", "kids_fail", "kids_only_skip"):
        create_table(pg, name, [("id", "int"), ("parent_id", "int"), ("label", "text")],
                     primary_key=["id"])
    urls = {"source_url": source.url, "target_url": pg.url}
    write_transform(folder, {"name": "parents", **urls,
                               "sources": [{"name": "parents", "table": "parents"}]})
    for name, on_missing, label in (("kids_defer", "DEFER", "to_int(?)"),
                                    ("kids_skip", "SKIP", "to_int(?)"),
                                    ("kids_fail", "FAIL", "to_int(?)"),
                                    ("kids_only_skip", "SKIP", None)):
        write_transform(folder, {
            "name": name, **urls, "sources": [{"name": "kids", "table": "kids", "alias": "k"}],
            "fields": [{"name": "id", "source": "k.id"},
                       {"name": "parent_id", "source": "k.parent_id"},
                       {"name": "label", "source": "k.label",
                        **({"expression": label} if label else {})}],
            "target_table": name, "reject_policy": "FAIL_ROW",
            "depends_on": [{"table": "parents", "key": "id", "via": "k.parent_id",
                            "on_missing": on_missing}]})
    for name in ("parents", "kids_defer", "kids_skip", "kids_fail", "kids_only_skip"):
        outcome = migrate(MigrateRequest(load_transform(folder / f"{name}.yaml")))
        assert outcome.status == "done"
    assert pg.count("kids_defer") == pg.count("kids_skip") == pg.count("kids_fail") == 9
    assert pg.count("kids_only_skip") == 10


@pytest.mark.slow
def test_deferred_or_rejected_rows_make_a_check_incomplete_and_skipped_rows_do_not(
        pg: Db, sqlite_db: Any, tmp_path: Path) -> None:
    """Rows that wait or were dead-lettered are not differences, but they are missing: no
    check PASSes while they are (ADR 0013). Rows dropped by `on_missing: SKIP` are dropped by
    rule, as by a filter: PASS, with the skipped rows reported."""
    _kids(pg, sqlite_db("accounted"), tmp_path)
    result = pt("validate", "counts", "--table", "kids_defer", "kids_skip", "kids_fail",
                "kids_only_skip", "--json", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    document = orjson.loads(result.stdout)
    assert document["status"] == "INCOMPLETE"
    counts = {r["table"]: r for r in document["results"]}
    accounted = {t: (r["status"], r["source_rows"], r["deferred"], r["rejected"],
                     r["skipped"], r["target_rows"], r["delta"]) for t, r in counts.items()}
    assert accounted == {"kids_defer": ("INCOMPLETE", 12, 2, 1, 0, 9, 0),
                         "kids_skip": ("INCOMPLETE", 12, 0, 1, 2, 9, 0),
                         "kids_fail": ("INCOMPLETE", 12, 0, 3, 0, 9, 0),
                         "kids_only_skip": ("PASS", 12, 0, 0, 2, 10, 0)}
    text = pt("validate", "counts", "--table", "kids_defer", "kids_only_skip", cwd=tmp_path)
    assert text.returncode == 1
    assert text.stdout.splitlines() == [
        "INCOMPLETE  kids_defer: source 12, target 9, expected 9 (2 deferred, 1 rejected), "
        "delta +0",
        "  3 source row(s) are not in the target: 2 wait in pulsaride_deferred (pt migrate "
        "deferred), 1 rejected to pulsaride_dlq by the copy",
        "PASS  kids_only_skip: source 12, target 10, expected 10 (2 skipped), delta +0"]

    # hash: any waiting or dead-lettered row of the table; sample: any sampled one (the row
    # the transform rejects is never sampled: it has no target values to choose it by).
    expected = {("kids_defer", "hash"): ("INCOMPLETE", 2, 1, 0),
                ("kids_defer", "sample"): ("INCOMPLETE", 2, 0, 0),
                ("kids_skip", "hash"): ("INCOMPLETE", 0, 1, 2),
                ("kids_skip", "sample"): ("PASS", 0, 0, 2),
                ("kids_fail", "hash"): ("INCOMPLETE", 0, 3, 0),
                ("kids_fail", "sample"): ("INCOMPLETE", 0, 2, 0),
                ("kids_only_skip", "hash"): ("PASS", 0, 0, 2),
                ("kids_only_skip", "sample"): ("PASS", 0, 0, 2)}
    for (name, command), (status, deferred, rejected, skipped) in expected.items():
        args = ("--sample", "1.0") if command == "sample" else ()
        (checked,) = in_process(tmp_path, command, "--table", name, *args)["results"]
        assert (checked["status"], checked["mismatches"], checked["deferred"],
                checked["rejected"], checked["skipped"]) == (
            status, [], deferred, rejected, skipped), (name, command)
    hashed = pt("validate", "hash", "--table", "kids_defer", cwd=tmp_path)
    assert hashed.returncode == 1
    assert hashed.stdout.splitlines()[0].startswith("INCOMPLETE  kids_defer (hash): ")
    assert hashed.stdout.splitlines()[1:] == [
        "  3 source row(s) are not in the target: 2 wait in pulsaride_deferred (pt migrate "
        "deferred), 1 rejected to pulsaride_dlq by the copy"]
    recorded = pg.rows("SELECT target_table, kind, status FROM pulsaride_validation "
                       "WHERE target_table = 'kids_defer'")
    assert set(recorded) == {("kids_defer", "counts", "INCOMPLETE"),
                             ("kids_defer", "hash", "INCOMPLETE"),
                             ("kids_defer", "sample", "INCOMPLETE")}

    # The cutover gate refuses the INCOMPLETE checks, and the dead letters themselves.
    gate = pt("migrate", "cutover", "kids_fail.yaml", "--json", cwd=tmp_path)
    assert gate.returncode == 1
    (refused,) = orjson.loads(gate.stdout)["tables"]
    assert [r.split(":")[0] for r in refused["refusals"]] == [
        f"the latest {kind} validation of kids_fail is INCOMPLETE"
        for kind in ("counts", "hash", "sample")] + [
        "3 row(s) of kids_fail were rejected to pulsaride_dlq by the copy"]

    # A copy made again from the start (--force) rejects its rows again: only its own dead
    # letters count, not those of the copy it replaced.
    again = migrate(MigrateRequest(load_transform(tmp_path / "kids_fail.yaml"), force=True))
    assert (again.status, again.rejected) == ("done", 3)
    assert pg.count("pulsaride_dlq WHERE transform = 'kids_fail'") == 6
    (recount,) = in_process(tmp_path, "counts", "--table", "kids_fail")["results"]
    assert (recount["status"], recount["rejected"], recount["delta"]) == ("INCOMPLETE", 3, 0)
    # ... while a row that is really missing is a difference: FAIL, next to them.
    pg.execute("DELETE FROM kids_defer WHERE id = 1")
    (hashed_again,) = in_process(tmp_path, "hash", "--table", "kids_defer")["results"]
    assert hashed_again["status"] == "FAIL"
    assert hashed_again["mismatches"] == [{"key": ["1"], "field": "(row)", "source": "present",
                                           "target": None, "kind": "missing"}]
    # So is a row that should wait but does not: nobody explains its absence.
    pg.execute("DELETE FROM pulsaride_deferred WHERE transform = 'kids_defer'")
    (unexplained,) = in_process(tmp_path, "sample", "--table", "kids_defer",
                                "--sample", "1.0")["results"]
    assert unexplained["status"] == "FAIL"
    assert sorted(m["key"] for m in unexplained["mismatches"]) == [["1"], ["3"], ["9"]]


# ---- composite keys, CHAR padding, booleans and dates kept by SQLite as 0/1 and text -------


def test_composite_keys_and_sqlite_storage_classes(pg: Db, sqlite_db: Any,
                                                   tmp_path: Path) -> None:
    """SQLite keeps booleans as 0/1 and dates as text; PostgreSQL pads char(5). None of it is
    a difference; a changed value under a two-column key is, and is named by both columns."""
    source = sqlite_db("composite")
    source.execute("CREATE TABLE lines (shop TEXT, n INTEGER, code TEXT, paid BOOLEAN, "
                   "day DATE, PRIMARY KEY (shop, n))")
    source.insert("lines", [(shop, n, f"c{n}", n % 2, f"2024-02-{n + 10:02d}")
                            for shop in ("north", "south") for n in range(1, 8)])
    pg.execute("CREATE TABLE lines (shop varchar(10), n integer, code char(5), paid boolean, "
               "day date, PRIMARY KEY (shop, n))")
    path = write_transform(tmp_path, {"name": "lines", "source_url": source.url,
                                      "target_url": pg.url,
                                      "sources": [{"name": "lines", "table": "lines"}]})
    assert migrate(MigrateRequest(load_transform(path))).written == 14
    assert pg.rows("SELECT code, paid, day FROM lines WHERE shop = 'south' AND n = 3") == [
        ("c3   ", True, datetime(2024, 2, 13).date())]
    for command, args in (("sample", ("--sample", "1.0")), ("hash", ()), ("counts", ())):
        (checked,) = in_process(tmp_path, command, "--table", "lines", *args)["results"]
        assert (checked["status"], checked["mismatches"]) == ("PASS", []), command
    pg.execute("UPDATE lines SET paid = NOT paid WHERE shop = 'south' AND n = 3")
    expected = [{"key": ["south", "3"], "field": "paid", "source": True, "target": False,
                 "kind": "value"}]
    for command, args in (("sample", ("--sample", "1.0")), ("hash", ("--buckets", "3"))):
        (checked,) = in_process(tmp_path, command, "--table", "lines", *args)["results"]
        assert checked["mismatches"] == expected, command


# ---- deterministic sampling ---------------------------------------------------------------


def test_the_same_seed_picks_the_same_keys_on_both_sides(pg: Db, sqlite_db: Any,
                                                         tmp_path: Path) -> None:
    """10,000 rows; every target row changed, so the mismatch keys are the sampled keys."""
    source = sqlite_db("sampled")
    create_table(source, "items", [("id", "int"), ("name", "text")], primary_key=["id"])
    source.insert("items", [(i, f"n{i}") for i in range(1, 10_001)])
    create_table(pg, "items", [("id", "int"), ("name", "text")], primary_key=["id"])
    path = write_transform(tmp_path, {"name": "items", "source_url": source.url,
                                      "target_url": pg.url,
                                      "sources": [{"name": "items", "table": "items"}]})
    assert migrate(MigrateRequest(load_transform(path))).written == 10_000
    pg.execute("UPDATE items SET name = name || '!'")

    def picked(seed: int, through_pt: bool = False) -> tuple[int, set[str]]:
        args = ("--table", "items", "--sample", "0.02", "--seed", str(seed))
        if through_pt:
            result = pt("validate", "sample", *args, "--json", cwd=tmp_path)
            assert result.returncode == 1, result.stderr
            (document,) = orjson.loads(result.stdout)["results"]
        else:
            (document,) = in_process(tmp_path, "sample", *args)["results"]
        keys = {m["key"][0] for m in document["mismatches"]}
        assert len(keys) == document["sampled_rows"] == document["rows_with_mismatches"]
        return document["sampled_rows"], keys

    count, first = picked(11, through_pt=True)
    assert 140 <= count <= 260  # about 200 of 10,000 (binomial: 200 ± 14)
    assert picked(11) == (count, first)  # again, in another process: the same keys
    other_count, other = picked(12)
    assert 140 <= other_count <= 260
    assert len(first & other) < 30  # independent choices share about 2% of 200
    assert picked(0)[1] == {k for k in (str(i) for i in range(1, 10_001))
                            if sampled([k], 0.02, 0)}

    # Both sides choose by the canonical key: the keys each side would pick are the same.
    transform = load_transform(path)
    sides = Sides.open(transform, None, None)
    try:
        with sides.source.connect() as reader, sides.target.connect() as connection:
            plan = plan_source(reader, transform)
            layout = _row_rules(connection, transform, plan, reader.dialect.name)
            mine = {tuple(layout.key([canonical(v, r) for v, r in zip(values, layout.rules,
                                                                        strict=True)]))
                    for _, values in source_rows(reader, transform, plan)}
            theirs = {tuple(layout.key([canonical(v, r) for v, r in zip(row, layout.rules,
                                                                        strict=True)]))
                      for row in target_rows(connection, layout)}
    finally:
        sides.close()
    assert mine == theirs and len(mine) == 10_000
    for seed in (11, 12):
        assert {k for k in mine if sampled(list(k), 0.02, seed)} == \
               {k for k in theirs if sampled(list(k), 0.02, seed)}
    assert {k[0] for k in mine if sampled(list(k), 0.02, 11)} == first


# ---- inside a pipeline job ---------------------------------------------------------------


def test_a_validation_in_a_pipeline_job_keeps_its_result_in_the_run_folder(
        pg: Db, sqlite_db: Any, tmp_path: Path) -> None:
    source = sqlite_db("piped")
    create_table(source, "items", [("id", "int"), ("name", "text")], primary_key=["id"])
    source.insert("items", [(i, f"n{i}") for i in range(1, 21)])
    create_table(pg, "items", [("id", "int"), ("name", "text")], primary_key=["id"])
    path = write_transform(tmp_path, {"name": "items", "source_url": source.url,
                                      "target_url": pg.url,
                                      "sources": [{"name": "items", "table": "items"}]})
    assert migrate(MigrateRequest(load_transform(path))).written == 20
    (tmp_path / "pulsaride-pipeline.yml").write_text(
        "stages: [validate]\njobs:\n  validate-counts:\n    stage: validate\n"
        "    command: pt validate counts --table items\n")
    result = pt("pipeline", "run", "pulsaride-pipeline.yml", "--run-id", "r1", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    saved = sorted((tmp_path / ".pulsaride" / "pipeline-runs" / "r1" / "validations").glob(
        "*.json"))
    assert [p.name.split("-")[:2] for p in saved] == [["counts", "items"]]
    document = orjson.loads(saved[0].read_bytes())
    assert (document["kind"], document["table"], document["status"]) == (
        "counts", "items", "PASS")
    assert (document["source_rows"], document["target_rows"]) == (20, 20)
    assert pg.rows("SELECT kind, status, run_id FROM pulsaride_validation") == [
        ("counts", "PASS", "r1")]
