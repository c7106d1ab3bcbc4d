"""DeferralEngine (`depends_on:`): tables copied in any order — parent first, child first, or both
at once — end with the same target; parent keys are looked up once per batch; orphans go where
`on_missing` says; a table that refers to itself ends complete; `pt migrate deferred` shows
what waits."""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError

from pulsaride.migration import deferral
from pulsaride.migration.deferral import Parked
from pulsaride.migration.migrate import MigrateRequest, migrate
from pulsaride.migration.tables import ensure_tables
from pulsaride.migration.transform import load_transform
from tests.migration.conftest import (
    Db,
    clean_env,
    create_table,
    migrate_cmd,
    parent_child_source,
    parent_child_target,
    parent_child_transforms,
    pt,
    pt_migrate,
    summary,
    wait_for,
    write_transform,
)

PARENTS, CHILDREN, ORPHANS = 120, 400, (9001, 9002, 9001)


def _source(db: Db) -> None:
    parent_child_source(db, PARENTS, CHILDREN, ORPHANS)
    # Children without a parent at all (NULL) never wait.
    db.insert("children", [(5000, None, "no parent"), (5001, None, "no parent either")])


def _expected_children(source: Db) -> list[tuple[Any, ...]]:
    return source.rows("SELECT * FROM children WHERE parent_id IS NULL OR parent_id <= :n",
                       n=PARENTS)


def _check_complete(source: Db, target: Db) -> None:
    """The target holds every source row except the true orphans, which wait."""
    assert target.rows("SELECT * FROM parents") == source.rows("SELECT * FROM parents")
    assert target.rows("SELECT * FROM children") == _expected_children(source)
    waiting = target.rows("SELECT target_table, blocking_table, blocking_key, key_value "
                          "FROM pulsaride_deferred")
    assert waiting == [("children", "parents", "id", "9001"), ("children", "parents", "id",
                                                               "9001"),
                       ("children", "parents", "id", "9002")]
    registry = {r["transform"]: r for r in (target.registry("parents"),
                                            target.registry("children")) if r}
    assert registry["parents"]["status"] == "DONE"
    assert registry["children"]["status"] == "DONE"
    assert (registry["parents"]["rows_read"], registry["parents"]["rows_written"]) == (
        PARENTS, PARENTS)
    child = registry["children"]
    total = CHILDREN + len(ORPHANS) + 2
    assert (child["rows_read"], child["rows_written"], child["rows_deferred"],
            child["rows_rejected"], child["rows_skipped"]) == (total, total - 3, 3, 0, 0)


