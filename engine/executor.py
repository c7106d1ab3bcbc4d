"""Running job commands as local processes: the only place that starts processes.

Each job runs `/bin/sh -c COMMAND` in a session (process group) of its own, so a timeout or an
abort can stop the job and every child it spawned: SIGTERM to the group, SIGKILL after a grace
period. Processes that left the group are found by the attempt's tag (engine/process_tag.py)
and get the same signals. Output (stdout and stderr together) is masked, written to the job's
log file and passed to an observer line by line. One supervising thread per running job.
"""

from __future__ import annotations

import errno
import hashlib
import os
import queue
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from .masking import Masker
from .process_tag import new_tag, signal_attempt, tagged

KILL_GRACE_SECONDS = 5.0
DRAIN_SECONDS = 1.0
_POLL_SECONDS = 0.25
_MAX_PARTIAL = 64 * 1024

_READ_SIZE = 65536  # bytes of job output read at a time

OutputSink = Callable[[str, int, str], None]
"""Receives (job, attempt, one line of masked output)."""


@dataclass(frozen=True)
class Launch:
    """What to run for one attempt of a job."""

    job: str
    attempt: int
    command: str
    cwd: Path
    env: Mapping[str, str]
    log_path: Path
    timeout: float | None = None
    resources: Mapping[str, float] = field(default_factory=dict)  # for distributed executors


@dataclass(frozen=True)
class JobExit:
    """How an attempt ended."""

    job: str
    attempt: int
    exit_code: int
    error: str
    log_path: Path
    log_sha256: str
    stopped: bool = False  # ended because stop() was called


class Executor(Protocol):
    """What the runner needs from whatever runs job commands."""

    def launch(self, launch: Launch) -> None:
        """Start one attempt; its end is reported by `wait`."""

    def wait(self, timeout: float) -> list[JobExit]:
        """Attempts that ended, blocking up to `timeout` seconds for the first one."""

    def stop(self, job: str, reason: str) -> None:
        """Stop a running attempt (its whole process group)."""

    def running(self) -> int:
        """Number of attempts started and not yet reported by `wait`."""


class LocalExecutor:
    """Runs jobs as local processes, one supervising thread each."""

    def __init__(self, masker: Masker, on_output: OutputSink | None = None,
                 inherit_fds: Sequence[int] = (), kill_grace: float = KILL_GRACE_SECONDS) -> None:
        self._masker = masker
        self._on_output = on_output
        self._inherit_fds = tuple(inherit_fds)
        self._kill_grace = kill_grace
        self._exits: queue.Queue[JobExit] = queue.Queue()
        self._stops: dict[str, str] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def launch(self, launch: Launch) -> None:
        """Start the attempt in a supervising thread."""
        thread = threading.Thread(target=self._supervise, args=(launch,),
                                  name=f"job-{launch.job}", daemon=True)
        with self._lock:
            self._threads[launch.job] = thread
            self._stops.pop(launch.job, None)
        thread.start()

    def wait(self, timeout: float) -> list[JobExit]:
        """Ended attempts (at least one unless `timeout` passed first)."""
        exits = drain(self._exits, timeout)
        with self._lock:
            for ended in exits:
                self._threads.pop(ended.job, None)
        return exits

    def stop(self, job: str, reason: str) -> None:
        """Ask the job's supervisor to stop the process group (TERM, then KILL)."""
        with self._lock:
            if job in self._threads:
                self._stops.setdefault(job, reason)

    def running(self) -> int:
        """Attempts not yet collected by `wait`."""
        with self._lock:
            return len(self._threads)

    # ---- one attempt ---------------------------------------------------------------------

    def _supervise(self, launch: Launch) -> None:
        # Whatever happens here, the attempt's end is reported: a supervisor that died silently
        # would leave the runner waiting for it forever.
        try:
            ended = self._attempt(launch)
        except Exception as exc:
            ended = JobExit(launch.job, launch.attempt, 127,
                            f"pt could not run the job: {_describe(exc)}", launch.log_path,
                            hashlib.sha256(b"").hexdigest())
        self._exits.put(ended)

    def _attempt(self, launch: Launch) -> JobExit:
        launch.log_path.parent.mkdir(parents=True, exist_ok=True)
        # O_NOFOLLOW: a symbolic link planted at the log's path is refused, not written through.
        fd = os.open(launch.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW,
                     0o644)
        with os.fdopen(fd, "wb") as log:
            writer = LogWriter(log, self._masker, launch, self._on_output)
            tag = new_tag()
            try:
                proc = subprocess.Popen(
                    ["/bin/sh", "-c", launch.command], cwd=launch.cwd, env=tagged(launch.env, tag),
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                    start_new_session=True, pass_fds=self._inherit_fds,
                )
            except OSError as exc:
                writer.write(f"pt: cannot start the job: {exc}\n".encode())
                writer.close()
                return JobExit(launch.job, launch.attempt, 127,
                               f"cannot start: {exc.strerror or exc}", launch.log_path,
                               writer.sha256())
            watch = Watch(proc, launch, self._kill_grace, tag)
            try:
                outcome = self._watch(proc, watch, writer)
            except BaseException:
                # The log cannot be written (disk full...): stop the job rather than leave it.
                watch.kill()
                proc.wait()
                raise
            writer.close()
        return JobExit(launch.job, launch.attempt, outcome.exit_code, outcome.error,
                       launch.log_path, writer.sha256(), stopped=outcome.stopped)

    def _watch(self, proc: subprocess.Popen[bytes], watch: Watch, writer: LogWriter) -> Outcome:
        job = watch.job

        def stop_reason() -> str | None:
            with self._lock:
                return self._stops.get(job)

        return follow(proc, watch, writer.write, stop_reason)


