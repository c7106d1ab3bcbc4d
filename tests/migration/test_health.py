"""`pt health`: GO / CAUTION / NO-GO per table and overall, each with the reasons of the rules
in migration/verdict.py, root-cause hints with their evidence, `--require`, and `--pipeline`.

One SQLite source and one PostgreSQL target hold a table in each situation (built once for the
module; health only reads). Folders of transform files choose which tables `pt health` sees:

  good          copied; counts, sample and hash PASS                          GO
  seq           serial id behind the migrated rows                            CAUTION
  fmt           the latest sample failed only on '' vs NULL                   CAUTION
  stale         counts and hash validated before the copy was run again       CAUTION
  unchecked     copied, never validated                                       CAUTION
  rejects       2 rows rejected to the DLQ: counts and hash INCOMPLETE        NO-GO
  kids          rows wait for parents missing from the source too (orphans)   NO-GO
  grand         rows wait for kids that wait themselves (a cascade)           NO-GO
  late_kids     rows wait because their parent table was never migrated       NO-GO
  miscounted    the latest counts FAILED (a row deleted)                      NO-GO
  never         no copy at all                                                NO-GO
  (ppl, late_ppl: the parents of kids and late_kids)
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from pulsaride.migration.migrate import MigrateRequest, migrate
from pulsaride.migration.transform import load_transform
from tests.migration.conftest import Db, create_table, new_pg_database, pt, write_transform
from tests.migration.test_validate import in_process


@dataclass
class World:
    source: Db
    target: Db
    folder: Path  # every transform file

    def subset(self, name: str, *transforms: str) -> Path:
        """A folder holding only these transform files."""
        folder = self.folder / name
        folder.mkdir(exist_ok=True)
        for transform in transforms:
            shutil.copy(self.folder / f"{transform}.yaml", folder / f"{transform}.yaml")
        return folder


def _simple(db: Db, name: str, rows: int, serial: bool = False) -> None:
    key = "id serial PRIMARY KEY" if serial else "id integer PRIMARY KEY"
    db.execute(f"CREATE TABLE {name} ({key}, name text)")


def _build(source: Db, target: Db, folder: Path) -> None:  # noqa: PLR0915 - one table each
    urls = {"source_url": source.url, "target_url": target.url}

    def transform(name: str, **extra: Any) -> None:
        table = extra.pop("table", name)
        write_transform(folder, {"name": name, **urls,
                                 "sources": [{"name": table, "table": table, "alias": "s"}],
                                 "target_table": name, **extra})

    def copy(name: str, force: bool = False) -> None:
        migrate(MigrateRequest(load_transform(folder / f"{name}.yaml"), force=force))

    def check(command: str, name: str, *args: str) -> None:
        in_process(folder, command, "--table", name, *args)

    create_table(source, "items", [("id", "int"), ("name", "text")], primary_key=["id"])
    source.insert("items", [(i, "" if i in (2, 4) else f"item {i}") for i in range(1, 9)])
    for name in ("good", "seq", "fmt", "stale", "unchecked", "miscounted", "never"):
        _simple(target, name, 8, serial=name == "seq")
        transform(name, table="items")
    for name in ("good", "seq", "fmt", "stale", "unchecked", "miscounted"):
        copy(name)
    for name in ("good", "seq"):
        check("counts", name)
        check("hash", name)
    check("sample", "good", "--sample", "1.0")
    # fmt: the target lost the source's '' (NULL instead); counts still PASS.
    target.execute("UPDATE fmt SET name = NULL WHERE name = ''")
    check("counts", "fmt")
    check("sample", "fmt", "--sample", "1.0")
    check("counts", "stale")
    check("hash", "stale")
    copy("stale", force=True)
    target.execute("DELETE FROM miscounted WHERE id = 3")
    check("counts", "miscounted")

    # rejects: two rows whose value is not a number, FAIL_ROW.
    target.execute("CREATE TABLE rejects (id integer PRIMARY KEY, name integer)")
    source.execute("CREATE TABLE numbers (id INTEGER PRIMARY KEY, name TEXT)")
    source.insert("numbers", [(i, "x" if i in (3, 5) else str(i)) for i in range(1, 9)])
    transform("rejects", table="numbers", reject_policy="FAIL_ROW",
              fields=[{"name": "id", "source": "s.id"},
                      {"name": "name", "source": "s.name", "expression": "to_int(?)"}])
    copy("rejects")
    check("counts", "rejects")
    check("hash", "rejects")

    # ppl <- kids <- grand: kids 4 and 5 point at parents 98 and 99, missing from the source;
    # grand 1 points at kid 4, which waits itself.
    create_table(source, "ppl", [("id", "int"), ("name", "text")], primary_key=["id"])
    source.insert("ppl", [(i, f"p{i}") for i in range(1, 4)])
    create_table(source, "kids", [("id", "int"), ("ppl_id", "int")], primary_key=["id"])
    source.insert("kids", [(1, 1), (2, 2), (3, 3), (4, 98), (5, 99)])
    create_table(source, "grand", [("id", "int"), ("kid_id", "int")], primary_key=["id"])
    source.insert("grand", [(1, 4), (2, 1)])
    target.execute("CREATE TABLE ppl (id integer PRIMARY KEY, name text)",
                   "CREATE TABLE kids (id integer PRIMARY KEY, ppl_id integer)",
                   "CREATE TABLE grand (id integer PRIMARY KEY, kid_id integer)")
    transform("ppl")
    transform("kids", depends_on=[{"table": "ppl", "key": "id", "via": "s.ppl_id"}])
    transform("grand", depends_on=[{"table": "kids", "key": "id", "via": "s.kid_id"}])
    for name in ("ppl", "kids", "grand"):
        copy(name)
        check("counts", name)
        check("hash", name)

    # late_ppl is never migrated: late_kids wait for it.
    create_table(source, "late_ppl", [("id", "int")], primary_key=["id"])
    source.insert("late_ppl", [(1,), (2,)])
    create_table(source, "late_kids", [("id", "int"), ("ppl_id", "int")], primary_key=["id"])
    source.insert("late_kids", [(1, 1), (2, 2), (3, 2)])
    target.execute("CREATE TABLE late_ppl (id integer PRIMARY KEY)",
                   "CREATE TABLE late_kids (id integer PRIMARY KEY, ppl_id integer)")
    transform("late_ppl")
    transform("late_kids", depends_on=[{"table": "late_ppl", "key": "id", "via": "s.ppl_id"}])
    copy("late_kids")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("health")
    target, drop = new_pg_database()
    source = Db("sqlite", f"sqlite:///{folder / 'source.db'}")
    try:
        _build(source, target, folder)
        yield World(source, target, folder)
    finally:
        source.dispose()
        drop()


def health(folder: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = pt("health", "--transforms", str(folder), "--json", *args, cwd=folder)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, orjson.loads(result.stdout)


def _incomplete(kind: str, rows: int, why: str) -> str:
    """The reason health gives for an INCOMPLETE validation."""
    return f"NO-GO: the latest {kind} validation is INCOMPLETE: {rows} source row(s) are not " \
           f"in the target: {rows} {why}"


WAIT = "wait in pulsaride_deferred (pt migrate deferred)"


def test_every_table_gets_its_verdict_with_the_reasons_and_hints(world: World) -> None:
    code, document = health(world.folder, "--source-url", world.source.url,
                            "--require", "CAUTION")
    assert code == 1  # NO-GO is worse than CAUTION
    assert document["schema"] == "pulsaride.health/1"
    assert document["verdict"] == "NO-GO"
    tables = {t["table"]: t for t in document["tables"]}
    verdicts = {name: (t["verdict"], t["reasons"]) for name, t in tables.items()}
    assert verdicts == {
        "fmt": ("CAUTION", ["CAUTION: the latest sample validation failed on formatting only"]),
        "good": ("GO", []),
        # Rows are missing: the validations say INCOMPLETE, and health agrees with them.
        "grand": ("NO-GO", ["NO-GO: 1 row(s) wait in pulsaride_deferred",
                            _incomplete("row-count", 1, WAIT), _incomplete("hash", 1, WAIT)]),
        "kids": ("NO-GO", ["NO-GO: 2 row(s) wait in pulsaride_deferred",
                           _incomplete("row-count", 2, WAIT), _incomplete("hash", 2, WAIT)]),
        "late_kids": ("NO-GO", ["NO-GO: 3 row(s) wait in pulsaride_deferred",
                                "CAUTION: no row-count validation yet",
                                "CAUTION: no sample or hash validation yet"]),
        "late_ppl": ("NO-GO", ["NO-GO: not migrated yet (no registry row)",
                               "CAUTION: no row-count validation yet",
                               "CAUTION: no sample or hash validation yet"]),
        "miscounted": ("NO-GO", ["NO-GO: the latest row-count validation failed",
                                 "CAUTION: no sample or hash validation yet"]),
        "never": ("NO-GO", ["NO-GO: not migrated yet (no registry row)",
                            "CAUTION: no row-count validation yet",
                            "CAUTION: no sample or hash validation yet"]),
        "ppl": ("GO", []),
        "rejects": ("NO-GO", [
            "NO-GO: 2 row(s) were rejected to pulsaride_dlq by the copy",
            _incomplete("row-count", 2, "rejected to pulsaride_dlq by the copy"),
            _incomplete("hash", 2, "rejected to pulsaride_dlq by the copy")]),
        "seq": ("CAUTION", ["CAUTION: sequence public.seq_id_seq is at 1, below the migrated "
                            "maximum 8"]),
        "stale": ("CAUTION", ["CAUTION: the row counts were validated before the copy "
                              "finished",
                              "CAUTION: the hash check ran before the copy finished"]),
        "unchecked": ("CAUTION", ["CAUTION: no row-count validation yet",
                                  "CAUTION: no sample or hash validation yet"]),
    }
    assert document["reasons"] == [f"{name}: {t['verdict']}" for name, t in tables.items()
                                   if t["verdict"] != "GO"]
    assert tables["good"]["validations"] == {"counts": "PASS", "hash": "PASS", "sample": "PASS"}
    assert tables["kids"]["validations"] == {"counts": "INCOMPLETE", "hash": "INCOMPLETE"}
    assert tables["rejects"]["validations"] == {"counts": "INCOMPLETE", "hash": "INCOMPLETE"}
    # Health never calls GO what a validation does not PASS; INCOMPLETE or FAIL is NO-GO
    # (but a sample that differs only in formatting, the documented CAUTION).
    for table in tables.values():
        statuses = table["validations"]
        if table["verdict"] == "GO":
            assert set(statuses.values()) == {"PASS"}, table
        if {"INCOMPLETE", "FAIL"} & {s for k, s in statuses.items() if table["table"] != "fmt"
                                     or k != "sample"}:
            assert table["verdict"] == "NO-GO", table
    assert tables["rejects"]["counters"]["rejected"] == 2
    assert tables["kids"]["counters"]["deferred"] == 2

    hints = {(h["table"], h["hint"]): h for h in document["hints"]}
    assert set(hints) == {
        ("kids", "orphans: 2 of 2 sampled ppl.id values are not in the source either"),
        ("grand", "1 of 1 sampled parent keys are kids rows that wait themselves (a cascade)"),
        ("late_kids", "3 row(s) wait because the migration of late_ppl has not run"),
        ("rejects", "the target holds 2 row(s) fewer than the source: exactly the rows "
                    "rejected to pulsaride_dlq"),
        ("fmt", "every sample mismatch is a formatting difference: empty string vs NULL"),
        ("seq", "sequences behind the data"),
    }
    orphans = hints["kids", "orphans: 2 of 2 sampled ppl.id values are not in the source "
                            "either"]
    assert orphans["evidence"] == {"table": "kids", "parent": "ppl", "key": "id", "rows": 2,
                                   "sample_missing_in_source": ["98", "99"]}
    assert orphans["suggestion"] == "choose on_missing: SKIP for them, or fix the source"
    cascade = hints["grand", "1 of 1 sampled parent keys are kids rows that wait themselves "
                             "(a cascade)"]
    assert cascade["evidence"] == {"table": "grand", "parent": "kids", "key": "id", "rows": 1,
                                   "sample_keys": ["4"]}
    assert cascade["suggestion"] == "resolve the deferred rows of kids first"
    late = hints["late_kids", "3 row(s) wait because the migration of late_ppl has not run"]
    assert late["evidence"]["sample_keys"] == ["1", "2"]
    assert late["suggestion"] == "run (or fix) the migration of late_ppl"
    rejected = hints["rejects", "the target holds 2 row(s) fewer than the source: exactly the "
                                "rows rejected to pulsaride_dlq"]
    assert rejected["evidence"] == {"rejected": 2}
    formatting = hints["fmt", "every sample mismatch is a formatting difference: empty string "
                              "vs NULL"]
    assert formatting["evidence"] == {"differences": ["empty string vs NULL"]}
    assert formatting["suggestion"] == "set options.empty_string_as_null: true"
    sequence = hints["seq", "sequences behind the data"]
    assert sequence["evidence"] == {
        "column": "id", "sequence": "public.seq_id_seq", "current": 1, "max_value": 8,
        "behind": True, "action": "advance public.seq_id_seq to 8 (next value 9)"}
    assert sequence["suggestion"] == "pt migrate cutover seq advances it"


def test_go_passes_the_default_requirement(world: World) -> None:
    folder = world.subset("go", "good", "ppl")
    result = pt("health", "--transforms", str(folder), cwd=folder)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        "cutover confidence: GO",
        "GO       good: 8 written, 0 deferred, 0 rejected; validations: counts PASS, "
        "hash PASS, sample PASS",
        "GO       ppl: 3 written, 0 deferred, 0 rejected; validations: counts PASS, "
        "hash PASS"]


def test_caution_fails_require_go_and_passes_require_caution(world: World) -> None:
    folder = world.subset("caution", "good", "fmt", "unchecked")
    code, document = health(folder)
    assert (code, document["verdict"]) == (1, "CAUTION")
    assert document["reasons"] == ["fmt: CAUTION", "unchecked: CAUTION"]
    code, document = health(folder, "--require", "CAUTION")
    assert (code, document["verdict"]) == (0, "CAUTION")


def test_the_pipeline_run_state_counts(world: World) -> None:
    """GO tables; a run that waits for approval makes it CAUTION, a failed run NO-GO."""
    waiting = world.subset("waiting", "good")
    (waiting / "pulsaride-pipeline.yml").write_text(
        "stages: [cutover]\njobs:\n  gate:\n    stage: cutover\n    command: 'true'\n"
        "    when: manual\n")
    started = pt("pipeline", "run", "pulsaride-pipeline.yml", "--no-wait", cwd=waiting)
    assert started.returncode == 3, started.stdout + started.stderr
    code, document = health(waiting, "--pipeline", "pulsaride-pipeline.yml",
                            "--require", "CAUTION")
    assert (code, document["verdict"]) == (0, "CAUTION")
    assert document["reasons"] == ["CAUTION: the pipeline run is awaiting approval"]

    failed = world.subset("failed", "good")
    (failed / "pulsaride-pipeline.yml").write_text(
        "stages: [validate]\njobs:\n  check:\n    stage: validate\n    command: exit 1\n")
    run = pt("pipeline", "run", "pulsaride-pipeline.yml", cwd=failed)
    assert run.returncode == 1, run.stdout + run.stderr
    code, document = health(failed, "--pipeline", "pulsaride-pipeline.yml",
                            "--require", "CAUTION")
    assert (code, document["verdict"]) == (1, "NO-GO")
    assert document["reasons"] == ["NO-GO: the pipeline run is failed"]
    assert [t["verdict"] for t in document["tables"]] == ["GO"]
