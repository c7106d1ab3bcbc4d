"""Run ownership: what a second runner is told when the run's lock is taken.

A real process holds the `flock` while the lock file still names a runner that is gone — the
window between a new runner taking the lock and writing its name into it, or a dead runner's
job processes keeping the lock they inherited.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from pulsaride.engine.errors import RunLockedError
from pulsaride.engine.jsonl_store import RunLock

HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.readline()
if sys.argv[2] == "write":
    time.sleep(0.2)
    os.ftruncate(fd, 0)
    os.pwrite(fd, ('{"pid": %d, "host": "%s"}' % (os.getpid(), os.uname().nodename)).encode(), 0)
    print("written", flush=True)
    sys.stdin.readline()
"""


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def stale_lock(tmp_path: Path) -> Path:
    path = tmp_path / "r.lock"
    path.write_bytes(orjson.dumps({"pid": _dead_pid(), "host": os.uname().nodename}))
    return path


def _hold(path: Path, then: str) -> subprocess.Popen[str]:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), then], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    return holder


def _finish(holder: subprocess.Popen[str]) -> None:
    holder.communicate("\n\n")


def test_a_new_holder_not_yet_named_in_the_file_is_reported_as_active(stale_lock):
    holder = _hold(stale_lock, "write")
    try:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        with pytest.raises(RunLockedError) as refused:
            RunLock.acquire(stale_lock, {"pid": os.getpid()})
    finally:
        _finish(holder)
    assert "active in another process" in str(refused.value)
    assert f"pid {holder.pid}" in str(refused.value)


def test_a_gone_runner_whose_jobs_still_hold_the_lock_is_named(stale_lock):
    holder = _hold(stale_lock, "keep")
    try:
        with pytest.raises(RunLockedError) as refused:
            RunLock.acquire(stale_lock, {"pid": os.getpid()})
    finally:
        _finish(holder)
    assert "its runner" in str(refused.value) and "is gone" in str(refused.value)


def test_the_lock_is_taken_once_its_holder_lets_go(stale_lock):
    holder = _hold(stale_lock, "keep")
    _finish(holder)
    lock = RunLock.acquire(stale_lock, {"pid": os.getpid()})
    try:
        assert orjson.loads(stale_lock.read_bytes())["pid"] == os.getpid()
    finally:
        lock.release()
