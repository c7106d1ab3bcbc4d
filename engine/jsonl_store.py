"""The JSONL store: the only code that opens, reads, writes, renames or syncs the files of a
state dir's runs folder (ADR 0018; tests/engine/test_storage_layer.py holds every other module
to it).

    <id>.jsonl         the run's lines            RunFile
    <id>.lock          the runner's ownership     RunLock
    <id>.seals.jsonl   seals of the chain head    append_seal, read_seals
    <id>.jsonl.tail-*  set-aside torn tails       RunFile.quarantine_tail
    <id>/              the pipeline file as run   keep_copy (job logs: the executors)

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
import secrets
import stat
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from .errors import BadInputError, RunFileError, RunIdError, RunLockedError, StoreWriteError
from .events import RunEvent, RunStarted
from .inputs import SEALS_FILE_BYTES, read_bounded
from .layout import StateDir, check_run_id, latest_of, seals_path, summary_of
from .lines import GENESIS, LineError, Tail, chained_lines, check_line, digest, looks_like_event
from .replay import replay
from .run_index import INDEX_FILE, IndexEntry, encode_entry, next_position
from .runstore import RunLog, RunOwnership, RunSummary
from .seal import Seal, check_seal_types

_READ_CHUNK = 8 * 1024 * 1024


# ---- the run file and its lock -------------------------------------------------------------


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
                    if looks_like_event(raw):
                        raise RunFileError(str(self.path), bad[0], f"damaged line: {bad[1]}")
                    continue
                try:
                    event = self._check(raw)
                except LineError as exc:
                    if looks_like_event(raw):
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


# ---- the store of a state dir -------------------------------------------------------------


class JsonlStore:
    """The runs of a state dir: one hash-chained JSONL file each, owned through `flock`."""

    def __init__(self, state: StateDir) -> None:
        self.state = state

    @property
    def where(self) -> str:
        """The runs folder."""
        return str(self.state.runs)

    def check_new(self, run_id: str) -> None:
        """RunIdError if the run's file holds a whole first line."""
        _unstarted_leftover(self.state.run_file(run_id), run_id)

    def create(self, run_id: str) -> tuple[RunLog, dict[str, Any] | None]:
        """Create the run file, first setting aside one a torn start left."""
        path = self.state.run_file(run_id)
        leftover = _set_aside_unstarted(path, run_id)
        return RunFile.create(path, run_id), leftover

    def open(self, run_id: str, *, writable: bool = False) -> RunLog:
        """Open the run file."""
        return RunFile.open(self.state.run_file(check_run_id(run_id)), run_id, writable=writable)

    def acquire(self, run_id: str, owner: dict[str, Any]) -> RunOwnership:
        """Take the run's lock file."""
        return RunLock.acquire(self.state.lock_file(run_id), owner)

    def is_held(self, run_id: str) -> bool:
        """True if a live process holds the run's lock file."""
        return RunLock.is_held(self.state.lock_file(run_id))

    def summaries(self) -> list[RunSummary]:
        """Every readable run in the state dir, oldest first."""
        found = []
        if not self.state.runs.is_dir():
            return []
        for path in self.state.runs.glob("*.jsonl"):
            record = read_first_record(path)
            summary = summary_of(record, path.stem, str(path)) if record else None
            if summary is not None:
                found.append(summary)
        return sorted(found, key=lambda s: (s.started_at, s.run_id))

    def latest_run(self, pipeline_path: Path) -> str:
        """The id of the most recently started run of `pipeline_path` in the state dir."""
        return latest_of(self.summaries(), pipeline_path, str(self.state.runs))

    def new_run_id(self) -> str:
        """A fresh random run id (12 hex digits) with no file yet."""
        while True:
            run_id = secrets.token_hex(6)
            if not self.state.run_file(run_id).exists():
                return run_id

    def read_bytes(self, run_id: str) -> bytes:
        """The run file's bytes (a torn tail included)."""
        path = self.state.run_file(check_run_id(run_id))
        if path.is_symlink():
            raise RunIdError(f"{path} is a symbolic link; refusing it")
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise RunIdError(f"no run {run_id} in {self.state.runs}") from None

    def note_in_index(self, entry: IndexEntry) -> None:
        """Append `entry` to the state dir's run index (locked, chained, synced)."""
        append_index_line(self.state.root / INDEX_FILE, entry)

    def index_bytes(self) -> bytes:
        """The state dir's run index (empty if it has none yet)."""
        path = self.state.root / INDEX_FILE
        if path.is_symlink():
            raise RunIdError(f"{path} is a symbolic link; refusing it")
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return b""

    def close(self) -> None:
        """Nothing stays open."""


_INDEX_TAIL_BYTES = 64 * 1024  # far more than one index line


