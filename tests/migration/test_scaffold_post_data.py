"""`pt migrate schema --post-data`: one step per statement, each committed with its record in
pulsaride_schema_steps; a rerun skips what is done and a failure names its step; and the
statement splitter it relies on (dollar quotes, comments)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from pulsaride.migration.target_inspection import split_statements
from tests.migration.conftest import Db, pt

# ---- split_statements (pure) ---------------------------------------------------------------


@pytest.mark.parametrize(("script", "statements"), [
    ("SELECT 1; SELECT 2", ["SELECT 1", "SELECT 2"]),
    ("SELECT 'a;b'; SELECT 'it''s;'", ["SELECT 'a;b'", "SELECT 'it''s;'"]),
    ('CREATE TABLE "x;y" (a int); SELECT 1', ['CREATE TABLE "x;y" (a int)', "SELECT 1"]),
    ('SELECT "a""b;c"', ['SELECT "a""b;c"']),
    ("DO $$ BEGIN PERFORM 1; PERFORM 2; END $$; SELECT 3",
     ["DO $$ BEGIN PERFORM 1; PERFORM 2; END $$", "SELECT 3"]),
    ("DO $pt$ BEGIN RAISE NOTICE '$$;'; END $pt$;",
     ["DO $pt$ BEGIN RAISE NOTICE '$$;'; END $pt$"]),
    ("CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql",
     ["CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql"]),
    ("SELECT 1 /* a; comment */; SELECT 2", ["SELECT 1", "SELECT 2"]),
    ("/* outer /* nested; */ still; */ SELECT 1;", ["SELECT 1"]),
    ("-- a comment; with a semicolon\nSELECT 1;\n-- trailing", ["SELECT 1"]),
    ("SELECT E'a\\';b'; SELECT 2", ["SELECT E'a\\';b'", "SELECT 2"]),
    ("SELECT a$b; SELECT $1", ["SELECT a$b", "SELECT $1"]),
    ("SELECT '--not a comment;'", ["SELECT '--not a comment;'"]),
    (";;  ; ", []),
])
def test_split_statements(script: str, statements: list[str]) -> None:
    assert split_statements(script) == statements


# ---- --post-data on PostgreSQL -------------------------------------------------------------


def _schema(pg: Db, folder: Path, *args: str) -> tuple[int, str, str]:
    result = pt("migrate", "schema", *args, "--target-url", pg.url, cwd=folder)
    return result.returncode, result.stdout, result.stderr


def _steps_file(folder: Path) -> Path:
    path = folder / "post.sql"
    path.write_text("""
        -- parents and children, then the key between them
        CREATE INDEX IF NOT EXISTS child_parent ON child (parent_id);
        ALTER TABLE child ADD CONSTRAINT child_parent_fkey FOREIGN KEY (parent_id)
            REFERENCES parent (id) ON DELETE CASCADE NOT VALID;
        ALTER TABLE child VALIDATE CONSTRAINT child_parent_fkey;
        DO $pt$ BEGIN PERFORM 1; END $pt$;
        """)
    return path


def test_post_data_applies_each_step_once_and_resumes_after_a_failure(pg: Db,
                                                                      tmp_path: Path) -> None:
    pg.script("""
        CREATE TABLE parent (id int PRIMARY KEY);
        CREATE TABLE child (id int PRIMARY KEY, parent_id int);
        INSERT INTO parent VALUES (1);
        INSERT INTO child VALUES (10, 1), (11, 2)
        """)
    _steps_file(tmp_path)
    code, out, err = _schema(pg, tmp_path, "--post-data", "post.sql")
    assert code == 1, out + err
    # One line says which step failed, with its first line and the database's message.
    error = [line for line in err.splitlines() if line.startswith("pt: error:")]
    assert len(error) == 1
    assert error[0].startswith("pt: error: post.sql: step 3 of 4 failed: ALTER TABLE child "
                               "VALIDATE CONSTRAINT child_parent_fkey: ")
    assert "violates foreign key constraint" in error[0]
    assert "step 1: done" in err and "step 2: done" in err
    assert pg.rows("SELECT number FROM pulsaride_schema_steps") == [(1,), (2,)]

    pg.execute("DELETE FROM child WHERE parent_id = 2")
    code, out, err = _schema(pg, tmp_path, "--post-data", "post.sql", "--json")
    assert code == 0, err
    summary = orjson.loads(out)
    assert summary == {"schema": "pulsaride.schema-steps/1", "file": "post.sql",
                       "status": "ok", "steps": 4, "ran": 2, "skipped": 2, "failed": None}
    assert "step 1: skipped" in err and "step 3: done" in err
    assert pg.scalar("SELECT convalidated FROM pg_constraint "
                     "WHERE conname = 'child_parent_fkey'") is True

    code, out, _ = _schema(pg, tmp_path, "--post-data", "post.sql", "--json")
    assert code == 0
    assert orjson.loads(out)["ran"] == 0  # a rerun is a no-op


def test_post_data_reruns_a_statement_that_changed(pg: Db, tmp_path: Path) -> None:
    pg.script("CREATE TABLE t (a int, b int)")
    script = tmp_path / "post.sql"
    script.write_text("CREATE INDEX IF NOT EXISTS t_a ON t (a);")
    assert _schema(pg, tmp_path, "--post-data", "post.sql")[0] == 0
    script.write_text("CREATE INDEX IF NOT EXISTS t_b ON t (b);")
    code, out, _ = _schema(pg, tmp_path, "--post-data", "post.sql")
    assert code == 0
    assert "1 step(s) applied, 0 done earlier, of 1" in out
    assert pg.rows("SELECT indexname FROM pg_indexes WHERE tablename = 't'") == [
        ("t_a",), ("t_b",)]


def test_schema_statements_keep_percent_and_colons(pg: Db, tmp_path: Path) -> None:
    """No bind-parameter parsing: `:x` and `%` in literals and names are text."""
    script = tmp_path / "pre.sql"
    script.write_text("""CREATE TABLE IF NOT EXISTS "a:b%c" (v text DEFAULT '100% :x');
                         INSERT INTO "a:b%c" DEFAULT VALUES;""")
    code, _, err = _schema(pg, tmp_path, "pre.sql")
    assert code == 0, err
    assert pg.rows('SELECT v FROM "a:b%c"') == [("100% :x",)]
