"""Forked: the other side of a comparison in a child process — its value or its error comes
back, a child that dies is an error (not a hang), and no child outlives a killed parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from pulsaride.engine.errors import BadInputError
from pulsaride.migration.forked import Forked, ForkedError


def test_the_value_comes_back_from_another_process() -> None:
    forked = Forked(lambda: (os.getpid(), {"bucket": [1, 2]}))
    try:
        pid, value = forked.result()
    finally:
        forked.close()
    assert pid != os.getpid()
    assert value == {"bucket": [1, 2]}


def test_an_error_comes_back_as_it_was_raised() -> None:
    def fail() -> None:
        raise BadInputError("the target table people does not exist")

    with Forked(fail) as forked, pytest.raises(BadInputError, match="people does not exist"):
        forked.result()


def test_an_error_that_cannot_be_pickled_comes_back_as_its_text() -> None:
    class Local(Exception):  # a local class cannot be pickled
        pass

    def fail() -> None:
        raise Local("odd")

    with Forked(fail) as forked, pytest.raises(RuntimeError, match="Local: odd"):
        forked.result()


def test_a_child_that_dies_is_an_error_not_a_hang() -> None:
    with (Forked(lambda: os.kill(os.getpid(), signal.SIGKILL)) as forked,
          pytest.raises(ForkedError, match="ended without an answer")):
        forked.result()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead: its parent (here: init, after the parent died) reaps it.
    status = Path(f"/proc/{pid}/stat")
    return status.exists() and status.read_text().split()[2] != "Z"


def test_no_child_outlives_a_killed_parent(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent("""
        import os, sys, time
        from pulsaride.migration.forked import Forked
        def child():
            print(os.getpid(), flush=True)
            time.sleep(600)
        forked = Forked(child)
        time.sleep(600)
    """))
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    out = parent.stdout
    assert out is not None
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(out.readline()))
    reader.start()
    reader.join(timeout=60)
    child = int(line[0])
    try:
        assert _alive(child)
        parent.kill()
        parent.wait(timeout=60)
        deadline = time.monotonic() + 30
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), "the child outlived its killed parent"
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)
