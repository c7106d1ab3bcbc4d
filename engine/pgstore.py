"""Runs kept in a shared PostgreSQL database, through the `eventsourcing` PostgreSQL recorder.

Each line is one stored event: `originator_id` = run id, `originator_version` = seq, `topic`
= `pulsaride:<event>`, `state` = the exact line bytes (the same bytes a JSONL file holds, so
an export is a file `pt pipeline verify` accepts). The table's primary key on (run, seq) is
the concurrency guard: a second writer of the same seq gets an IntegrityError, never a fork
of the chain. Writers serialise on a session advisory lock (the append lock); the runner owns
the run through another advisory lock held on its own session for as long as it runs, so a
runner that dies frees the run with its connection. Waiting runs learn about approvals made
on other machines through the recorder's LISTEN/NOTIFY subscription. See ADR 0008.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import secrets
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson
import psycopg
from eventsourcing.persistence import IntegrityError, PersistenceError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg import sql

from .errors import RunFileError, RunIdError, RunLockedError, StoreError, StoreWriteError
from .events import RunEvent, RunStarted
from .layout import check_run_id, latest_of, summary_of
from .lines import GENESIS, LineError, Tail, chained_lines, check_line, digest
from .masking import safe_url
from .run_index import IndexEntry, encode_entry, next_position
from .runstore import RunSummary

EVENTS_TABLE = "pulsaride_events"
OWNERS_TABLE = "pulsaride_run_owners"
INDEX_TABLE = "pulsaride_run_index"
TOPIC_PREFIX = "pulsaride:"
CONNECT_TIMEOUT = 5
# advisory lock namespaces ("pt" 1, 2 and 3)
_OWN, _APPEND, _SETUP = 0x7074_0001, 0x7074_0002, 0x7074_0003

RecordedEvent = RunEvent | RunStarted


class PostgresStore:
    """Every run of one PostgreSQL database (and schema)."""

    def __init__(self, url: str, conninfo: dict[str, Any], schema: str) -> None:
        self.url = url
        self.conninfo = conninfo
        self.schema = schema
        self.datastore = PostgresDatastore(
            dbname=conninfo["dbname"], host=conninfo["host"], port=conninfo["port"],
            user=conninfo["user"], password=conninfo["password"], schema=schema,
            originator_id_type="text", pool_size=2, max_overflow=6,
            connect_timeout=CONNECT_TIMEOUT)
        self.recorder = PostgresApplicationRecorder(self.datastore,
                                                    events_table_name=EVENTS_TABLE)

    @classmethod
    def connect(cls, url: str) -> PostgresStore:
        """Open the store at `url`, creating its tables if needed; one-line errors."""
        conninfo, schema = _parse(url)
        try:
            setup = psycopg.connect(**conninfo, connect_timeout=CONNECT_TIMEOUT, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(f"cannot reach the event store {safe_url(url)}: "
                             f"{_first_line(exc)}") from None
        store = cls(url, conninfo, schema)
        try:
            with setup:
                # CREATE ... IF NOT EXISTS is not safe against itself in PostgreSQL (two
                # sessions can both decide to create): processes opening the store at the same
                # moment (racing approvers) set it up one at a time.
                setup.execute("SELECT pg_advisory_lock(%s, %s)", (_SETUP, _key(schema, "")))
                setup.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                    sql.Identifier(schema)))
                store.recorder.create_table()
                setup.execute(sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {}.{} (run_id text PRIMARY KEY, owner jsonb)"
                ).format(sql.Identifier(schema), sql.Identifier(OWNERS_TABLE)))
                setup.execute(sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {}.{} (seq bigint PRIMARY KEY, line bytea "
                    "NOT NULL)").format(sql.Identifier(schema), sql.Identifier(INDEX_TABLE)))
        except (PersistenceError, psycopg.Error) as exc:
            store.close()
            raise StoreError(f"cannot use the event store {safe_url(url)}: "
                             f"{_first_line(exc)}") from None
        return store

    @property
    def where(self) -> str:
        """The store's URL without password."""
        return safe_url(self.url)

    def session(self) -> psycopg.Connection[Any]:
        """A connection of its own (advisory locks belong to one session)."""
        try:
            return psycopg.connect(**self.conninfo, connect_timeout=CONNECT_TIMEOUT,
                                   autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(f"cannot reach the event store {self.where}: "
                             f"{_first_line(exc)}") from None

    @contextlib.contextmanager
    def _session(self) -> Iterator[psycopg.Connection[Any]]:
        connection = self.session()
        try:
            yield connection
        finally:
            connection.close()

    def table(self, name: str) -> sql.Composed:
        """A table of the store's schema."""
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(name))

    # ---- the RunStore contract ---------------------------------------------------------

    def check_new(self, run_id: str) -> None:
        """RunIdError if the run has lines."""
        if self.select(run_id, gt=0, limit=1):
            raise RunIdError(f"run {run_id} already exists in {self.where}; use "
                             "'pt pipeline resume' to continue it")

    def create(self, run_id: str) -> tuple[PostgresRunLog, dict[str, Any] | None]:
        """The log of a new run (nothing can be left of an unstarted one: appends are
        transactions)."""
        return PostgresRunLog(self, check_run_id(run_id)), None

    def open(self, run_id: str, *, writable: bool = False) -> PostgresRunLog:
        """The log of an existing run."""
        del writable  # every log of this store may append
        if not self.select(check_run_id(run_id), gt=0, limit=1):
            raise RunIdError(f"no run {run_id} in {self.where}")
        return PostgresRunLog(self, run_id)

    def acquire(self, run_id: str, owner: dict[str, Any]) -> PostgresOwnership:
        """Own the run for as long as this session lives."""
        session = self.session()
        try:
            taken = session.execute("SELECT pg_try_advisory_lock(%s, %s)",
                                    (_OWN, _key(self.schema, run_id))).fetchone()
            if not (taken and taken[0]):
                holder = self._owner(session, run_id)
                raise RunLockedError(
                    f"run {run_id} is active in another process (pid {holder.get('pid')} on "
                    f"{holder.get('host', '?')}, since {holder.get('since', '?')}); wait for "
                    "it to finish or stop it first")
            session.execute(sql.SQL(
                "INSERT INTO {} (run_id, owner) VALUES (%s, %s) "
                "ON CONFLICT (run_id) DO UPDATE SET owner = excluded.owner"
            ).format(self.table(OWNERS_TABLE)), (run_id, orjson.dumps(owner).decode()))
        except BaseException:
            session.close()
            raise
        return PostgresOwnership(session)

    def _owner(self, session: psycopg.Connection[Any], run_id: str) -> dict[str, Any]:
        row = session.execute(sql.SQL("SELECT owner FROM {} WHERE run_id = %s").format(
            self.table(OWNERS_TABLE)), (run_id,)).fetchone()
        return row[0] if row and isinstance(row[0], dict) else {}

    def is_held(self, run_id: str) -> bool:
        """True if some session holds the run's ownership lock."""
        with self._session() as session:
            row = session.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND classid = %s AND objid = %s AND objsubid = 2 "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                (_OWN, _key(self.schema, run_id))).fetchone()
        return bool(row and row[0])

    def summaries(self) -> list[RunSummary]:
        """Every run, from its first line, oldest first."""
        found = []
        with self._session() as session:
            rows = session.execute(sql.SQL(
                "SELECT originator_id, state FROM {} WHERE originator_version = 1"
            ).format(self.table(EVENTS_TABLE))).fetchall()
        for run_id, state in rows:
            try:
                record = orjson.loads(bytes(state))
            except orjson.JSONDecodeError:
                continue
            summary = summary_of(record, run_id, f"{self.where} run {run_id}") \
                if isinstance(record, dict) else None
            if summary is not None:
                found.append(summary)
        return sorted(found, key=lambda s: (s.started_at, s.run_id))

    def latest_run(self, pipeline_path: Path) -> str:
        """The latest run of `pipeline_path` in the store."""
        return latest_of(self.summaries(), pipeline_path, self.where)

    def new_run_id(self) -> str:
        """A random id with no line yet."""
        while True:
            run_id = secrets.token_hex(6)
            if not self.select(run_id, gt=0, limit=1):
                return run_id

    def read_bytes(self, run_id: str) -> bytes:
        """The run's lines as a JSONL file's bytes."""
        events = self.select(check_run_id(run_id), gt=0)
        if not events:
            raise RunIdError(f"no run {run_id} in {self.where}")
        return b"".join(event.state + b"\n" for event in events)

    def note_in_index(self, entry: IndexEntry) -> None:
        """Append `entry` to the store's run index table, one writer at a time."""
        key = (_APPEND, _key(self.schema, "/run-index"))  # no run id holds a "/"
        with self._session() as session:
            session.execute("SELECT pg_advisory_lock(%s, %s)", key)
            try:
                row = session.execute(sql.SQL("SELECT line FROM {} ORDER BY seq DESC LIMIT 1")
                                      .format(self.table(INDEX_TABLE))).fetchone()
                seq, prev = next_position(bytes(row[0]) if row else None)
                session.execute(sql.SQL("INSERT INTO {} (seq, line) VALUES (%s, %s)").format(
                    self.table(INDEX_TABLE)), (seq, encode_entry(entry, seq, prev)))
            finally:
                session.execute("SELECT pg_advisory_unlock(%s, %s)", key)

    def index_bytes(self) -> bytes:
        """The run index, as the JSONL store would hold it."""
        with self._session() as session:
            rows = session.execute(sql.SQL("SELECT line FROM {} ORDER BY seq").format(
                self.table(INDEX_TABLE))).fetchall()
        return b"".join(bytes(row[0]) + b"\n" for row in rows)

    def close(self) -> None:
        """Close the connection pool."""
        self.datastore.close()

    # ---- beyond the contract -------------------------------------------------------------

    def select(self, run_id: str, *, gt: int, limit: int | None = None) -> Sequence[StoredEvent]:
        """Stored events of `run_id` after seq `gt`, in order."""
        try:
            events: Sequence[StoredEvent] = self.recorder.select_events(run_id, gt=gt,
                                                                        limit=limit)
        except PersistenceError as exc:
            raise StoreError(f"cannot read from the event store {self.where}: "
                             f"{_first_line(exc)}") from None
        return events

    def insert(self, run_id: str, first_seq: int, lines: Sequence[bytes]) -> None:
        """Store `lines` as seq `first_seq`, `first_seq + 1`, ... in one transaction."""
        stored = []
        for number, line in enumerate(lines, start=first_seq):
            event = orjson.loads(line)["event"]
            stored.append(StoredEvent(originator_id=run_id, originator_version=number,
                                      topic=TOPIC_PREFIX + event, state=line))
        try:
            self.recorder.insert_events(stored)
        except IntegrityError:
            raise StoreWriteError(
                f"{self.where}: run {run_id} already has a line {first_seq} or later: another "
                "process wrote to the run at the same time; nothing was written") from None
        except PersistenceError as exc:
            raise StoreWriteError(
                f"{self.where}: cannot write the run's events: {_first_line(exc)}; the run "
                "stopped and can be resumed once the cause is fixed") from None

    def import_lines(self, run_id: str, lines: Sequence[bytes]) -> None:
        """Store a whole run checked elsewhere (from a JSONL file); refuse an existing run."""
        self.check_new(run_id)
        self.insert(run_id, 1, lines)