def follow(proc: subprocess.Popen[bytes], watch: Watch, on_output: Callable[[bytes], None],
           stop_reason: Callable[[], str | None] = lambda: None) -> Outcome:
    """Pass `proc`'s output to `on_output` until it has exited and closed its output, while
    `watch` enforces the timeout and any stop asked for (`stop_reason`); how it ended."""
    assert proc.stdout is not None
    pipe = proc.stdout.fileno()
    pidfd = os.pidfd_open(proc.pid)
    with selectors.DefaultSelector() as selector:
        selector.register(pipe, selectors.EVENT_READ)
        selector.register(pidfd, selectors.EVENT_READ)
        while not (watch.exited and watch.pipe_closed):
            for key, _ in selector.select(watch.next_wakeup()):
                if key.fd == pipe:
                    data = os.read(pipe, _READ_SIZE)
                    if data:
                        on_output(data)
                    else:
                        selector.unregister(pipe)
                        watch.pipe_closed = True
                else:
                    selector.unregister(pidfd)
                    proc.wait()
                    watch.on_exit()
            watch.tick(stop_reason())
    watch.sweep()
    os.close(pidfd)
    proc.stdout.close()
    return watch.outcome()


def drain(exits: queue.Queue[JobExit], timeout: float) -> list[JobExit]:
    """Every ended attempt in `exits`, waiting up to `timeout` seconds for the first."""
    ended: list[JobExit] = []
    try:
        ended.append(exits.get(timeout=max(timeout, 0.0)))
    except queue.Empty:
        return ended
    while True:
        try:
            ended.append(exits.get_nowait())
        except queue.Empty:
            return ended


def _describe(exc: Exception) -> str:
    if isinstance(exc, OSError):
        if exc.errno == errno.ELOOP and exc.filename:
            return f"{exc.filename} is a symbolic link; refusing to write the log through it"
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    error: str
    stopped: bool


