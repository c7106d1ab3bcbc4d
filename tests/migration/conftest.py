"""Real databases for the migration tests: a fresh PostgreSQL database and a fresh MariaDB
database per test (unique names, dropped afterwards), SQLite files in tmp_path, and helpers to
build small source schemas on each and to read tables back as sorted tuples.

The servers are the ones CI checks (.ci/run): PostgreSQL on 127.0.0.1:5432 (trust, user
postgres) and MariaDB on 127.0.0.1:3306 (root, no password). They are used for real; a test
that cannot reach them fails loudly instead of being skipped.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pymysql
import pytest
import yaml
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.pool import NullPool

from tests.conftest import PT

PG_HOST = os.environ.get("PT_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("PT_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("PT_TEST_PG_USER", "postgres")
MARIA_HOST = os.environ.get("PT_TEST_MARIA_HOST", "127.0.0.1")
MARIA_PORT = int(os.environ.get("PT_TEST_MARIA_PORT", "3306"))
MARIA_USER = os.environ.get("PT_TEST_MARIA_USER", "root")

# What a user would write (pt maps the short drivers) and what SQLAlchemy needs in-process.
_SA_DRIVERS = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql"}


class Db:
    """One database of a test: its URL as a user writes it, and helpers to fill and read it."""

    def __init__(self, kind: str, url: str) -> None:
        self.kind = kind  # "sqlite" | "postgresql" | "mariadb"
        self.url = url
        scheme, rest = url.split("://", 1)
        self.sa_url = f"{_SA_DRIVERS.get(scheme, scheme)}://{rest}"
        self._engine: Engine | None = None

    def __repr__(self) -> str:
        return f"Db({self.kind}, {self.url})"

    @property
    def engine(self) -> Engine:
        """An engine without a pool, so no connection outlives a statement block."""
        if self._engine is None:
            self._engine = create_engine(self.sa_url, poolclass=NullPool)
        return self._engine

    def execute(self, *statements: str, params: Sequence[dict[str, Any]] | None = None) -> None:
        """Run statements in one transaction (`params`: executemany of the last one)."""
        with self.engine.begin() as connection:
            for index, statement in enumerate(statements):
                last = index == len(statements) - 1
                if last and params is not None:
                    connection.execute(text(statement), list(params))
                else:
                    connection.execute(text(statement))

    def script(self, sql: str) -> None:
        """Run a ;-separated script (no semicolons inside literals)."""
        self.execute(*(s.strip() for s in textwrap.dedent(sql).split(";") if s.strip()))

    def insert(self, table: str, rows: Sequence[Sequence[Any]]) -> None:
        """Insert positional rows into `table` (quoted as given)."""
        if not rows:
            return
        marks = ", ".join(f":p{i}" for i in range(len(rows[0])))
        self.execute(f"INSERT INTO {self.quote(table)} VALUES ({marks})",
                     params=[{f"p{i}": v for i, v in enumerate(row)} for row in rows])

    def quote(self, name: str) -> str:
        """`name` quoted for this database (case kept)."""
        return f"`{name}`" if self.kind == "mariadb" else f'"{name}"'

    def rows(self, query: str, **params: Any) -> list[tuple[Any, ...]]:
        """The rows of `query`, as sorted tuples (None sorts first)."""
        with self.engine.connect() as connection:
            found = [tuple(r) for r in connection.execute(text(query), params)]
        return sorted(found, key=_sort_key)

    def scalar(self, query: str, **params: Any) -> Any:
        with self.engine.connect() as connection:
            return connection.execute(text(query), params).scalar()

    def registry(self, transform: str) -> dict[str, Any] | None:
        """The pulsaride_run_registry row of `transform`, as a dict (None: no row, or no
        registry table yet)."""
        try:
            with self.engine.connect() as connection:
                row = connection.execute(
                    text("SELECT * FROM pulsaride_run_registry WHERE transform = :t"),
                    {"t": transform}).first()
        except (ProgrammingError, OperationalError) as exc:
            if "pulsaride_run_registry" in str(exc):
                return None
            raise
        return dict(row._mapping) if row is not None else None

    def count(self, table: str) -> int:
        return int(self.scalar(f"SELECT count(*) FROM {table}"))

    def tables(self) -> set[str]:
        from sqlalchemy import inspect  # noqa: PLC0415

        return set(inspect(self.engine).get_table_names())

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def _sort_key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((v is not None, str(type(v).__name__) if v is not None else "", v)
                 for v in row)


# ---- servers -----------------------------------------------------------------------------------


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def _pg_admin() -> psycopg.Connection[Any]:
    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres",
                           autocommit=True)


def _maria_admin() -> pymysql.connections.Connection[Any]:
    return pymysql.connect(host=MARIA_HOST, port=MARIA_PORT, user=MARIA_USER, password="",
                           autocommit=True)


# Dropping a PostgreSQL database waits for a checkpoint: done in the background, overlapping
# the next tests, and waited for at the end of the session (drop_databases_at_exit).
_DROPPER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drop-test-databases")
_DROPS: list[Future[None]] = []


def _drop_pg(name: str) -> None:
    with _pg_admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def new_pg_database() -> tuple[Db, Callable[[], None]]:
    """A fresh PostgreSQL database and the function that drops it."""
    name = _unique("pt_test")
    with _pg_admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    db = Db("postgresql", f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}")

    def drop() -> None:
        db.dispose()
        _DROPS.append(_DROPPER.submit(_drop_pg, name))

    return db, drop


@pytest.fixture(scope="session", autouse=True)
def drop_databases_at_exit() -> Iterator[None]:
    """Wait for the background drops, so no test database outlives the session."""
    yield
    for future in _DROPS:
        future.result()


def new_maria_database() -> tuple[Db, Callable[[], None]]:
    """A fresh MariaDB database and the function that drops it."""
    name = _unique("pt_test")
    with _maria_admin() as admin, admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    db = Db("mariadb", f"mysql://{MARIA_USER}@{MARIA_HOST}:{MARIA_PORT}/{name}?charset=utf8mb4")

    def drop() -> None:
        db.dispose()
        with _maria_admin() as admin, admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")

    return db, drop


def _fresh(new: Callable[[], tuple[Db, Callable[[], None]]]) -> Iterator[Db]:
    """A database made by `new`, dropped after the test."""
    db, drop = new()
    try:
        yield db
    finally:
        drop()


@pytest.fixture
def pg() -> Iterator[Db]:
    """A fresh PostgreSQL database, dropped after the test."""
    yield from _fresh(new_pg_database)


@pytest.fixture
def pg2() -> Iterator[Db]:
    """A second fresh PostgreSQL database (e.g. source and target both on PostgreSQL)."""
    yield from _fresh(new_pg_database)


@pytest.fixture
def maria() -> Iterator[Db]:
    """A fresh MariaDB database, dropped after the test."""
    yield from _fresh(new_maria_database)


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Callable[[str], Db]:
    """SQLite database files in tmp_path: sqlite_db('source') -> Db of tmp_path/source.db."""
    made: list[Db] = []

    def make(name: str) -> Db:
        db = Db("sqlite", f"sqlite:///{tmp_path / (name + '.db')}")
        made.append(db)
        return db

    yield make  # type: ignore[misc]
    for db in made:
        db.dispose()


@pytest.fixture
def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    """Parametrised by kind: indirect=['any_db'] with 'sqlite' / 'postgresql' / 'mariadb'."""
    kind = request.param
    if kind == "sqlite":
        db = Db("sqlite", f"sqlite:///{tmp_path / 'any.db'}")
        yield db
        db.dispose()
        return
    db, drop = new_pg_database() if kind == "postgresql" else new_maria_database()
    try:
        yield db
    finally:
        drop()


# ---- transform files and pt processes --------------------------------------------------------


def write_transform(folder: Path, document: dict[str, Any] | str,
                    name: str | None = None) -> Path:
    """Write a transform file (a mapping dumped as YAML, or YAML text dedented)."""
    if isinstance(document, str):
        body = textwrap.dedent(document)
        filename = name or "transform.yaml"
    else:
        body = yaml.safe_dump(document, sort_keys=False)
        filename = name or f"{document.get('name', 'transform')}.yaml"
    path = folder / filename
    path.write_text(body)
    return path


# Variables of the environment pt reads; tests pass them explicitly, never inherit them.
_PT_VARIABLES = ("PT_SOURCE_URL", "PT_TARGET_URL", "PT_SRC_PASS", "PT_TGT_PASS", "PT_STATE_DIR",
                 "PT_SEAL_KEY", "PT_DEBUG")


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """os.environ without pt's own variables, plus `extra`."""
    base = {k: v for k, v in os.environ.items() if k not in _PT_VARIABLES}
    return {**base, **(extra or {})}