class PostgresOwnership:
    """A session holding a run's ownership lock; closing it frees the run."""

    def __init__(self, session: psycopg.Connection[Any]) -> None:
        self._session = session

    @property
    def inherit_fds(self) -> tuple[int, ...]:
        """None: the lock lives in the database session, not in a descriptor."""
        return ()

    def release(self) -> None:
        """End the session (the database frees its advisory locks)."""
        with contextlib.suppress(psycopg.Error):
            self._session.close()


class PostgresRunLog:
    """One run's lines in PostgreSQL, read incrementally and appended in batches."""

    def __init__(self, store: PostgresStore, run_id: str) -> None:
        self.run_id = run_id
        self.seq = 0
        self.head = GENESIS
        self.lines = 0
        self.tail: Tail | None = None  # a transaction leaves no torn line
        self._store = store
        self._lock_session: psycopg.Connection[Any] | None = None
        self._changed = threading.Event()
        self._changed.set()
        self._watch: _Watch | None = None

    @property
    def where(self) -> str:
        """The store and the run."""
        return f"{self._store.where} run {self.run_id}"

    def read_new(self) -> Iterator[tuple[int, RecordedEvent]]:
        """Checked (line number, event) for every stored line after those seen."""
        self._changed.clear()
        for stored in self._store.select(self.run_id, gt=self.seq):
            line_no = self.lines + 1
            if stored.originator_version != self.seq + 1:
                raise RunFileError(self.where, line_no,
                                   f"stored as seq {stored.originator_version}, expected "
                                   f"{self.seq + 1}")
            try:
                event = check_line(stored.state, self.run_id, self.seq, self.head, self.lines)
            except LineError as exc:
                raise RunFileError(self.where, line_no, f"damaged line: {exc}") from None
            self.seq += 1
            self.lines += 1
            self.head = digest(stored.state)
            yield line_no, event

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the run's append lock (a session advisory lock; other writers wait)."""
        if self._lock_session is None:
            self._lock_session = self._store.session()
        session = self._lock_session
        key = (_APPEND, _key(self._store.schema, self.run_id))
        session.execute("SELECT pg_advisory_lock(%s, %s)", key)
        try:
            yield
        finally:
            with contextlib.suppress(psycopg.Error):
                session.execute("SELECT pg_advisory_unlock(%s, %s)", key)

    def append(self, events: Sequence[RecordedEvent]) -> list[bytes]:
        """Store `events` as one transaction; the (run, seq) key refuses a concurrent write."""
        if not events:
            return []
        lines, head = chained_lines(events, self.seq, self.head, self.where)
        self._store.insert(self.run_id, self.seq + 1, lines)
        self.seq += len(lines)
        self.lines += len(lines)
        self.head = head
        return lines

    def has_new(self) -> bool:
        """True once a notification says another process stored a line of this run."""
        if self._watch is None:
            self._watch = _Watch(self._store, self)
        if not self._watch.alive():
            # The subscription failed (the database went away): ask directly.
            return bool(self._store.select(self.run_id, gt=self.seq, limit=1))
        return self._changed.is_set()

    def notified(self, seq: int) -> None:
        """Called by the watcher for every stored line of this run."""
        if seq > self.seq:
            self._changed.set()

    def quarantine_tail(self) -> Path:
        """Never needed: a stored batch is all there or not at all."""
        raise StoreWriteError(f"{self.where}: no torn tail to set aside (internal error)")

    def close(self) -> None:
        """Stop watching and close the lock session."""
        if self._watch is not None:
            self._watch.stop()
            self._watch = None
        if self._lock_session is not None:
            with contextlib.suppress(psycopg.Error):
                self._lock_session.close()
            self._lock_session = None


