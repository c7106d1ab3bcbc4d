"""Reading the source fast: plain driver rows, and batches read one step ahead in a thread."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Select
from sqlalchemy.engine import CursorResult
from sqlalchemy.engine.cursor import CursorFetchStrategy
from sqlalchemy.exc import DBAPIError

T = TypeVar("T")


def fetch_all(connection: Connection, query: Select[Any]) -> Sequence[Sequence[Any]]:
    """Every row of `query`, as the driver gives them (plain tuples: building SQLAlchemy Row
    objects would cost about as much as reading the rows)."""
    result = connection.execute(query)
    if not (isinstance(result, CursorResult) and result.cursor is not None
            and type(result.cursor_strategy) is CursorFetchStrategy):
        return result.all()
    dbapi_error = connection.dialect.loaded_dbapi.Error
    try:
        rows: Sequence[Sequence[Any]] = result.cursor.fetchall()
    except dbapi_error as exc:
        raise DBAPIError.instance(str(query), None, exc, dbapi_error) from exc
    finally:
        result.close()
    return rows


class Prefetch(Generic[T]):
    """Runs a generator of batches one step ahead in a thread, so reading and transforming
    the next batch overlaps writing this one (the target's server works meanwhile).

    Batches come out in order; an exception of the generator comes out where it happened,
    after the batches before it. `close()` stops the thread (at its next batch).
    """

    _END = object()

    def __init__(self, batches: Iterator[T], ahead: int = 1) -> None:
        self._batches = batches
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=ahead)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pt-migrate-reader",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for batch in self._batches:
                if not self._put(batch):
                    return
        except BaseException as exc:  # handed over to the consumer, raised there
            self._put(_Raised(exc))
            return
        self._put(self._END)

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if isinstance(item, _Raised):
                raise item.error
            yield item

    def close(self) -> None:
        """Stop reading ahead and wait for the thread (it ends after its current batch)."""
        self._stop.set()
        self._thread.join()


@dataclass(frozen=True)
class _Raised:
    error: BaseException
