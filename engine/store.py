"""The run files on disk: the only code that reads or writes `<state>/pipeline-runs/<id>.jsonl`.

Writes: one `write()` per batch of lines, under an exclusive `flock` on the file, followed by
`fdatasync` before the caller acts on what was written. Reads: lines are checked as they are
read (sequence, hash chain, run id, known event). Bytes after the last good line that hold no
good line themselves are a torn tail: reported, and moved aside (quarantined) by a writer.
A bad line followed by good lines is damage in the middle and is refused, never skipped.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .errors import RunFileError, RunIdError, RunLockedError, StoreWriteError
from .events import RunEvent, RunStarted
from .lines import GENESIS, LineError, decode, digest, encode

RUNS_FOLDER = "pipeline-runs"
# 1-64 letters, digits, '_', '.', '-'; a letter or digit first; never '..' (also the pattern
# of the dashboard's OpenAPI document, so it is written without look-arounds).
RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*\.?$"
RUN_ID_MAX = 64
_RUN_ID = re.compile(RUN_ID_PATTERN)
RESERVED_SEGMENTS = frozenset({"jsonl", "lock", "seals"})
"""Words no dot-separated part of a run id after the first may be (in any case), because the
store names a run's side files by adding them to the id: `<id>.jsonl`, `<id>.lock`,
`<id>.seals.jsonl`, `<id>.jsonl.tail-<n>-<digest>`, and the folder `<id>/`. Without them no
id's file or folder can be another id's side file (ADR 0016)."""
_READ_CHUNK = 8 * 1024 * 1024


def chained_lines(events: Sequence[RunEvent | RunStarted], seq: int, head: str,
                  where: str) -> tuple[list[bytes], str]:
    """The lines of `events`, which must follow line `seq`, each chained to the one before
    (the first to `head`); and the new head. Shared by every store."""
    lines: list[bytes] = []
    for event in events:
        if event.originator_version != seq + len(lines) + 1:
            raise StoreWriteError(f"{where}: event out of sequence (internal error)")
        line = encode(event, head)
        head = digest(line)
        lines.append(line)
    return lines, head


def check_run_id(run_id: str) -> str:
    """Return `run_id` if it is a safe file-name-like id that names no other run's side file;
    raise RunIdError otherwise."""
    if len(run_id) > RUN_ID_MAX or not _RUN_ID.match(run_id):
        raise RunIdError(
            f"invalid run id {run_id!r}: use 1-64 letters, digits, '_', '.', '-' "
            "(no path separators, no '..')")
    reserved = [part for part in run_id.split(".")[1:] if part.lower() in RESERVED_SEGMENTS]
    if reserved:
        raise RunIdError(
            f"invalid run id {run_id!r}: '.{reserved[0]}' is reserved for the store's own "
            "files (<id>.jsonl, <id>.lock, <id>.seals.jsonl, <id>.jsonl.tail-*)")
    return run_id


@dataclass(frozen=True)
class Tail:
    """Bytes after the last good line: a torn or garbled write."""

    offset: int
    data: bytes
    first_line_no: int

    @property
    def sha256(self) -> str:
        """Digest of the tail bytes."""
        return hashlib.sha256(self.data).hexdigest()


class RunFile:
    """One run's append-only JSONL file, read and written incrementally."""

    def __init__(self, path: Path, run_id: str, fd: int) -> None:
        self.path = path
        self.run_id = run_id
        self._fd = fd
        self.offset = 0  # bytes of good lines read or written so far
        self.seq = 0
        self.head = GENESIS
        self.lines = 0
        self.tail: Tail | None = None

    @classmethod
    def create(cls, path: Path, run_id: str) -> RunFile:
        """Create the file for a new run; refuse if it exists."""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            raise RunIdError(f"run {run_id} already exists ({path})") from None
        _fsync_dir(path.parent)
        return cls(path, run_id, fd)

    @classmethod
    def open(cls, path: Path, run_id: str, *, writable: bool = False) -> RunFile:
        """Open an existing run file for reading (and appending, if `writable`)."""
        flags = os.O_RDWR | os.O_APPEND if writable else os.O_RDONLY
        try:
            fd = os.open(path, flags | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise RunIdError(f"no run {run_id} in {path.parent}") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise RunIdError(f"{path} is a symbolic link; refusing it") from None
            raise
        return cls(path, run_id, fd)

    @property
    def where(self) -> str:
        """Where the run's lines are, for messages."""
        return str(self.path)

    def has_new(self) -> bool:
        """True if another process appended (or tore) bytes since the last read or write."""
        return self.size() != self.offset

    def close(self) -> None:
        """Release the file descriptor (once: a number closed twice may be another file's)."""
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1

    # ---- reading ---------------------------------------------------------------------

    def read_new(self) -> Iterator[tuple[int, RunEvent | RunStarted]]:
        """Yield (line number, event) for every good line after what was read so far.

        When the generator ends, `self.tail` describes any bytes left after the last good line.
        """
        self.tail = None
        pending = b""
        position = self.offset
        bad: tuple[int, str] | None = None
        while True:
            chunk = os.pread(self._fd, _READ_CHUNK, position)
            if not chunk:
                break
            position += len(chunk)
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for raw in complete:
                line_no = self.lines + 1
                if bad is not None:
                    if _looks_like_event(raw):
                        raise RunFileError(str(self.path), bad[0], f"damaged line: {bad[1]}")
                    continue
                try:
                    event = self._check(raw)
                except LineError as exc:
                    if _looks_like_event(raw):
                        # A whole line that parses as an event is never a torn write: it is
                        # damage (an edit of the line before it, a duplicate, a reorder).
                        raise RunFileError(str(self.path), line_no,
                                           f"damaged line: {exc}") from None
                    bad = (line_no, str(exc))
                    continue
                self.offset += len(raw) + 1
                self.lines += 1
                self.seq = event.originator_version
                self.head = digest(raw)
                yield line_no, event
        if position > self.offset:
            data = os.pread(self._fd, position - self.offset, self.offset)
            self.tail = Tail(offset=self.offset, data=data, first_line_no=self.lines + 1)

    def _check(self, raw: bytes) -> RunEvent | RunStarted:
        return check_line(raw, self.run_id, self.seq, self.head, self.lines)

    # ---- writing ---------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the file's exclusive append lock (other writers wait)."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def size(self) -> int:
        """Current size of the file on disk."""
        return os.fstat(self._fd).st_size

    def append(self, events: Sequence[RunEvent | RunStarted]) -> list[bytes]:
        """Write `events` as one batch and sync it; call under `locked()`, caught up."""
        if not events:
            return []
        if self.size() != self.offset:
            raise StoreWriteError(f"{self.path}: not caught up before appending (internal error)")
        lines, head = chained_lines(events, self.seq, self.head, str(self.path))
        data = b"\n".join(lines) + b"\n"
        self._write_durably(data)
        self.offset += len(data)
        self.seq += len(lines)
        self.lines += len(lines)
        self.head = head
        return lines

    def _write_durably(self, data: bytes) -> None:
        try:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fdatasync(self._fd)
        except OSError as exc:
            # Leave no partial line behind; if even that fails, the tail is quarantined later.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self.offset)
            raise StoreWriteError(
                f"{self.path}: cannot write the run's events durably: {exc.strerror}; "
                "the run stopped and can be resumed once the cause is fixed") from None

    def quarantine_tail(self) -> Path:
        """Move the torn tail to a side file and cut it from the run file; call under lock."""
        tail = self.tail
        assert tail is not None
        side = self.path.with_name(f"{self.path.name}.tail-{tail.first_line_no}-{tail.sha256[:12]}")
        try:
            fd = os.open(side, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StoreWriteError(f"{side} is a symbolic link; refusing to write through "
                                      "it") from None
            raise
        try:
            view = memoryview(tail.data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        # The side file and its name are durable before the bytes leave the run file.
        _fsync_dir(self.path.parent)
        os.ftruncate(self._fd, tail.offset)
        os.fsync(self._fd)
        self.tail = None
        return side


class RunLock:
    """Exclusive ownership of a run by one runner process (held until the process ends).

    The lock is a `flock` on `<id>.lock`; the kernel frees it when every holder is gone. Job
    processes inherit it, so a run cannot be resumed while jobs of a dead runner still run.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd

    @classmethod
    def acquire(cls, path: Path, owner: dict[str, Any]) -> RunLock:
        """Take the lock or raise RunLockedError describing the current holder."""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise RunIdError(f"{path} is a symbolic link; refusing it") from None
            raise
        if not _try_lock(fd):
            holder = _settled_holder(fd)
            if holder is not None:
                os.close(fd)
                raise RunLockedError(_locked_message(path, holder))
        os.ftruncate(fd, 0)
        os.pwrite(fd, orjson.dumps(owner) + b"\n", 0)
        os.set_inheritable(fd, True)
        return cls(path, fd)

    @staticmethod
    def is_held(path: Path) -> bool:
        """True if some live process holds the lock at `path`."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    @property
    def inherit_fds(self) -> tuple[int, ...]:
        """Descriptors job processes inherit, so they keep the run owned while they live."""
        return (self.fd,)

    def release(self) -> None:
        """Give the lock up."""
        with contextlib.suppress(OSError):
            os.close(self.fd)


def check_line(raw: bytes, run_id: str, seq: int, head: str, lines: int) -> RunEvent | RunStarted:
    """The event of the line after line `lines` (whose seq and digest are `seq` and `head`);
    LineError unless it is well formed, in sequence, chained and of run `run_id`."""
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise LineError("not a JSON line") from None
    if not isinstance(record, dict):
        raise LineError("not a JSON object")
    if record.get("seq") != seq + 1:
        raise LineError(f"seq is {record.get('seq')!r}, expected {seq + 1}")
    if record.get("prev") != head:
        raise LineError(f"prev does not match the SHA-256 of line {lines} (chain broken: "
                        f"line {lines} was changed, or lines were removed or "
                        "inserted before this one)")
    if record.get("pipeline_run_id") != run_id:
        raise LineError(f"belongs to run {record.get('pipeline_run_id')!r}, not {run_id!r}")
    if (seq == 0) != (record.get("event") == "RunStarted"):
        raise LineError("a run file starts with RunStarted, and only there")
    return decode(record)


def _read_owner(fd: int) -> dict[str, Any]:
    try:
        owner = orjson.loads(os.pread(fd, 4096, 0) or b"{}")
    except orjson.JSONDecodeError:
        return {}
    return owner if isinstance(owner, dict) else {}


def _settled_holder(fd: int, patience: float = 1.0) -> dict[str, Any] | None:
    """The holder of the lock on `fd`, or None if the lock was taken after all.

    A recorded runner that is gone is either a runner that left job processes behind, one
    that just exited (its lock goes with it), or the previous owner of a lock that a new
    runner took but has not yet written its name into: look again for a moment before
    blaming job processes."""
    holder = _read_owner(fd)
    deadline = time.monotonic() + patience
    while _gone(holder) and time.monotonic() < deadline:
        if _try_lock(fd):
            return None
        time.sleep(0.02)
        holder = _read_owner(fd)
    return holder


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _gone(holder: dict[str, Any]) -> bool:
    """True if the lock's recorded runner is a process of this host that no longer exists
    (a zombie still counts as existing: its files, the lock among them, are closed first)."""
    pid = holder.get("pid")
    local = holder.get("host", "?") == os.uname().nodename
    return isinstance(pid, int) and local and not _pid_alive(pid)


def _locked_message(path: Path, holder: dict[str, Any]) -> str:
    run_id = path.stem
    pid = holder.get("pid")
    host = holder.get("host", "?")
    if _gone(holder):
        return (f"run {run_id} is still locked: its runner (pid {pid}) is gone, but job "
                "processes it started are still running; wait for them or stop them")
    return (f"run {run_id} is active in another process (pid {pid} on {host}, since "
            f"{holder.get('since', '?')}); wait for it to finish or stop it first")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _looks_like_event(raw: bytes) -> bool:
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return isinstance(record, dict) and "seq" in record and "event" in record


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_first_record(path: Path) -> dict[str, Any] | None:
    """The parsed first line of a run file, or None if it has none or it is unreadable."""
    try:
        with path.open("rb") as handle:
            first = handle.readline(16 * 1024 * 1024)
    except OSError:
        return None
    if not first.endswith(b"\n"):
        return None
    try:
        record = orjson.loads(first)
    except orjson.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None