def append_index_line(path: Path, entry: IndexEntry) -> None:
    """Append `entry` after the index's last line: read under the file's lock, so two
    processes appending at once still form one chain."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        start = max(0, size - _INDEX_TAIL_BYTES)
        tail = os.pread(fd, size - start, start)
        complete = tail[:tail.rfind(b"\n") + 1] if b"\n" in tail else b""
        last = complete.rstrip(b"\n").rpartition(b"\n")[2] or None
        if len(complete) < len(tail):  # a torn line from a crash: end it, keep it as damage
            os.write(fd, b"\n")
        seq, prev = next_position(last)
        os.write(fd, encode_entry(entry, seq, prev) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)


def _unstarted_leftover(path: Path, run_id: str) -> bytes | None:
    """The bytes of a run file that never got a whole first line (its runner died, or the
    machine lost power, while recording the run's start), None if there is no such file;
    RunIdError if the run did start."""
    if not path.exists() and not path.is_symlink():
        return None
    run_file = RunFile.open(path, run_id)  # refuses a symbolic link
    try:
        started = any(True for _ in run_file.read_new())
    finally:
        run_file.close()
    if started:
        raise RunIdError(f"run {run_id} already exists; use 'pt pipeline resume' to continue it")
    return run_file.tail.data if run_file.tail is not None else b""


def _set_aside_unstarted(path: Path, run_id: str) -> dict[str, Any] | None:
    """Move the file of a run that never recorded its start aside, as a torn tail would be
    (call holding the run lock); the TailQuarantined fields, or None if nothing was kept."""
    leftover = _unstarted_leftover(path, run_id)
    if leftover is None:
        return None
    if not leftover:
        path.unlink()
        return None
    digest = hashlib.sha256(leftover).hexdigest()
    side = path.with_name(f"{path.name}.tail-1-{digest[:12]}")
    path.replace(side)
    _fsync_dir(path.parent)
    return {"path": side.name, "size": len(leftover), "sha256": digest}


# ---- side files: the pipeline file as run, seals, evidence, logs --------------------------


def keep_copy(state: StateDir, run_id: str, name: str, data: bytes) -> Path:
    """Store `data` (a pipeline file as run) in the run's folder; return its relative path."""
    relative = Path(check_run_id(run_id)) / name
    target = state.runs / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_NOFOLLOW: a symbolic link planted at the copy's path is refused, not written
        # through (it could point at any file the user can write).
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RunIdError(f"{target} is a symbolic link; refusing to write through it"
                             ) from None
        raise
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return relative


def append_seal(path: Path, seal: Seal) -> None:
    """Add a seal (one line, locked, synced)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, orjson.dumps(asdict(seal)) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)


def read_seals(path: Path) -> tuple[list[Seal], list[str]]:
    """The seals in `path` and a message for each line that is not a well-formed seal."""
    seals: list[Seal] = []
    problems: list[str] = []
    if not path.exists():
        return seals, problems
    try:
        data = read_bounded(path, SEALS_FILE_BYTES, "seals file")
    except BadInputError as exc:
        return seals, [str(exc)]
    for number, line in enumerate(data.splitlines(), start=1):
        try:
            seal = Seal(**orjson.loads(line))
            check_seal_types(seal)
        except (orjson.JSONDecodeError, TypeError) as exc:
            problems.append(f"{path.name} line {number}: not a seal ({exc})")
        else:
            seals.append(seal)
    return seals, problems


def read_side_file(path: Path) -> bytes:
    """The bytes of one of a run's files (the caller has checked that it is one)."""
    return path.read_bytes()


def run_files(runs: Path, run_id: str) -> Iterator[tuple[str, Path]]:
    """Every file of a run: (path relative to the runs folder, path on disk)."""
    run_file = runs / f"{run_id}.jsonl"
    yield run_file.name, run_file
    seals = seals_path(run_file)
    if seals.is_file():
        yield seals.name, seals
    for side in sorted(runs.glob(f"{run_id}.jsonl.tail-*")):
        yield side.name, side
    folder = runs / run_id
    if folder.is_dir():
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
            yield str(path.relative_to(runs)), path


def log_tail(state: StateDir, relative: str | None, limit: int) -> str:
    """The last `limit` bytes of a job log (relative to the runs folder) as text; "" if the
    path leaves the runs folder or names no file."""
    if not relative:
        return ""
    path = (state.runs / relative).resolve()
    if not path.is_relative_to(state.runs.resolve()) or not path.is_file():
        return ""
    size = path.stat().st_size
    with path.open("rb") as handle:
        handle.seek(max(0, size - limit))
        return handle.read().decode("utf-8", errors="replace")


def runs_fingerprint(state: StateDir, run_id: str | None) -> str:
    """A value that changes when the run file (or any run file) grows or is rewritten."""
    paths = [state.run_file(run_id)] if run_id else sorted(state.runs.glob("*.jsonl")) \
        if state.runs.is_dir() else []
    parts = []
    for path in paths:
        try:
            status = path.stat()
        except OSError:
            continue
        parts.append(f"{path.name}:{status.st_size}:{status.st_mtime_ns}")
    return str(hash("|".join(parts)))


def unlisted_run_ids(state: StateDir, listed: set[str]) -> list[str]:
    """The ids of run files not in `listed` (their first line does not say which run they
    are), in name order."""
    found = []
    for path in sorted(state.runs.glob("*.jsonl")) if state.runs.is_dir() else []:
        run_id = path.stem
        if run_id in listed or not path.is_file():
            continue
        try:
            check_run_id(run_id)
        except RunIdError:
            continue
        found.append(run_id)
    return found


def exported_lines(path: Path) -> tuple[str, list[bytes]]:
    """The run id and lines of a stopped run's file at `path`, after checking the whole file
    (chain, sequence, transitions); refused if it is active or its last line is torn."""
    run_id = check_run_id(path.name.removesuffix(".jsonl"))
    if not stat.S_ISREG(path.stat().st_mode):
        raise BadInputError(f"{path}: not a regular file; give a run's .jsonl file")
    if RunLock.is_held(path.with_name(f"{run_id}.lock")):
        raise RunLockedError(f"run {run_id} is active; import it once its runner stopped")
    run_file = RunFile.open(path, run_id)
    try:
        replay(run_file)
        if run_file.tail is not None:
            raise RunFileError(str(path), run_file.tail.first_line_no,
                               "torn last line; resume the run (it sets the bytes aside) "
                               "before importing it")
        with path.open("rb") as handle:
            data = handle.read(run_file.offset)
    finally:
        run_file.close()
    return run_id, data.split(b"\n")[:-1]