@pytest.fixture(params=["postgresql", "sqlite"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    if request.param == "sqlite":
        db = Db("sqlite", f"sqlite:///{tmp_path / 'target.db'}")
        yield db
        db.dispose()
        return
    from tests.migration.conftest import new_pg_database  # noqa: PLC0415

    db, drop = new_pg_database()
    try:
        yield db
    finally:
        drop()


# ---- every order -------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["parent-first", "child-first"])
def test_tables_in_either_order_end_with_the_same_target(order: str, target: Db,
                                                         sqlite_db: Callable[[str], Db],
                                                         tmp_path: Path) -> None:
    source = sqlite_db("source")
    _source(source)
    parent_child_target(target)
    parent, child = parent_child_transforms(tmp_path, batch_size=50)
    first, second = (parent, child) if order == "parent-first" else (child, parent)
    one = summary(pt_migrate(first, source, target, "--json"))
    two = summary(pt_migrate(second, source, target, "--json"))
    if order == "child-first":
        # Every child waited (no parent yet); the parents' run wrote them as it went.
        assert (one["rows_written"], one["rows_deferred"]) == (2, CHILDREN + len(ORPHANS))
        assert two["deferred_rows_replayed"] == CHILDREN
    else:
        assert (two["rows_written"], two["rows_deferred"]) == (CHILDREN + 2, len(ORPHANS))
    _check_complete(source, target)


def test_tables_in_parallel_end_with_the_same_target(target: Db, sqlite_db: Callable[[str], Db],
                                                     tmp_path: Path) -> None:
    source = sqlite_db("source")
    _source(source)
    parent_child_target(target)
    # Small batches so the two copies interleave, batch by batch.
    parent, child = parent_child_transforms(tmp_path, batch_size=10)
    processes = [subprocess.Popen(migrate_cmd(path, source, target, "--json"), cwd=tmp_path,
                                  env=clean_env(), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
                 for path in (child, parent)]
    for process in processes:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    _check_complete(source, target)


# ---- one lookup per batch ----------------------------------------------------------------------


@contextmanager
def statements() -> Iterator[list[str]]:
    """Every SQL statement any SQLAlchemy engine executes meanwhile (in this process)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def _lookups(seen: list[str], table: str) -> list[str]:
    pattern = re.compile(rf"^SELECT {table}\.id\s+FROM {table}\s+WHERE {table}\.id IN",
                         re.IGNORECASE)
    return [s for s in seen if pattern.match(s.strip())]


def test_parent_keys_are_looked_up_once_per_batch_not_per_row(pg: Db, sqlite_db: Callable[
        [str], Db], tmp_path: Path) -> None:
    source = sqlite_db("source")
    _source(source)
    # A second dependency: each batch looks up each parent table once.
    create_table(source, "owners", [("id", "int")], primary_key=["id"])
    source.insert("owners", [(i,) for i in range(1, 11)])
    source.execute("ALTER TABLE children ADD COLUMN owner_id INTEGER",
                   "UPDATE children SET owner_id = (id % 10) + 1")
    parent_child_target(pg)
    create_table(pg, "owners", [("id", "int")], primary_key=["id"])
    pg.execute("ALTER TABLE children ADD COLUMN owner_id integer")
    parent, _ = parent_child_transforms(tmp_path)
    owners = write_transform(tmp_path, {"name": "owners", "sources": [
        {"name": "owners", "table": "owners"}], "target_table": "owners"})
    child = write_transform(tmp_path, {
        "name": "children", "sources": [{"name": "children", "table": "children",
                                         "alias": "c"}],
        "target_table": "children",
        "depends_on": [{"table": "parents", "key": "id", "via": "c.parent_id"},
                       {"table": "owners", "key": "id", "via": "c.owner_id"}]})
    for path in (parent, owners):
        migrate(MigrateRequest(load_transform(path), source.url, pg.url))
    rows = CHILDREN + len(ORPHANS) + 2
    batch_size = 50
    batches = -(-rows // batch_size)
    with statements() as seen:
        progress = migrate(MigrateRequest(load_transform(child), source.url, pg.url,
                                          batch_size=batch_size))
    assert progress.read == rows
    # One query per parent table per batch, plus one each when the run ends and re-checks
    # its 3 parked orphans (all at once) — never one per row.
    # Each lookup asks for the batch's distinct keys at once: 50 children of 50 parents, of
    # 10 owners.
    for parent_table, distinct in (("parents", batch_size), ("owners", 10)):
        lookups = _lookups(seen, parent_table)
        assert len(lookups) == batches + 1, parent_table
        assert [s.count("%(") for s in lookups[:-2]] == [distinct] * (batches - 1)
    assert _lookups(seen, "parents")[-1].count("%(") == 2  # the orphans' keys: 9001, 9002
    # Nothing else reads the parent tables row by row either.
    assert sum("parents" in s for s in seen) <= 2 * batches + 2
    assert pg.count("children") == rows - len(ORPHANS)


# ---- orphans under each on_missing -------------------------------------------------------------


def _orphan_setup(source: Db, target: Db, tmp_path: Path, on_missing: str) -> Path:
    parent_child_source(source, 20, 60, ORPHANS)
    parent_child_target(target)
    parent, child = parent_child_transforms(tmp_path, on_missing=on_missing)
    migrate(MigrateRequest(load_transform(parent), source.url, target.url))
    return child


def test_defer_parks_orphans_with_their_payload(pg: Db, sqlite_db: Callable[[str], Db],
                                                tmp_path: Path) -> None:
    source = sqlite_db("source")
    child = _orphan_setup(source, pg, tmp_path, "DEFER")
    result = summary(pt_migrate(child, source, pg, "--json"))
    assert (result["rows_read"], result["rows_written"], result["rows_deferred"]) == (63, 60, 3)
    assert pg.count("children") == 60
    parked = pg.rows("SELECT transform, target_table, blocking_table, blocking_key, key_value, "
                     "payload, requirements, attempts, deferred_at IS NOT NULL "
                     "FROM pulsaride_deferred")
    assert [(p[:5], orjson.loads(p[5]), orjson.loads(p[6]), p[8]) for p in parked] == [
        (("children", "children", "parents", "id", "9001"),
         {"id": 61, "parent_id": 9001, "label": "orphan of 9001"}, [["parents", "id", 9001]],
         True),
        (("children", "children", "parents", "id", "9001"),
         {"id": 63, "parent_id": 9001, "label": "orphan of 9001"}, [["parents", "id", 9001]],
         True),
        (("children", "children", "parents", "id", "9002"),
         {"id": 62, "parent_id": 9002, "label": "orphan of 9002"}, [["parents", "id", 9002]],
         True)]
    assert pg.count("pulsaride_dlq") == 0
    assert pg.registry("children")["rows_deferred"] == 3  # type: ignore[index]

    # The parents arrive later (a second source table, say): the orphans are written.
    pg.execute("INSERT INTO parents VALUES (9001, 'late'), (9002, 'later')")
    again = pt("migrate", "run", str(child), "--source-url", source.url, "--target-url",
               pg.url, "--force", "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert pg.count("children") == 63
    assert pg.count("pulsaride_deferred") == 0


def test_fail_sends_orphans_to_the_dead_letter_queue(pg: Db, sqlite_db: Callable[[str], Db],
                                                     tmp_path: Path) -> None:
    source = sqlite_db("source")
    child = _orphan_setup(source, pg, tmp_path, "FAIL")
    result = summary(pt_migrate(child, source, pg, "--json"))
    assert (result["rows_read"], result["rows_written"], result["rows_rejected"],
            result["rows_deferred"]) == (63, 60, 3, 0)
    letters = pg.rows("SELECT transform, target_table, reason, detail, row_key, payload "
                      "FROM pulsaride_dlq")
    assert [(*letter[:4], orjson.loads(letter[4]), orjson.loads(letter[5]))
            for letter in letters] == [
        ("children", "children", "FK_MISSING",
         "no parents.id = 9001 in the target (foreign key)", {"key": [61]},
         {"c.id": 61, "c.parent_id": 9001, "c.label": "orphan of 9001"}),
        ("children", "children", "FK_MISSING",
         "no parents.id = 9001 in the target (foreign key)", {"key": [63]},
         {"c.id": 63, "c.parent_id": 9001, "c.label": "orphan of 9001"}),
        ("children", "children", "FK_MISSING",
         "no parents.id = 9002 in the target (foreign key)", {"key": [62]},
         {"c.id": 62, "c.parent_id": 9002, "c.label": "orphan of 9002"})]
    assert pg.count("pulsaride_deferred") == 0
    entry = pg.registry("children")
    assert entry is not None
    assert (entry["status"], entry["rows_rejected"], entry["rows_written"]) == ("DONE", 3, 60)


def test_skip_counts_orphans_and_drops_them(pg: Db, sqlite_db: Callable[[str], Db],
                                            tmp_path: Path) -> None:
    source = sqlite_db("source")
    child = _orphan_setup(source, pg, tmp_path, "SKIP")
    result = summary(pt_migrate(child, source, pg, "--json"))
    assert (result["rows_read"], result["rows_written"], result["rows_skipped"]) == (63, 60, 3)
    assert pg.count("children") == 60
    assert pg.count("pulsaride_deferred") == 0
    assert pg.count("pulsaride_dlq") == 0
    entry = pg.registry("children")
    assert entry is not None
    assert (entry["status"], entry["rows_read"], entry["rows_written"], entry["rows_skipped"],
            entry["rows_deferred"], entry["rows_rejected"]) == ("DONE", 63, 60, 3, 0, 0)


# ---- a table that refers to itself -------------------------------------------------------------


def _self_referencing(db: Db, count: int) -> None:
    create_table(db, "NODES", [("ID", "int"), ("PARENT_ID", "int"), ("NAME", "text")],
                 primary_key=["ID"], foreign_keys=[("PARENT_ID", "NODES", "ID")])
    # Parents come LATER in key order than their children: i -> i + 7 (and i -> i + 1 for
    # some), so rows wait across batches and inside one; the top rows have no parent.
    rows = [(i, None if i > count - 7 else (i + 1 if i % 5 == 0 else i + 7), f"node {i}")
            for i in range(1, count + 1)]
    db.execute("PRAGMA foreign_keys = OFF") if db.kind == "sqlite" else None
    db.insert("NODES", rows)


@pytest.mark.parametrize("batch_size", [10, 1000])
def test_a_self_referencing_table_ends_complete(batch_size: int, target: Db,
                                                sqlite_db: Callable[[str], Db],
                                                tmp_path: Path) -> None:
    if batch_size == 1000 and target.kind == "postgresql":
        pytest.skip("one batch: only a target checking keys row by row (SQLite) cares")
    source = sqlite_db("source")
    _self_referencing(source, 150)
    create_table(target, "nodes", [("id", "int"), ("parent_id", "int"), ("name", "text")],
                 primary_key=["id"], foreign_keys=[("parent_id", "nodes", "id")])
    path = write_transform(tmp_path, {
        "name": "nodes", "sources": [{"name": "nodes", "table": "NODES", "alias": "n"}],
        "depends_on": [{"table": "nodes", "key": "id", "via": "n.PARENT_ID"}]})
    result = summary(pt_migrate(path, source, target, "--json", "--batch-size",
                                str(batch_size)))
    assert result["rows_read"] == 150
    assert result["rows_written"] == 150
    assert result["rows_deferred"] == 0
    assert target.rows("SELECT * FROM nodes") == source.rows('SELECT * FROM "NODES"')
    assert target.count("pulsaride_deferred") == 0
    entry = target.registry("nodes")
    assert entry is not None
    assert (entry["rows_written"], entry["rows_deferred"]) == (150, 0)


# ---- pt migrate deferred -----------------------------------------------------------------------


def test_pt_migrate_deferred_shows_what_waits_and_on_which_keys(
        pg: Db, sqlite_db: Callable[[str], Db], tmp_path: Path) -> None:
    source = sqlite_db("source")
    parent_child_source(source, 5, 20, orphans=[100 + i for i in range(12)])
    create_table(source, "notes", [("id", "int"), ("child_id", "int")], primary_key=["id"])
    source.insert("notes", [(1, 999), (2, 1)])
    parent_child_target(pg)
    create_table(pg, "notes", [("id", "int"), ("child_id", "int")], primary_key=["id"])
    _, child = parent_child_transforms(tmp_path)
    notes = write_transform(tmp_path, {
        "name": "notes", "sources": [{"name": "notes", "table": "notes", "alias": "n"}],
        "depends_on": [{"table": "children", "key": "id", "via": "n.child_id"}]})
    assert pt("migrate", "deferred", "--target-url", pg.url, cwd=tmp_path).stdout == \
        "no deferred rows\n"
    for path in (child, notes):  # no parents at all yet: every child waits
        migrate(MigrateRequest(load_transform(path), source.url, pg.url))

    shown = pt("migrate", "deferred", "--target-url", pg.url, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == [
        "children: 32 row(s) wait for parents.id in (1, 100, 101, 102, 103, 104, 105, 106, "
        "107, 108, ...)",
        "notes: 2 row(s) wait for children.id in (1, 999)"]

    only = pt("migrate", "deferred", "--table", "notes", "--json", cwd=tmp_path,
              env={"PT_TARGET_URL": pg.url})
    assert only.returncode == 0, only.stderr
    assert orjson.loads(only.stdout) == {"schema": "pulsaride.deferred/1", "groups": [
        {"target_table": "notes", "target": {"schema": None, "name": "notes"},
         "blocking_table": "children", "blocking": {"schema": None, "name": "children"},
         "blocking_key": "id", "rows": 2, "sample_keys": ["1", "999"]}]}

    # The parents arrive: children and then the note of child 1 follow; the rest waits.
    parent, _ = parent_child_transforms(tmp_path)
    migrate(MigrateRequest(load_transform(parent), source.url, pg.url))
    after = pt("migrate", "deferred", "--json", cwd=tmp_path, env={"PT_TARGET_URL": pg.url})
    groups = [{k: v for k, v in g.items() if k not in ("target", "blocking")}
              for g in orjson.loads(after.stdout)["groups"]]
    assert groups == [
        {"target_table": "children", "blocking_table": "parents", "blocking_key": "id",
         "rows": 12, "sample_keys": [str(100 + i) for i in range(10)]},
        {"target_table": "notes", "blocking_table": "children", "blocking_key": "id",
         "rows": 1, "sample_keys": ["999"]}]
    assert pg.rows("SELECT * FROM notes") == [(2, 1)]


# ---- replay: chains across tables, and rows behind many that stay blocked ---------------------


def _chain_transform(folder: Path, name: str, parent: str | None) -> Path:
    document: dict[str, Any] = {"name": name, "sources": [{"name": name, "table": name,
                                                            "alias": "t"}]}
    if parent:
        document["depends_on"] = [{"table": parent, "key": "id", "via": "t.parent_id"}]
    return write_transform(folder, document)


def test_a_chain_of_waiting_rows_across_tables_is_replayed_to_its_end(
        sqlite_db: Callable[[str], Db], tmp_path: Path) -> None:
    source, target = sqlite_db("source"), sqlite_db("target")
    chain = [("a", "b"), ("b", "c"), ("c", None)]  # a waits for b, which waits for c
    for db in (source, target):
        for name, parent in chain:
            create_table(db, name, [("id", "int"), ("parent_id", "int")], primary_key=["id"],
                         foreign_keys=[("parent_id", parent, "id")] if parent else [])
    for name, _ in chain:
        source.insert(name, [(i, i) for i in range(1, 6)])
    # Children first: a's rows wait for b, then b's rows wait for c; c's copy writes its
    # rows, which lets b's go, which lets a's go.
    for name, parent in chain:
        migrate(MigrateRequest(load_transform(_chain_transform(tmp_path, name, parent)),
                               source.url, target.url))
    for name, _ in chain:
        assert target.count(name) == 5, name
    assert target.count("pulsaride_deferred") == 0
    assert target.rows("SELECT transform, rows_written, rows_deferred FROM "
                       "pulsaride_run_registry") == [("a", 5, 0), ("b", 5, 0), ("c", 5, 0)]


def test_rows_behind_many_blocked_rows_are_replayed(sqlite_db: Callable[[str], Db],
                                                    tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from pulsaride.migration import deferral  # noqa: PLC0415

    monkeypatch.setattr(deferral, "REPLAY_BATCH", 20)  # pages of 20 instead of 5000
    source, target = sqlite_db("source"), sqlite_db("target")
    # 70 true orphans park first (lowest ids), then 30 children of parents that will come.
    parent_child_source(source, 10, 0, orphans=[1000 + i for i in range(70)])
    source.insert("children", [(100 + i, (i % 10) + 1, f"child {i}") for i in range(30)])
    parent_child_target(target)
    parent, child = parent_child_transforms(tmp_path)
    for path in (child, parent):
        migrate(MigrateRequest(load_transform(path), source.url, target.url))
    assert target.count("children") == 30
    assert target.count("pulsaride_deferred") == 70


# ---- two jobs at the same moment ---------------------------------------------------------------


def test_a_parent_written_while_its_child_is_being_parked_still_releases_the_child(
        pg: Db) -> None:
    """One job parks a child in a transaction not yet committed, while another job writes the
    child's parent and replays what waits on it. That replay cannot see the uncommitted child,
    and the parking job checked for the parent before it was committed: unless replays take
    turns, neither writes the child and it waits forever (seen with a row-level cycle between
    two tables copied in parallel)."""
    parent_child_target(pg)
    ensure_tables(pg.engine)
    child = Parked(payload={"id": 1, "parent_id": 7, "label": "waits"},
                   requirements=[("parents", "id", 7)], blocking=("parents", "id", 7),
                   source_row=(1, 7, "waits"))
    released: list[deferral.Replayed] = []

    def write_the_parent() -> None:
        with pg.engine.begin() as connection:
            connection.execute(text("INSERT INTO parents VALUES (7, 'seven')"))
            released.append(deferral.replay(connection, blocking_table="parents"))

    with pg.engine.connect() as parking:
        transaction = parking.begin()
        deferral.park(parking, "children", "children", [child])
        deferral.replay(parking, blocking_table="children")  # as after each batch
        writer = threading.Thread(target=write_the_parent)
        writer.start()
        # The writer's replay has either run (it must not have, without seeing the child)
        # or is waiting for the parking job's turn to end.
        wait_for(lambda: not writer.is_alive() or _waiting_for_an_advisory_lock(pg),
                 what="the writer's replay to run or wait")
        transaction.commit()
    writer.join(timeout=60)
    assert not writer.is_alive()
    assert pg.rows("SELECT * FROM children") == [(1, 7, "waits")]
    assert pg.rows("SELECT count(*) FROM pulsaride_deferred") == [(0,)]
    assert released[0].written == {"children": 1}


def _waiting_for_an_advisory_lock(db: Db) -> bool:
    return bool(db.rows("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                        "AND NOT granted")[0][0])


# ---- rows that wait for each other in a circle -------------------------------------------------


def _store_staff_source(db: Db) -> None:
    """The DVD-rental cycle: a store's manager works at a store; store 1's manager works at
    store 1 (a row-level circle), store 2's manager at store 1; staff 9 points at a store
    that does not exist anywhere (a true orphan); staff 5 is their own supervisor."""
    create_table(db, "store", [("store_id", "int"), ("manager_staff_id", "int")],
                 primary_key=["store_id"])
    create_table(db, "staff", [("staff_id", "int"), ("store_id", "int"), ("boss_id", "int")],
                 primary_key=["staff_id"])
    db.insert("store", [(1, 1), (2, 2)])
    db.insert("staff", [(1, 1, None), (2, 1, 1), (5, 2, 5), (9, 77, None)])


def _store_staff_transforms(folder: Path) -> tuple[Path, Path]:
    store = write_transform(folder, {
        "name": "store", "sources": [{"name": "store", "table": "store", "alias": "s"}],
        "target_table": "store", "options": {"identifiers": "keep"},
        "depends_on": [{"table": "staff", "key": "staff_id", "via": "s.manager_staff_id"}]})
    staff = write_transform(folder, {
        "name": "staff", "sources": [{"name": "staff", "table": "staff", "alias": "t"}],
        "target_table": "staff", "options": {"identifiers": "keep"},
        "depends_on": [{"table": "store", "key": "store_id", "via": "t.store_id"},
                       {"table": "staff", "key": "staff_id", "via": "t.boss_id"}]})
    return store, staff


@pytest.mark.parametrize("keys", ["none", "deferrable"])
def test_rows_waiting_for_each_other_in_a_circle_are_written_together(
        keys: str, pg: Db, sqlite_db: Callable[[str], Db], tmp_path: Path) -> None:
    source = sqlite_db("source")
    _store_staff_source(source)
    create_table(pg, "store", [("store_id", "int"), ("manager_staff_id", "int")],
                 primary_key=["store_id"])
    create_table(pg, "staff", [("staff_id", "int"), ("store_id", "int"), ("boss_id", "int")],
                 primary_key=["staff_id"])
    if keys == "deferrable":
        pg.execute("ALTER TABLE store ADD FOREIGN KEY (manager_staff_id) REFERENCES staff "
                   "DEFERRABLE INITIALLY DEFERRED",
                   "ALTER TABLE staff ADD FOREIGN KEY (store_id) REFERENCES store "
                   "DEFERRABLE INITIALLY DEFERRED")
    store, staff = _store_staff_transforms(tmp_path)
    first = summary(pt_migrate(store, source, pg, "--json"))
    assert (first["rows_written"], first["rows_deferred"]) == (0, 2)  # both wait for staff
    second = summary(pt_migrate(staff, source, pg, "--json"))
    # Staff 1 and store 1 wait for each other, staff 5 for itself, store 2 for staff 2, who
    # waits for store 1: all written together at the end of the second copy.
    assert second["rows_written"] == 3
    assert pg.rows("SELECT * FROM store") == [(1, 1), (2, 2)]
    assert pg.rows("SELECT * FROM staff") == [(1, 1, None), (2, 1, 1), (5, 2, 5)]
    # Only the true orphan still waits.
    assert pg.rows("SELECT target_table, blocking_table, key_value FROM pulsaride_deferred") \
        == [("staff", "store", "77")]
    registry = {name: pg.registry(name) for name in ("store", "staff")}
    assert {n: (e["rows_written"], e["rows_deferred"]) for n, e in registry.items()
            if e is not None} == {"store": (2, 0), "staff": (3, 1)}


def test_a_circle_a_target_cannot_take_stays_parked_without_failing_the_copy(
        pg: Db, sqlite_db: Callable[[str], Db], tmp_path: Path) -> None:
    source = sqlite_db("source")
    _store_staff_source(source)
    create_table(pg, "store", [("store_id", "int"), ("manager_staff_id", "int")],
                 primary_key=["store_id"])
    create_table(pg, "staff", [("staff_id", "int"), ("store_id", "int"), ("boss_id", "int")],
                 primary_key=["staff_id"], foreign_keys=[("store_id", "store", "store_id")])
    pg.execute("ALTER TABLE store ADD FOREIGN KEY (manager_staff_id) REFERENCES staff")
    store, staff = _store_staff_transforms(tmp_path)
    summary(pt_migrate(store, source, pg, "--json"))
    result = summary(pt_migrate(staff, source, pg, "--json"))
    assert result["status"] == "done"
    assert pg.count("store") == 0 and pg.count("staff") == 0
    assert pg.count("pulsaride_deferred") == 6


def test_rows_that_only_hang_on_a_circle_are_written_after_it(
        pg: Db, sqlite_db: Callable[[str], Db], tmp_path: Path) -> None:
    # Payments wait for staff, who wait in a circle with stores; the payments' key to staff
    # is checked row by row: released together, payments must come after the circle.
    source = sqlite_db("source")
    _store_staff_source(source)
    create_table(source, "payment", [("payment_id", "int"), ("staff_id", "int")],
                 primary_key=["payment_id"])
    source.insert("payment", [(10, 1), (11, 2)])
    create_table(pg, "store", [("store_id", "int"), ("manager_staff_id", "int")],
                 primary_key=["store_id"])
    create_table(pg, "staff", [("staff_id", "int"), ("store_id", "int"), ("boss_id", "int")],
                 primary_key=["staff_id"])
    create_table(pg, "payment", [("payment_id", "int"), ("staff_id", "int")],
                 primary_key=["payment_id"], foreign_keys=[("staff_id", "staff", "staff_id")])
    store, staff = _store_staff_transforms(tmp_path)
    payment = write_transform(tmp_path, {
        "name": "payment", "sources": [{"name": "payment", "table": "payment", "alias": "p"}],
        "target_table": "payment", "options": {"identifiers": "keep"},
        "depends_on": [{"table": "staff", "key": "staff_id", "via": "p.staff_id"}]})
    for path in (payment, store, staff):
        summary(pt_migrate(path, source, pg, "--json"))
    assert pg.rows("SELECT * FROM payment") == [(10, 1), (11, 2)]
    assert pg.count("staff") == 3


def test_on_sqlite_a_replay_waits_for_the_one_before_it_to_commit(tmp_path: Path) -> None:
    """Found by a parallel copy into SQLite (`UNIQUE constraint failed`): the Python driver
    begins a transaction only at the first write, so two replays could both read a waiting
    row. `take_turn` takes SQLite's write lock at once: a second replay cannot start reading
    until the first commits."""
    url = f"sqlite:///{tmp_path / 'target.db'}"
    first = create_engine(url)
    second = create_engine(url, connect_args={"timeout": 0.2})
    ensure_tables(first)
    try:
        with first.connect() as holder:
            with holder.begin():
                deferral.take_turn(holder)
                with second.connect() as other, pytest.raises(OperationalError, match="locked"), \
                        other.begin():
                    deferral.take_turn(other)
            with second.connect() as other, other.begin():
                deferral.take_turn(other)  # the turn is free once the first committed
    finally:
        first.dispose()
        second.dispose()
