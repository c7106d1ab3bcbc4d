"""Connecting to source and target databases: URL resolution, drivers, engines.

A URL comes from the command-line flag, else the transform file (with $VAR expanded), else
PT_SOURCE_URL / PT_TARGET_URL. A password may come from PT_SRC_PASS / PT_TGT_PASS, so files
hold no secrets. Short driver names get the driver pt ships with (psycopg 3, PyMySQL).
"""

from __future__ import annotations

import os
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from pulsaride.engine.errors import BadInputError

_DRIVERS = {
    "postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql", "mariadb": "mariadb+pymysql", "oracle": "oracle+oracledb",
}


@dataclass(frozen=True)
class Endpoint:
    """Which side of the migration a URL is for, and where its settings come from."""

    side: str  # "source" | "target"
    env_url: str
    env_password: str


SOURCE = Endpoint("source", "PT_SOURCE_URL", "PT_SRC_PASS")
TARGET = Endpoint("target", "PT_TARGET_URL", "PT_TGT_PASS")


def resolve_url(endpoint: Endpoint, flag: str | None, from_file: str | None,
                env: Mapping[str, str] | None = None) -> URL:
    """The URL for `endpoint`: flag, else file value ($VAR expanded), else the environment."""
    env = os.environ if env is None else env
    text = flag or (expand(from_file, env, endpoint) if from_file else None) or env.get(
        endpoint.env_url)
    if not text:
        raise BadInputError(
            f"no {endpoint.side} database: give --{endpoint.side}-url, set "
            f"{endpoint.side}_url in the transform file, or set {endpoint.env_url}")
    try:
        url = make_url(text)
    except ArgumentError:
        raise BadInputError(f"the {endpoint.side} URL is not a database URL: "
                            f"{_redact(text)}") from None
    url = url.set(drivername=_DRIVERS.get(url.drivername, url.drivername))
    password = env.get(endpoint.env_password)
    if password and not url.password and url.get_backend_name() != "sqlite":  # no passwords
        url = url.set(password=password)
    return url


def open_source(url: URL) -> Engine:
    """`open_engine` for a source, which must exist (see check_source_file)."""
    check_source_file(url)
    return open_engine(url)


def check_source_file(url: URL) -> None:
    """A SQLite source must exist: opening a missing file would create an empty database and
    report "no tables" or "no rows" instead of the typo."""
    if (url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:")
            or url.query.get("uri")):
        return
    path = Path(url.database)
    if not path.is_file():
        raise BadInputError(f"the source database file {path} does not exist")


def expand(text: str, env: Mapping[str, str], endpoint: Endpoint) -> str:
    """`text` with $VAR and ${VAR} replaced from `env`; an unset variable is an error."""
    try:
        return string.Template(text).substitute(env)
    except KeyError as exc:
        raise BadInputError(f"the {endpoint.side} URL uses ${exc.args[0]}, which is not set") \
            from None
    except ValueError as exc:
        raise BadInputError(f"the {endpoint.side} URL has a bad $ placeholder: {exc}") from None


def open_engine(url: URL) -> Engine:
    """An engine for `url` (SQLite: waits for locks, enforces foreign keys; MariaDB/MySQL:
    sessions in UTC)."""
    try:
        if url.get_backend_name() == "sqlite":
            engine = create_engine(url, connect_args={"timeout": 60})
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        engine = create_engine(url, pool_pre_ping=True)
        if url.get_backend_name() in ("mysql", "mariadb"):
            event.listen(engine, "connect", _mysql_utc)
        return engine
    except NoSuchModuleError:
        raise BadInputError(f"no driver for {url.drivername}:// in this installation") from None
    except ArgumentError as exc:
        raise BadInputError(f"cannot use {describe(url)}: {exc}") from None


def _sqlite_pragmas(connection: DBAPIConnection, _record: object) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA busy_timeout = 60000")
    cursor.close()


def _mysql_utc(connection: DBAPIConnection, _record: object) -> None:
    """MariaDB/MySQL give TIMESTAMP values in the session's time zone, without saying which:
    pt's sessions are UTC, so a TIMESTAMP read is the instant it holds (and NOW() is UTC)."""
    cursor = connection.cursor()
    cursor.execute("SET time_zone = '+00:00'")
    cursor.close()


def describe(url: URL) -> str:
    """The URL without its password, for messages and the registry."""
    return url.render_as_string(hide_password=True)


def _redact(text: str) -> str:
    try:
        return make_url(text).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable>"
