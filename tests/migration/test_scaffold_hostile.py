"""Names and values from a source are data: a table called `v (id int); DROP TABLE victim;
CREATE TABLE w`, columns with quotes, semicolons, dollar quotes, spaces, unicode and more than
63 bytes, enum members and defaults that look like SQL — scaffolded, applied (both parts)
and copied in both identifier modes without running anything they spell; the sentinel table
survives and the pipeline validates."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.migration.conftest import Db, pt
from tests.migration.scaffolding import (
    column_types,
    copy,
    post_data,
    pre_data,
    scaffold,
    transforms,
)

EVIL = "v (id int); DROP TABLE victim; CREATE TABLE w"
LONG_A = "é" * 32  # 64 bytes: cut to 31 characters (62 bytes)
LONG_B = "é" * 31 + "ü"  # cut to the same 62 bytes: told apart with _2
PARENT = 'Pärent"; DROP TABLE victim; --'


def _source(maria: Db) -> None:
    q = maria.quote
    maria.execute(
        f"CREATE TABLE {q(PARENT)} (`id` INT PRIMARY KEY, `Näme` VARCHAR(20))",
        f"""CREATE TABLE {q(EVIL)} (
            `id` INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            `a"b` VARCHAR(40) DEFAULT 'x''); DROP TABLE victim; --',
            `it's; here` INT DEFAULT 7,
            `spaced name` ENUM('ok', '''); DROP TABLE victim; --', '$pt$') DEFAULT '$pt$',
            `{LONG_A}` INT, `{LONG_B}` INT,
            `up$pt$date` TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
                ON UPDATE CURRENT_TIMESTAMP,
            `parent; id` INT,
            KEY `idx; DROP TABLE victim` (`it's; here`),
            CONSTRAINT `fk"; DROP TABLE victim; --` FOREIGN KEY (`parent; id`)
                REFERENCES {q(PARENT)} (`id`) ON DELETE CASCADE,
            CONSTRAINT `ck; DROP TABLE victim` CHECK (`it's; here` >= 0))""")
    maria.insert(PARENT, [(1, "one")])
    maria.execute(f"INSERT INTO {q(EVIL)} (`a\"b`, `it's; here`, `spaced name`, `{LONG_A}`, "
                  f"`{LONG_B}`, `parent; id`) VALUES ('it''s; fine', 1, "
                  "'''); DROP TABLE victim; --', 1, 2, 1), (NULL, 2, '$pt$', NULL, NULL, NULL)")


@pytest.mark.slow
@pytest.mark.parametrize("identifiers", ["downcase", "keep"])
def test_hostile_names_scaffold_apply_and_copy_as_data(maria: Db, pg: Db, tmp_path: Path,
                                                       identifiers: str) -> None:
    _source(maria)
    pg.script("CREATE TABLE victim (id int); INSERT INTO victim VALUES (42)")
    folder = tmp_path / identifiers
    scaffold(folder, maria, "--identifiers", identifiers, target=pg)
    valid = pt("pipeline", "validate", "pulsaride-pipeline.yml", cwd=folder)
    assert valid.returncode == 0, valid.stdout + valid.stderr

    pre_data(folder, pg)
    pre_data(folder, pg)
    found = transforms(folder)
    evil = EVIL if identifiers == "keep" else EVIL.lower()
    parent = PARENT if identifiers == "keep" else PARENT.lower()
    assert set(found) == {evil, parent}
    for document in found.values():
        assert copy(folder, document["file"], maria, pg)["rows_written"] in (1, 2)
    assert post_data(folder, pg)["failed"] is None

    assert pg.rows("SELECT * FROM victim") == [(42,)]
    assert pg.scalar("SELECT to_regclass('w')") is None
    assert set(column_types(pg, evil, quoted=True)) == {
        "id", 'a"b', "it's; here", "spaced name", "é" * 31, "é" * 30 + "_2", "up$pt$date",
        "parent; id"}
    assert pg.rows(f'SELECT "a""b", "spaced name"::text FROM "{evil}"') == [
        (None, "$pt$"), ("it's; fine", "'); DROP TABLE victim; --")]
    assert pg.scalar("SELECT column_default FROM information_schema.columns WHERE "
                     "column_name = 'a\"b'") == \
        "'x''); DROP TABLE victim; --'::character varying"
    assert pg.scalar("SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND convalidated "
                     "AND conname = 'fk\"; drop table victim; --'"
                     if identifiers == "downcase" else
                     "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND convalidated "
                     "AND conname = 'fk\"; DROP TABLE victim; --'") == 1
    # The ON UPDATE trigger, with a dollar quote in the column's name, works.
    pg.execute(f'UPDATE "{evil}" SET "it\'s; here" = 5 WHERE id = 1')
    assert pg.scalar(f'SELECT "up$pt$date" > now() - interval \'1 minute\' FROM "{evil}" '
                     "WHERE id = 1") is True
    assert pg.rows("SELECT * FROM victim") == [(42,)]