class _Watch:
    """Follows the store's notifications (LISTEN/NOTIFY) in a thread of its own."""

    def __init__(self, store: PostgresStore, log: PostgresRunLog) -> None:
        self._log = log
        self._subscription = store.recorder.subscribe(gt=store.recorder.max_notification_id())
        self._thread = threading.Thread(target=self._follow, name=f"pt-watch-{log.run_id}",
                                        daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        with contextlib.suppress(Exception):  # a dead watcher makes has_new() poll instead
            for notification in self._subscription:
                if notification.originator_id == self._log.run_id:
                    self._log.notified(notification.originator_version)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._subscription.stop()
        self._thread.join(timeout=5)


def _key(schema: str, run_id: str) -> int:
    """A run's advisory lock key: 31 bits of the SHA-256 of its schema and id (advisory
    locks are per database; two runs sharing a key only share a lock, never lines)."""
    name = f"{schema}/{run_id}".encode()
    return int.from_bytes(hashlib.sha256(name).digest()[:4], "big") & 0x7FFF_FFFF


def _parse(url: str) -> tuple[dict[str, Any], str]:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    user = unquote(parts.username) if parts.username else getpass.getuser()
    conninfo = {
        "host": parts.hostname or "localhost",
        "port": parts.port or 5432,
        "user": user,
        "password": unquote(parts.password) if parts.password else "",
        "dbname": unquote(parts.path.lstrip("/")) or user,
    }
    schema = query.get("schema", ["public"])[0]
    return conninfo, schema


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
