"""Bad input to `pt migrate` and `pt scaffold`: one clear error line, exit 2 for what the user
wrote (exit 1 for a database that does not answer or refuses the data), never a traceback."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from tests.migration.conftest import Db, create_table, pt, write_transform

GOOD = """\
target_table: people
name: people
sources: [{name: people, table: PEOPLE, alias: p}]
fields:
  - {name: id, source: p.ID}
  - {name: name, source: p.NAME}
"""
AGE = "  - {name: age, source: p.AGE, expression: 'to_int(?)'}\n"


def error_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The one error line of a failed pt, checked to be the only one and not a crash."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert "internal error" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("pt: error:")]
    assert len(errors) == 1, result.stderr
    # Nothing after the error line but its indented detail, if any.
    after = result.stderr.split(errors[0], 1)[1].splitlines()[1:]
    assert all(line.startswith("  ") for line in after), result.stderr
    return errors[0].removeprefix("pt: error: ")


@pytest.fixture
def people(sqlite_db: Callable[[str], Db]) -> tuple[Db, Db]:
    source, target = sqlite_db("source"), sqlite_db("target")
    create_table(source, "PEOPLE", [("ID", "int"), ("NAME", "text"), ("AGE", "text")],
                 primary_key=["ID"])
    source.insert("PEOPLE", [(1, "Ada", "36"), (2, "Alan", "forty-one"), (3, "Grace", "85")])
    create_table(target, "people", [("id", "int"), ("name", "varchar(5)"), ("age", "int")],
                 primary_key=["id"])
    return source, target


def run(tmp_path: Path, transform: Path | str, *args: str,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return pt("migrate", "run", str(transform), *args, cwd=tmp_path, env=env)


def urls(source: Db | str, target: Db | str) -> list[str]:
    return ["--source-url", source if isinstance(source, str) else source.url,
            "--target-url", target if isinstance(target, str) else target.url]


# ---- the transform file ------------------------------------------------------------------------


def test_missing_transform_file(tmp_path: Path) -> None:
    assert error_line(run(tmp_path, "nope.yaml"), 2) == "nope.yaml: no such transform file"


def test_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("sources: [{name: x, table: T}\nfields: :\n")
    message = error_line(run(tmp_path, path), 2)
    assert message.startswith(f"{path}:")
    assert "line" in message


def test_unknown_keys(tmp_path: Path) -> None:
    path = write_transform(tmp_path, "colour: blue\n" + GOOD)
    result = run(tmp_path, path)
    assert error_line(result, 2) == (f"{path}: top level: Additional properties are not "
                                     "allowed ('colour' was unexpected)")


def test_unknown_alias_in_a_field_source(tmp_path: Path) -> None:
    path = write_transform(tmp_path, GOOD.replace("source: p.NAME", "source: q.NAME"))
    assert error_line(run(tmp_path, path), 2) == (
        f"{path}: fields[1] 'name': 'q.NAME' names the unknown source alias 'q' (aliases: p)")


def test_every_problem_of_a_file_is_listed(tmp_path: Path) -> None:
    path = write_transform(tmp_path, GOOD.replace("source: p.NAME", "source: q.NAME")
                           .replace("source: p.ID", "source: p.ID, expression: 'upper('"))
    result = run(tmp_path, path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith(f"pt: error: {path}: ") for line in lines)
    assert "Traceback" not in result.stderr


# ---- the databases -----------------------------------------------------------------------------


def test_missing_source_table(people: tuple[Db, Db], tmp_path: Path) -> None:
    path = write_transform(tmp_path, GOOD.replace("table: PEOPLE", "table: PERSONS"))
    assert error_line(run(tmp_path, path, *urls(*people)), 2) == \
        "source 'people': table PERSONS does not exist"


def test_missing_source_column(people: tuple[Db, Db], tmp_path: Path) -> None:
    path = write_transform(tmp_path, GOOD.replace("p.NAME", "p.FULL_NAME"))
    assert error_line(run(tmp_path, path, *urls(*people)), 2) == (
        "source column p.FULL_NAME does not exist (columns of p: ID, NAME, AGE)")


def test_missing_target_table(people: tuple[Db, Db], tmp_path: Path) -> None:
    path = write_transform(tmp_path, GOOD.replace("target_table: people",
                                                  "target_table: persons"))
    message = error_line(run(tmp_path, path, *urls(*people)), 2)
    assert message == ("target table persons does not exist; create it first "
                       "(e.g. pt migrate schema target-schema.sql)")


def test_missing_target_column(people: tuple[Db, Db], tmp_path: Path) -> None:
    path = write_transform(tmp_path, GOOD.replace("{name: name,", "{name: full_name,"))
    assert error_line(run(tmp_path, path, *urls(*people)), 2) == (
        "target table people has no column full_name (it has: id, name, age)")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("side", ["source", "target"])
def test_unreachable_database(people: tuple[Db, Db], tmp_path: Path, side: str) -> None:
    nowhere = f"postgresql://postgres@127.0.0.1:{_closed_port()}/nothing"
    source, target = people
    path = write_transform(tmp_path, GOOD)
    args = urls(nowhere, target) if side == "source" else urls(source, nowhere)
    message = error_line(run(tmp_path, path, *args), 1)
    assert message.startswith("people: database error: ")
    assert "refused" in message or "failed" in message


@pytest.mark.parametrize("command", [
    ["validate", "counts", "--table", "people"], ["validate", "sample", "--table", "people"],
    ["validate", "hash", "--table", "people"], ["health"], ["migrate", "deferred"],
    ["migrate", "cutover", "people.yaml", "--verify"]])
def test_an_unreachable_target_is_one_line_for_every_command(
        people: tuple[Db, Db], tmp_path: Path, command: list[str]) -> None:
    nowhere = f"postgresql://postgres@127.0.0.1:{_closed_port()}/nothing"
    write_transform(tmp_path, GOOD, name="people.yaml")
    source_flag = [] if command[0] == "migrate" else ["--source-url", people[0].url]
    message = error_line(pt(*command, *source_flag, "--target-url", nowhere, cwd=tmp_path), 1)
    assert message.startswith("database error: ") and "refused" in message, message


def test_unset_variable_in_a_url(tmp_path: Path) -> None:
    path = write_transform(tmp_path, "source_url: postgresql://app@${DB_HOST}/x\n" + GOOD)
    assert error_line(run(tmp_path, path, "--target-url", "sqlite:///t.db"), 2) == \
        "the source URL uses $DB_HOST, which is not set"


def test_no_url_anywhere(tmp_path: Path) -> None:
    path = write_transform(tmp_path, GOOD)
    (tmp_path / "s.db").touch()
    assert error_line(run(tmp_path, path, "--source-url", "sqlite:///s.db"), 2) == (
        "no target database: give --target-url, set target_url in the transform file, "
        "or set PT_TARGET_URL")


def test_a_missing_sqlite_source_is_named_not_created(tmp_path: Path) -> None:
    path = write_transform(tmp_path, GOOD)
    expected = "the source database file typo.db does not exist"
    assert error_line(run(tmp_path, path, *urls("sqlite:///typo.db", "sqlite:///t.db")), 2) \
        == expected
    assert error_line(pt("scaffold", "--source-url", "sqlite:///typo.db", "--output",
                         "pulsaride-pipeline.yml", cwd=tmp_path), 2) == expected
    assert not (tmp_path / "typo.db").exists()


def test_a_url_with_an_unknown_driver(tmp_path: Path) -> None:
    path = write_transform(tmp_path, GOOD)
    assert error_line(run(tmp_path, path, *urls("nosuchdb://x/y", "sqlite:///t.db")), 2) == \
        "no driver for nosuchdb:// in this installation"


def test_urls_and_passwords_from_the_environment(people: tuple[Db, Db],
                                                 tmp_path: Path) -> None:
    source, target = people
    path = write_transform(tmp_path, "source_url: ${SRC}\n" + GOOD)
    result = run(tmp_path, path, "--json",
                 env={"SRC": source.url, "PT_TARGET_URL": target.url, "PT_TGT_PASS": "unused"})
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout)["rows_written"] == 3


# ---- rows the target refuses, rows an expression cannot compute -------------------------------


def test_a_row_an_expression_cannot_compute_stops_the_copy_with_reject_policy_fail(
        people: tuple[Db, Db], tmp_path: Path) -> None:
    path = write_transform(tmp_path, GOOD + AGE)
    message = error_line(run(tmp_path, path, *urls(*people)), 1)
    assert message == ("people: the row with key [2] cannot be transformed: field age: "
                       "'forty-one' is not a number (reject_policy: FAIL_ROW sends such rows "
                       "to pulsaride_dlq instead); nothing of its batch was written")
    assert people[1].count("people") == 0


def test_reject_policy_fail_row_sends_the_row_to_the_dead_letters(people: tuple[Db, Db],
                                                                  tmp_path: Path) -> None:
    path = write_transform(tmp_path, "reject_policy: FAIL_ROW\n" + GOOD + AGE)
    result = run(tmp_path, path, *urls(*people), "--json")
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout)["rows_rejected"] == 1
    target = people[1]
    assert target.rows("SELECT id, age FROM people") == [(1, 36), (3, 85)]
    letters = target.rows("SELECT reason, detail, row_key, payload FROM pulsaride_dlq")
    assert [(r, d, orjson.loads(k), orjson.loads(p)) for r, d, k, p in letters] == [
        ("TRANSFORM_ERROR", "field age: 'forty-one' is not a number", {"key": [2]},
         {"p.ID": 2, "p.NAME": "Alan", "p.AGE": "forty-one"})]


def test_a_value_the_postgresql_target_refuses_is_one_clear_line(
        people: tuple[Db, Db], pg: Db, tmp_path: Path) -> None:
    create_table(pg, "people", [("id", "int"), ("name", "varchar(4)")], primary_key=["id"])
    path = write_transform(tmp_path, GOOD)
    message = error_line(run(tmp_path, path, *urls(people[0], pg)), 1)
    assert message == "people: database error: value too long for type character varying(4)"
    assert pg.count("people") == 0


# ---- pt migrate schema / deferred, pt scaffold -------------------------------------------------


def test_schema_and_deferred_and_scaffold_errors(tmp_path: Path) -> None:
    target = f"sqlite:///{tmp_path / 't.db'}"
    missing = pt("migrate", "schema", "nope.sql", "--target-url", target, cwd=tmp_path)
    assert missing.returncode == 2
    assert "nope.sql" in missing.stderr and "Traceback" not in missing.stderr

    bad = tmp_path / "bad.sql"
    bad.write_text("CREATE TABLE ok (id integer);\nCREATE TABLE broken (id integer,,);\n")
    message = error_line(pt("migrate", "schema", str(bad), "--target-url", target,
                            cwd=tmp_path), 1)
    assert message.startswith(f"{bad}: ") and "syntax error" in message

    nowhere = f"postgresql://postgres@127.0.0.1:{_closed_port()}/x"
    message = error_line(pt("migrate", "deferred", "--target-url", nowhere, cwd=tmp_path), 1)
    assert "refused" in message or "failed" in message

    message = error_line(pt("scaffold", "-o", "p.yml", cwd=tmp_path), 2)
    assert message.startswith("no source database")


@pytest.mark.parametrize("command", [
    ["migrate", "run", "/dev/zero"], ["preflight", "/dev/zero"],
    ["migrate", "cutover", "/dev/zero"], ["validate", "counts", "--transform", "/dev/zero"],
    ["migrate", "schema", "/dev/zero"]])
def test_an_endless_file_is_refused_after_its_limit_not_read_to_the_end(
        command: list[str], tmp_path: Path) -> None:
    result = pt(*command, "--target-url", f"sqlite:///{tmp_path / 't.db'}", cwd=tmp_path)
    line = error_line(result, 2)
    assert line.startswith("/dev/zero: the ") and "holds more than" in line, line
