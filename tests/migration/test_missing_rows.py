"""Never green while rows are missing (ADR 0013), and health, validations and the cutover gate
agree, as real `pt` processes on a SQLite source and a PostgreSQL target:

- every row of a table waits for parents not copied yet: counts and hash INCOMPLETE (exit 1,
  counts shown), health NO-GO, the cutover refused; once the parents arrive: PASS, GO, cut over;
- rows of two tables wait for each other (store <-> staff, with the target's foreign keys in
  place, so they cannot be written together): health names the cycle once, with the fix, and
  a table waiting on the cycle points at it; after the fix (keys after the data): PASS, GO;
- a row whose SKIP parent is missing is dropped by its rule even while another (DEFER) parent
  is late, instead of waiting for the SKIP parent forever: PASS, the skipped rows reported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.migration.conftest import Db, create_table, parent_child_source, pt, write_transform


def _json(result: Any) -> dict[str, Any]:
    assert result.returncode in (0, 1), result.stdout + result.stderr
    document: dict[str, Any] = orjson.loads(result.stdout)
    return document


def _validate(folder: Path, command: str, *tables: str) -> tuple[int, dict[str, Any]]:
    result = pt("validate", command, "--table", *tables, "--json", cwd=folder)
    return result.returncode, _json(result)


def _health(folder: Path) -> tuple[int, dict[str, Any]]:
    result = pt("health", "--transforms", str(folder), "--json", cwd=folder)
    return result.returncode, _json(result)


def _parent_child(source: Db, target: Db, folder: Path) -> None:
    parent_child_source(source, parents=4, children=10)
    for name in ("parents", "children"):
        target.execute(f"CREATE TABLE {name} (id integer PRIMARY KEY, "
                       + ("parent_id integer, label text)" if name == "children"
                          else "name text)"))
    urls = {"source_url": source.url, "target_url": target.url}
    write_transform(folder, {"name": "parents", **urls,
                             "sources": [{"name": "parents", "table": "parents"}]})
    write_transform(folder, {
        "name": "children", **urls,
        "sources": [{"name": "children", "table": "children", "alias": "c"}],
        "depends_on": [{"table": "parents", "key": "id", "via": "c.parent_id"}]})


@pytest.mark.slow
def test_a_table_whose_rows_all_wait_is_incomplete_until_its_parents_arrive(
        pg: Db, sqlite_db: Any, tmp_path: Path) -> None:
    _parent_child(sqlite_db("source"), pg, tmp_path)
    assert pt("migrate", "run", "children.yaml", cwd=tmp_path).returncode == 0
    assert pg.count("children") == 0 and pg.count("pulsaride_deferred") == 10

    code, counts = _validate(tmp_path, "counts", "children")
    assert (code, counts["status"]) == (1, "INCOMPLETE")
    (result,) = counts["results"]
    assert {k: result[k] for k in ("status", "source_rows", "target_rows", "deferred",
                                   "rejected", "skipped", "delta")} == {
        "status": "INCOMPLETE", "source_rows": 10, "target_rows": 0, "deferred": 10,
        "rejected": 0, "skipped": 0, "delta": 0}
    text = pt("validate", "counts", "--table", "children", cwd=tmp_path)
    assert text.returncode == 1
    assert text.stdout.splitlines() == [
        "INCOMPLETE  children: source 10, target 0, expected 0 (10 deferred), delta +0",
        "  10 source row(s) are not in the target: 10 wait in pulsaride_deferred "
        "(pt migrate deferred)"]
    code, hashed = _validate(tmp_path, "hash", "children")
    assert (code, hashed["results"][0]["status"], hashed["results"][0]["mismatches"]) == (
        1, "INCOMPLETE", [])
    sample = pt("validate", "sample", "--table", "children", "--sample", "1.0", cwd=tmp_path)
    assert sample.returncode == 1
    assert sample.stdout.splitlines()[1:] == [
        "  10 sampled row(s) are not in the target: 10 wait in pulsaride_deferred "
        "(pt migrate deferred)"]
    assert pg.rows("SELECT kind, status FROM pulsaride_validation") == [
        ("counts", "INCOMPLETE"), ("counts", "INCOMPLETE"), ("hash", "INCOMPLETE"),
        ("sample", "INCOMPLETE")]

    code, health = _health(tmp_path)
    tables = {t["table"]: t for t in health["tables"]}
    assert (code, health["verdict"], tables["children"]["verdict"]) == (1, "NO-GO", "NO-GO")
    assert tables["children"]["validations"] == {
        "counts": "INCOMPLETE", "hash": "INCOMPLETE", "sample": "INCOMPLETE"}
    assert tables["children"]["reasons"][-1] == (
        "NO-GO: the latest sample validation is INCOMPLETE: 10 sampled row(s) are not in the "
        "target: 10 wait in pulsaride_deferred (pt migrate deferred)")
    gate = pt("migrate", "cutover", "children.yaml", "--json", cwd=tmp_path)
    assert gate.returncode == 1
    (refused,) = _json(gate)["tables"]
    assert refused["status"] == "refused"
    assert refused["refusals"] == [
        "the latest counts validation of children is INCOMPLETE: 10 source row(s) are not in "
        "the target: 10 wait in pulsaride_deferred (pt migrate deferred)",
        "the latest hash validation of children is INCOMPLETE: 10 source row(s) are not in "
        "the target: 10 wait in pulsaride_deferred (pt migrate deferred)",
        "the latest sample validation of children is INCOMPLETE: 10 sampled row(s) are not "
        "in the target: 10 wait in pulsaride_deferred (pt migrate deferred)",
        "10 row(s) of children still wait in pulsaride_deferred (see pt migrate deferred)"]

    # The parents arrive: the waiting rows follow them; checked again, everything agrees.
    assert pt("migrate", "run", "parents.yaml", cwd=tmp_path).returncode == 0
    assert pg.count("children") == 10 and pg.count("pulsaride_deferred") == 0
    for command in ("counts", "hash", "sample"):
        code, document = _validate(tmp_path, command, "children", "parents")
        assert (code, document["status"]) == (0, "PASS"), document
    code, health = _health(tmp_path)
    assert (code, health["verdict"]) == (0, "GO"), health
    assert {t["table"]: t["validations"] for t in health["tables"]} == {
        "children": {"counts": "PASS", "hash": "PASS", "sample": "PASS"},
        "parents": {"counts": "PASS", "hash": "PASS", "sample": "PASS"}}
    done = pt("migrate", "cutover", "children.yaml", "parents.yaml", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [t["status"] for t in _json(done)["tables"]] == ["cut over", "cut over"]


# ---- rows that wait for each other ------------------------------------------------------------


def _store_staff(source: Db, target: Db, folder: Path) -> None:
    """store 1 is managed by staff 1, who works at store 1 (and so on); payments are taken
    by staff. The target has both foreign keys, checked at once (as a schema created with
    its keys before the data has them)."""
    create_table(source, "store", [("store_id", "int"), ("manager_staff_id", "int")],
                 primary_key=["store_id"])
    create_table(source, "staff", [("staff_id", "int"), ("store_id", "int")],
                 primary_key=["staff_id"])
    create_table(source, "payment", [("payment_id", "int"), ("staff_id", "int")],
                 primary_key=["payment_id"])
    source.insert("store", [(1, 1), (2, 2)])
    source.insert("staff", [(1, 1), (2, 2), (3, 1)])
    source.insert("payment", [(i, i % 3 + 1) for i in range(1, 7)])
    target.script("""
        CREATE TABLE store (store_id integer PRIMARY KEY, manager_staff_id integer);
        CREATE TABLE staff (staff_id integer PRIMARY KEY,
                            store_id integer REFERENCES store (store_id));
        ALTER TABLE store ADD CONSTRAINT store_manager FOREIGN KEY (manager_staff_id)
            REFERENCES staff (staff_id);
        CREATE TABLE payment (payment_id integer PRIMARY KEY,
                              staff_id integer REFERENCES staff (staff_id))""")
    urls = {"source_url": source.url, "target_url": target.url}
    for name, via, parent in (("store", "manager_staff_id", ("staff", "staff_id")),
                              ("staff", "store_id", ("store", "store_id")),
                              ("payment", "staff_id", ("staff", "staff_id"))):
        write_transform(folder, {
            "name": name, **urls, "sources": [{"name": name, "table": name, "alias": "s"}],
            "depends_on": [{"table": parent[0], "key": parent[1], "via": f"s.{via}"}]})


CYCLE_FIX = ("load these tables without depends_on and add the foreign keys after the data: "
             "pt scaffold writes them into target-post-data.sql; or drop the depends_on that "
             "closes the cycle (here: the depends_on of store on staff)")


@pytest.mark.slow
def test_rows_waiting_for_each_other_are_named_as_one_cycle_with_the_fix(
        pg: Db, sqlite_db: Any, tmp_path: Path) -> None:
    _store_staff(sqlite_db("source"), pg, tmp_path)
    for name in ("store", "staff", "payment"):
        result = pt("migrate", "run", f"{name}.yaml", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    # The keys are checked at once, so the circle cannot be written together: all wait.
    assert pg.count("store") == pg.count("staff") == pg.count("payment") == 0
    assert pg.count("pulsaride_deferred") == 11
    code, counts = _validate(tmp_path, "counts", "store", "staff", "payment")
    assert code == 1
    assert [(r["status"], r["target_rows"], r["deferred"]) for r in counts["results"]] == [
        ("INCOMPLETE", 0, 2), ("INCOMPLETE", 0, 3), ("INCOMPLETE", 0, 6)]

    code, health = _health(tmp_path)
    assert (code, health["verdict"]) == (1, "NO-GO")
    assert {t["table"]: t["verdict"] for t in health["tables"]} == {
        "payment": "NO-GO", "staff": "NO-GO", "store": "NO-GO"}
    hints = health["hints"]
    cycles = [h for h in hints if h["hint"].startswith("cycle: ")]
    assert cycles == [{
        "table": "staff", "tables": ["staff", "store"],
        "hint": "cycle: staff → store → staff: 4 deferred row(s) wait for each other",
        "evidence": {"cycle": ["staff", "store", "staff"], "rows": 4,
                     "tables": ["staff", "store"]},
        "suggestion": CYCLE_FIX}]
    # 4 rows wait in two circles (store 1 <-> staff 1, store 2 <-> staff 2); staff 3 waits
    # for store 1, inside the cycle's tables. Not "resolve staff first" for store and "store
    # first" for staff: the cycle says it once; payments wait for staff rows that wait in it,
    # and are pointed at it.
    cascades = [(h["table"], h["suggestion"]) for h in hints if "cascade" in h["hint"]]
    assert cascades == [("payment", "resolve the cycle staff → store → staff first")]
    text = pt("health", "--transforms", str(tmp_path), cwd=tmp_path)
    assert f"hint: staff: cycle: staff → store → staff: 4 deferred row(s) wait for each " \
           f"other; {CYCLE_FIX}" in text.stdout.splitlines()

    # The fix: the foreign keys come after the data (as pt scaffold's post-data file adds
    # them). A copy made again writes the circle, and the keys then hold.
    pg.execute("ALTER TABLE store DROP CONSTRAINT store_manager",
               "ALTER TABLE staff DROP CONSTRAINT staff_store_id_fkey",
               "ALTER TABLE payment DROP CONSTRAINT payment_staff_id_fkey")
    again = pt("migrate", "run", "staff.yaml", "--force", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert (pg.count("store"), pg.count("staff"), pg.count("payment")) == (2, 3, 6)
    assert pg.count("pulsaride_deferred") == 0
    pg.execute("ALTER TABLE store ADD CONSTRAINT store_manager FOREIGN KEY (manager_staff_id) "
               "REFERENCES staff (staff_id)",
               "ALTER TABLE staff ADD FOREIGN KEY (store_id) REFERENCES store (store_id)",
               "ALTER TABLE payment ADD FOREIGN KEY (staff_id) REFERENCES staff (staff_id)")
    for command in ("counts", "hash"):
        code, document = _validate(tmp_path, command, "store", "staff", "payment")
        assert (code, document["status"]) == (0, "PASS"), document
    code, health = _health(tmp_path)
    assert (code, health["verdict"], health["hints"]) == (0, "GO", [])


def test_a_row_missing_a_skip_parent_is_skipped_even_while_another_parent_is_late(
        pg: Db, sqlite_db: Any, tmp_path: Path) -> None:
    source = sqlite_db("source")
    for db in (source, pg):
        create_table(db, "orders", [("id", "int")], primary_key=["id"])
        create_table(db, "products", [("id", "int")], primary_key=["id"])
        create_table(db, "items", [("id", "int"), ("order_id", "int"), ("product_id", "int")],
                     primary_key=["id"])
    source.insert("orders", [(1,), (2,)])
    source.insert("products", [(1,), (2,)])
    # Items 5 and 6 are of a product that never existed.
    source.insert("items", [(i, i % 2 + 1, 9 if i > 4 else i % 2 + 1) for i in range(1, 7)])
    urls = {"source_url": source.url, "target_url": pg.url}
    for name in ("orders", "products"):
        write_transform(tmp_path, {"name": name, **urls,
                                   "sources": [{"name": name, "table": name}]})
    write_transform(tmp_path, {
        "name": "items", **urls, "sources": [{"name": "items", "table": "items", "alias": "i"}],
        "depends_on": [{"table": "orders", "key": "id", "via": "i.order_id"},
                       {"table": "products", "key": "id", "via": "i.product_id",
                        "on_missing": "SKIP"}]})
    for name in ("products", "items", "orders"):  # the items before their orders
        assert pt("migrate", "run", f"{name}.yaml", cwd=tmp_path).returncode == 0
    assert pg.rows("SELECT id FROM items") == [(1,), (2,), (3,), (4,)]
    assert pg.count("pulsaride_deferred") == 0
    code, counts = _validate(tmp_path, "counts", "items")
    (result,) = counts["results"]
    assert (code, result["status"], result["deferred"], result["skipped"]) == (0, "PASS", 0, 2)
