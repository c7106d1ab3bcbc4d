"""One piece of work done in a forked process while this process does another.

The two sides of a comparison (`pt validate hash`) are read, made canonical and hashed
independently. That is Python work, which one process does on one core; forking one side off
lets both cores (and both database servers) work at once.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, Generic, TypeVar

from pulsaride.engine.errors import PulsarideError
from pulsaride.engine.lifetime import die_with_parent

T = TypeVar("T")


class ForkedError(PulsarideError):
    """The forked process ended without an answer (killed, out of memory)."""


class Forked(Generic[T]):
    """`work()` running in a forked child; `result()` waits for its value or raises its error.

    The child inherits this process's memory, open connections included: `work` must open the
    connections it uses and leave the inherited ones alone (SQLAlchemy: `engine.dispose(
    close=False)` first). The child dies with this process.
    """

    def __init__(self, work: Callable[[], T]) -> None:
        context = multiprocessing.get_context("fork")
        self._answers, answer = context.Pipe(duplex=False)
        self._process = context.Process(target=_answer, args=(work, answer),
                                        name="pt-forked", daemon=True)
        self._process.start()
        answer.close()

    def result(self) -> T:
        """The value `work()` returned; its exception if it raised one."""
        try:
            ok, value = self._answers.recv()
        except EOFError:
            self._process.join()
            raise ForkedError(f"a helper process ended without an answer (exit code "
                              f"{self._process.exitcode})") from None
        self._process.join()
        if not ok:
            raise value
        result: T = value
        return result

    def __enter__(self) -> Forked[T]:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the child if it still runs (this process gave up on its answer)."""
        if self._process.is_alive():
            self._process.kill()
        self._process.join()
        self._answers.close()


def _answer(work: Callable[[], Any], answer: Connection) -> None:
    die_with_parent()
    try:
        outcome: tuple[bool, Any] = (True, work())
    except BaseException as exc:  # handed over to the parent, raised there
        outcome = (False, exc)
    try:
        answer.send(outcome)
    except Exception:  # an error that cannot be pickled: its text then
        error = outcome[1]
        answer.send((False, RuntimeError(f"{type(error).__name__}: {error}")))