def pt(*args: str, cwd: Path, env: dict[str, str] | None = None,
       timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run `pt` as a real process in a clean environment (plus `env`)."""
    return subprocess.run([PT, *args], cwd=cwd, env=clean_env(env), capture_output=True,
                          text=True, timeout=timeout, check=False)


def migrate_cmd(transform: Path, source: Db | str, target: Db | str, *extra: str) -> list[str]:
    """The argv of `pt migrate run` for these databases."""
    return [PT, "migrate", "run", str(transform), "--source-url", _url(source),
            "--target-url", _url(target), *extra]


def pt_migrate(transform: Path, source: Db | str, target: Db | str, *extra: str,
               cwd: Path | None = None, env: dict[str, str] | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `pt migrate run` as a real process (with --json unless told otherwise)."""
    return subprocess.run(migrate_cmd(transform, source, target, *extra),
                          cwd=cwd or transform.parent, env=clean_env(env),
                          capture_output=True, text=True, timeout=timeout, check=False)


def summary(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The one-line JSON summary of `pt migrate run --json`."""
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, result.stdout
    document: dict[str, Any] = orjson.loads(lines[0])
    return document


def _url(db: Db | str) -> str:
    return db.url if isinstance(db, Db) else db


def wait_for(predicate: Callable[[], bool], timeout: float = 60, interval: float = 0.005,
             what: str = "condition") -> None:
    """Poll until `predicate()` holds (a synchronisation aid, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(interval)


# ---- small source schemas ----------------------------------------------------------------------

# Column types spelled for each kind of database: one logical schema, three dialects.
TYPES: dict[str, dict[str, str]] = {
    "sqlite": {"int": "INTEGER", "bigint": "INTEGER", "num": "NUMERIC(10,2)", "date": "DATE",
               "ts": "TIMESTAMP", "bool": "BOOLEAN", "text": "VARCHAR(100)", "blob": "BLOB"},
    "postgresql": {"int": "integer", "bigint": "bigint", "num": "numeric(10,2)", "date": "date",
                   "ts": "timestamp", "bool": "boolean", "text": "varchar(100)",
                   "blob": "bytea"},
    "mariadb": {"int": "INT", "bigint": "BIGINT", "num": "DECIMAL(10,2)", "date": "DATE",
                "ts": "DATETIME(6)", "bool": "TINYINT(1)", "text": "VARCHAR(100)",
                "blob": "BLOB"},
}


def create_table(db: Db, name: str, columns: Sequence[tuple[str, str]],
                 primary_key: Sequence[str] = (), foreign_keys: Sequence[
                     tuple[str, str, str]] = ()) -> None:
    """CREATE TABLE `name` with (column, logical type) pairs, spelled for `db`'s dialect.

    Names are quoted as given, so upper-case names stay upper case (Oracle style)."""
    q = db.quote
    lines = [f"{q(c)} {TYPES[db.kind].get(t, t)}" for c, t in columns]
    if primary_key:
        lines.append(f"PRIMARY KEY ({', '.join(q(c) for c in primary_key)})")
    lines += [f"FOREIGN KEY ({q(c)}) REFERENCES {q(parent)} ({q(key)})"
              for c, parent, key in foreign_keys]
    db.execute(f"CREATE TABLE {q(name)} ({', '.join(lines)})")


def parent_child_source(db: Db, parents: int, children: int, orphans: Sequence[int] = (),
                        upper: bool = False) -> None:
    """A parent table and a child table whose rows point at parents (child i -> parent
    (i % parents) + 1), plus child rows pointing at the `orphans` parent ids."""
    p, c = ("PARENTS", "CHILDREN") if upper else ("parents", "children")
    create_table(db, p, [("id", "int"), ("name", "text")], primary_key=["id"])
    create_table(db, c, [("id", "int"), ("parent_id", "int"), ("label", "text")],
                 primary_key=["id"])
    db.insert(p, [(i, f"parent {i}") for i in range(1, parents + 1)])
    rows = [(i, (i % parents) + 1, f"child {i}") for i in range(1, children + 1)]
    rows += [(children + n + 1, orphan, f"orphan of {orphan}") for n, orphan in
             enumerate(orphans)]
    db.insert(c, rows)


def parent_child_target(db: Db) -> None:
    """The target tables of parent_child_source (with a real foreign key)."""
    create_table(db, "parents", [("id", "int"), ("name", "text")], primary_key=["id"])
    create_table(db, "children", [("id", "int"), ("parent_id", "int"), ("label", "text")],
                 primary_key=["id"], foreign_keys=[("parent_id", "parents", "id")])


def parent_child_transforms(folder: Path, on_missing: str = "DEFER",
                            batch_size: int | None = None) -> tuple[Path, Path]:
    """Transform files for parent_child_source -> parent_child_target."""
    options = {"batch_size": batch_size} if batch_size else {}
    parent = write_transform(folder, {
        "name": "parents", "sources": [{"name": "parents", "table": "parents", "alias": "p"}],
        "fields": [{"name": "id", "source": "p.id"}, {"name": "name", "source": "p.name"}],
        "target_table": "parents", **({"options": options} if options else {})})
    child = write_transform(folder, {
        "name": "children",
        "sources": [{"name": "children", "table": "children", "alias": "c"}],
        "fields": [{"name": "id", "source": "c.id"},
                   {"name": "parent_id", "source": "c.parent_id"},
                   {"name": "label", "source": "c.label"}],
        "target_table": "children",
        "depends_on": [{"table": "parents", "key": "id", "via": "c.parent_id",
                        "on_missing": on_missing}],
        **({"options": options} if options else {})})
    return parent, child
