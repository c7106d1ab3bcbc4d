"""A Sakila-like staff <-> store cycle of foreign keys in MariaDB, with a cycle between rows
too (store 1 is managed by staff 1, who works at store 1): scaffolded, the copies run in any
order (children first here), and post-data adds every key NOT VALID then VALIDATE, with its
actions, the indexes, and the identity restarts. A step that fails on the data (an orphan)
stops with one line; after the orphan is deleted a rerun finishes, and another is a no-op."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.migration.conftest import Db, pt
from tests.migration.scaffolding import (
    apply,
    copy,
    foreign_keys,
    indexes,
    load,
    post_data,
    pre_data,
    scaffold,
)

SAKILA = """
    CREATE TABLE address (
        address_id SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
        address VARCHAR(50) NOT NULL);
    CREATE TABLE store (
        store_id TINYINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
        manager_staff_id TINYINT UNSIGNED NOT NULL, address_id SMALLINT UNSIGNED NOT NULL,
        UNIQUE KEY idx_unique_manager (manager_staff_id), KEY idx_fk_address_id (address_id));
    CREATE TABLE staff (
        staff_id TINYINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
        first_name VARCHAR(45) NOT NULL, address_id SMALLINT UNSIGNED,
        store_id TINYINT UNSIGNED NOT NULL,
        KEY idx_fk_store_id (store_id), KEY idx_fk_address_id (address_id));
    ALTER TABLE store
        ADD CONSTRAINT fk_store_staff FOREIGN KEY (manager_staff_id) REFERENCES staff (staff_id)
            ON DELETE RESTRICT ON UPDATE CASCADE,
        ADD CONSTRAINT fk_store_address FOREIGN KEY (address_id) REFERENCES address (address_id)
            ON DELETE RESTRICT ON UPDATE CASCADE;
    ALTER TABLE staff
        ADD CONSTRAINT fk_staff_store FOREIGN KEY (store_id) REFERENCES store (store_id)
            ON DELETE RESTRICT ON UPDATE CASCADE,
        ADD CONSTRAINT fk_staff_address FOREIGN KEY (address_id) REFERENCES address (address_id)
            ON DELETE SET NULL ON UPDATE CASCADE
"""


def _source(maria: Db) -> None:
    maria.script(SAKILA)
    maria.insert("address", [(1, "47 MySakila Drive"), (2, "28 MySQL Boulevard")])
    # Rows refer to each other in a circle: only possible with the checks off, as
    # mysqldump loads Sakila. Staff 3 works at store 99, which does not exist (an orphan).
    maria.execute("SET FOREIGN_KEY_CHECKS = 0",
                  "INSERT INTO store VALUES (1, 1, 1), (2, 2, 2)",
                  "INSERT INTO staff VALUES (1, 'Mike', 1, 1), (2, 'Jon', 2, 2), "
                  "(3, 'Orphan', 1, 99)")


@pytest.mark.slow
def test_a_cycle_of_foreign_keys_needs_no_order_and_post_data_resumes(
        maria: Db, pg: Db, tmp_path: Path) -> None:
    _source(maria)
    folder = tmp_path / "sakila"
    out = scaffold(folder, maria, "--json", target=pg)
    summary = orjson.loads(out)
    assert summary["cycles"] == [["staff", "store"]]
    assert summary["flavour"] == "postgresql"
    jobs = load(folder / "pulsaride-pipeline.yml")["jobs"]
    assert jobs["migrate-store"]["needs"] == ["migrate-address"]
    assert jobs["migrate-staff"]["needs"] == ["migrate-address"]
    assert jobs["post-data"]["needs"] == ["migrate-address", "migrate-staff", "migrate-store"]
    valid = pt("pipeline", "validate", "pulsaride-pipeline.yml", cwd=folder)
    assert valid.returncode == 0, valid.stdout + valid.stderr

    pre_data(folder, pg)
    assert foreign_keys(pg) == {}
    for transform in ("staff.yaml", "store.yaml", "address.yaml"):  # children first
        assert copy(folder, transform, maria, pg)["status"] == "done"

    failed = apply(folder, pg, "--post-data", "target-post-data.sql")
    assert failed.returncode == 1
    lines = [line for line in failed.stderr.splitlines() if line.startswith("pt: error:")]
    assert len(lines) == 1
    assert lines[0].startswith("pt: error: target-post-data.sql: step ")
    assert ": ALTER TABLE staff VALIDATE CONSTRAINT fk_staff_store: insert or update on " \
           'table "staff" violates foreign key constraint "fk_staff_store"' in lines[0]

    pg.execute("DELETE FROM staff WHERE staff_id = 3")
    resumed = post_data(folder, pg)
    assert resumed["status"] == "ok" and resumed["skipped"] > 0 and resumed["ran"] > 0
    assert post_data(folder, pg)["ran"] == 0  # a rerun is a no-op

    assert foreign_keys(pg) == {
        "fk_store_staff": ("store", "staff", True, "r", "c"),
        "fk_store_address": ("store", "address", True, "r", "c"),
        "fk_staff_store": ("staff", "store", True, "r", "c"),
        "fk_staff_address": ("staff", "address", True, "n", "c")}
    assert {("store", "idx_unique_manager"), ("staff", "idx_fk_address_id"),
            ("staff", "idx_fk_store_id"), ("store", "idx_fk_address_id_2")} <= indexes(pg)
    assert pg.scalar("SELECT contype FROM pg_constraint WHERE conname = "
                     "'idx_unique_manager'") == "u"
    # Identities continue past the copied rows (and the source's counter: staff had 3).
    assert pg.scalar("INSERT INTO address (address) VALUES ('x') RETURNING address_id") == 3
    assert pg.scalar("INSERT INTO staff (first_name, address_id, store_id) VALUES "
                     "('New', 1, 1) RETURNING staff_id") == 4
    review = (folder / "objects-to-review.md").read_text()
    assert "'idx_fk_address_id' is 'idx_fk_address_id_2' in the target" in review
