"""One contract, two stores: the JSONL files and the shared PostgreSQL database keep the same
line bytes, refuse the same mistakes and give a waiting runner the same signals.

Every test runs once per store (the `store` fixture); the events are those of a real run.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest

from pulsaride.engine.errors import RunFileError, RunIdError, RunLockedError, StoreWriteError
from pulsaride.engine.events import RunEvent, RunStarted
from pulsaride.engine.pgstore import EVENTS_TABLE, PostgresStore
from pulsaride.engine.replay import replay
from pulsaride.engine.run_index import IndexEntry, read_index
from pulsaride.engine.runstore import RunStore

Sample = tuple[bytes, list[RunEvent | RunStarted]]
OWNER = {"pid": 1, "host": "test", "user": "test", "since": "now"}


def _fill(store: RunStore, events: list[RunEvent | RunStarted], batch: int = 3) -> None:
    store.check_new("sample")
    lock = store.acquire("sample", OWNER)
    log, leftover = store.create("sample")
    assert leftover is None
    try:
        for start in range(0, len(events), batch):
            with log.locked():
                log.append(events[start:start + batch])
    finally:
        log.close()
        lock.release()


def test_appended_lines_are_byte_for_byte_the_lines_of_a_run_file(store: RunStore,
                                                                   sample_run: Sample) -> None:
    data, events = sample_run
    _fill(store, events)
    assert store.read_bytes("sample") == data


def test_a_fresh_reader_replays_every_line_in_order(store: RunStore, sample_run: Sample) -> None:
    _, events = sample_run
    _fill(store, events)
    log = store.open("sample")
    try:
        numbers = [number for number, _ in log.read_new()]
        assert numbers == list(range(1, len(events) + 1))
        assert (log.seq, log.lines, log.tail) == (len(events), len(events), None)
    finally:
        log.close()
    log = store.open("sample")
    try:
        run = replay(log)
    finally:
        log.close()
    assert run.jobs["b"].status.value == "FAILED" and run.jobs["gate"].status.value == "WAITING"


def test_an_existing_run_cannot_be_created_again_and_an_unknown_one_not_opened(
        store: RunStore, sample_run: Sample) -> None:
    _fill(store, sample_run[1])
    with pytest.raises(RunIdError, match="already exists"):
        store.check_new("sample")
    with pytest.raises(RunIdError, match="no run other"):
        store.open("other")
    assert store.new_run_id() != "sample"


def test_a_writer_that_did_not_catch_up_is_refused_and_writes_nothing(
        store: RunStore, sample_run: Sample) -> None:
    data, events = sample_run
    _fill(store, events[:4])
    first, second = store.open("sample", writable=True), store.open("sample", writable=True)
    try:
        for log in (first, second):
            list(log.read_new())
        with first.locked():
            first.append(events[4:6])
        with pytest.raises(StoreWriteError), second.locked():
            second.append(events[4:6])  # the same seqs again, chained to a stale head
    finally:
        first.close()
        second.close()
    assert store.read_bytes("sample") == b"".join(
        line + b"\n" for line in data.splitlines()[:6])


def test_a_reader_sees_lines_another_writer_appended(store: RunStore, sample_run: Sample) -> None:
    _, events = sample_run
    _fill(store, events[:4])
    watcher, writer = store.open("sample", writable=True), store.open("sample", writable=True)
    try:
        list(watcher.read_new())
        list(writer.read_new())
        assert _settles(lambda: not watcher.has_new())
        with writer.locked():
            writer.append(events[4:5])
        assert _settles(watcher.has_new), "the new line was not noticed"
        assert [n for n, _ in watcher.read_new()] == [5]
        assert _settles(lambda: not watcher.has_new())
    finally:
        watcher.close()
        writer.close()


def test_the_append_lock_makes_writers_wait(store: RunStore, sample_run: Sample) -> None:
    _fill(store, sample_run[1][:2])
    first, second = store.open("sample", writable=True), store.open("sample", writable=True)
    entered = threading.Event()

    def other_writer() -> None:
        with second.locked():
            entered.set()

    try:
        with first.locked():
            thread = threading.Thread(target=other_writer)
            thread.start()
            assert not entered.wait(0.5), "a second writer got the lock while it was held"
        assert entered.wait(5), "the second writer never got the lock"
        thread.join()
    finally:
        first.close()
        second.close()


def test_one_owner_at_a_time_and_ownership_ends_with_release(store: RunStore,
                                                             sample_run: Sample) -> None:
    _fill(store, sample_run[1][:2])
    assert not store.is_held("sample")
    lock = store.acquire("sample", {**OWNER, "pid": 4242})
    try:
        assert store.is_held("sample")
        with pytest.raises(RunLockedError, match="4242"):
            store.acquire("sample", OWNER)
    finally:
        lock.release()
    assert not store.is_held("sample")
    store.acquire("sample", OWNER).release()


def test_runs_are_listed_and_the_latest_of_a_file_found(store: RunStore,
                                                        sample_run: Sample) -> None:
    _fill(store, sample_run[1])
    [summary] = store.summaries()
    assert summary.run_id == "sample" and summary.started_by
    assert store.latest_run(Path(summary.pipeline_path)) == "sample"
    with pytest.raises(RunIdError.__base__):  # RunNotFoundError is a BadInputError
        store.latest_run(Path("/elsewhere/p.yml"))


def test_an_edited_line_is_refused_on_read(store: RunStore, sample_run: Sample,
                                           request: pytest.FixtureRequest) -> None:
    data, events = sample_run
    _fill(store, events)
    original = data.splitlines()[2]
    edited = original.replace(b'"echo', b'"ECHO') if b'"echo' in original else \
        original.replace(b'"at":"', b'"at":"1')
    assert edited != original
    _tamper(store, request, 3, edited)
    log = store.open("sample")
    try:
        with pytest.raises(RunFileError, match=r"line [34]"):
            list(log.read_new())
    finally:
        log.close()


def _tamper(store: RunStore, request: pytest.FixtureRequest, seq: int, line: bytes) -> None:
    """Change line `seq` behind the store's back, as an attacker with write access would."""
    if request.node.callspec.params["store"] == "jsonl":
        path = Path(store.where) / "sample.jsonl"
        lines = path.read_bytes().splitlines()
        lines[seq - 1] = line
        path.write_bytes(b"\n".join(lines) + b"\n")
        return
    assert isinstance(store, PostgresStore)
    with psycopg.connect(**store.conninfo, autocommit=True) as connection:
        connection.execute(
            f'UPDATE "{store.schema}"."{EVENTS_TABLE}" SET state = %s '
            "WHERE originator_id = 'sample' AND originator_version = %s", (line, seq))


def _settles(condition: object, seconds: float = 3.0) -> bool:
    assert callable(condition)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_index_entries_appended_at_once_form_one_chain(store: RunStore) -> None:
    """Four writers (threads, each with its own file handle or database session) append 25
    entries each: one chain of 100 lines, none lost, none out of order."""
    def writer(number: int) -> None:
        other = store if number == 0 else _same_store(store)
        for seq in range(25):
            other.note_in_index(IndexEntry("checkpoint", f"w{number}", seq + 1, "0" * 64,
                                           "2026-12-04T00:00:00.000000Z"))
        if other is not store:
            other.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    entries, findings = read_index(store.index_bytes())
    assert findings == []
    assert len(entries) == 100
    for number in range(4):
        assert [e.lines for _, e in entries if e.run_id == f"w{number}"] == list(range(1, 26))


def _same_store(store: RunStore) -> RunStore:
    """Another handle on the same store (a database session of its own)."""
    if isinstance(store, PostgresStore):
        return PostgresStore.connect(store.url)
    return store