class Watch:
    """Timers of one attempt: timeout, stop request, KILL escalation, output drain.

    Signals go to the attempt's process group and, when the attempt carries a tag, to every
    process with that tag (those that left the group)."""

    def __init__(self, proc: subprocess.Popen[bytes], launch: Launch, grace: float,
                 tag: str | None = None) -> None:
        self.proc = proc
        self.job = launch.job
        self.tag = tag
        self.started = time.monotonic()
        self.deadline = self.started + launch.timeout if launch.timeout else None
        self.timeout = launch.timeout
        self.grace = grace
        self.exited = False
        self.pipe_closed = False
        self.kill_at: float | None = None
        self.drain_until: float | None = None
        self.abandon_at: float | None = None
        self.timed_out = False
        self.stop_reason: str | None = None

    def next_wakeup(self) -> float:
        marks = [m for m in (self.deadline, self.kill_at, self.drain_until, self.abandon_at)
                 if m is not None]
        soonest = min(marks, default=time.monotonic() + _POLL_SECONDS)
        return max(0.0, min(soonest - time.monotonic(), _POLL_SECONDS))

    def on_exit(self) -> None:
        self.exited = True
        self.drain_until = time.monotonic() + DRAIN_SECONDS

    def tick(self, stop_reason: str | None) -> None:
        now = time.monotonic()
        if self.kill_at is None and not self.exited:
            if self.deadline is not None and now >= self.deadline:
                self.timed_out = True
                self._terminate(now)
            elif stop_reason is not None:
                self.stop_reason = stop_reason
                self._terminate(now)
        if self.kill_at is not None and now >= self.kill_at:
            self._signal(signal.SIGKILL)
            self.kill_at = None
        if self.exited and not self.pipe_closed and self.drain_until and now >= self.drain_until:
            # The main process ended but children keep the output open: end the job's group.
            self._signal(signal.SIGKILL)
            self.drain_until = None
            self.abandon_at = now + DRAIN_SECONDS
        if self.abandon_at is not None and now >= self.abandon_at:
            # A process that left the job's group still holds the output: stop reading it.
            self.pipe_closed = True

    def _terminate(self, now: float) -> None:
        self._signal(signal.SIGTERM)
        self.kill_at = now + self.grace

    def sweep(self) -> None:
        """Once the attempt is over: after a timeout or a stop, nothing of it may live on (a
        process that ignored SIGTERM and let go of the output would otherwise)."""
        if self.timed_out or self.stop_reason is not None:
            self.kill()

    def kill(self) -> None:
        """SIGKILL everything of the attempt, in its group or not."""
        self._signal(signal.SIGKILL)

    def _signal(self, sig: signal.Signals) -> None:
        signal_attempt(self.proc.pid, self.tag, sig)

    def outcome(self) -> Outcome:
        code = self.proc.returncode
        if code < 0:
            exit_code = 128 - code
            error = f"killed by {signal.Signals(-code).name}"
        else:
            exit_code = code
            error = f"exit code {code}" if code else ""
        if self.timed_out:
            error = f"timed out after {self.timeout:g}s ({error or f'exit code {code}'})"
        elif self.stop_reason is not None:
            error = f"stopped: {self.stop_reason}"
        return Outcome(exit_code, error, self.stop_reason is not None)


class LogWriter:
    """Masks output line by line, writes it to the log and hands it to the observer."""

    def __init__(self, log: BinaryIO, masker: Masker, launch: Launch,
                 on_output: OutputSink | None) -> None:
        self._log = log
        self._masker = masker
        self._launch = launch
        self._on_output = on_output
        self._partial = b""
        self._hash = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self._partial += data
        *lines, self._partial = self._partial.split(b"\n")
        for line in lines:
            self._emit(line + b"\n")
        if len(self._partial) > _MAX_PARTIAL:  # a very long line: write what is safe now
            cut = self._masker.safe_cut(self._partial)
            self._emit(self._partial[:cut])
            self._partial = self._partial[cut:]

    def close(self) -> None:
        if self._partial:
            self._emit(self._partial)
            self._partial = b""
        self._log.flush()
        os.fsync(self._log.fileno())

    def sha256(self) -> str:
        return self._hash.hexdigest()

    def _emit(self, raw: bytes) -> None:
        masked = self._masker.data(raw)
        self._log.write(masked)
        self._hash.update(masked)
        if self._on_output is not None:
            text = masked.decode("utf-8", errors="replace").rstrip("\n")
            self._on_output(self._launch.job, self._launch.attempt, text)
