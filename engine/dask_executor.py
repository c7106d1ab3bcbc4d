"""Running job commands on a Dask distributed cluster (`--executor dask://HOST:PORT`).

The engine keeps everything that makes a run a run: the event log, the order, the parallelism
bound and the guarantees. Dask only carries one attempt at a time to a worker that offers the
job's `resources:`, runs `/bin/sh -c COMMAND` there in a session of its own (timeout: TERM,
then KILL), and streams the output back as structured events; this side masks it, writes the
attempt's log and reports the end like the local executor does.

A worker that dies mid-job must not make the scheduler run the attempt again somewhere else
behind the engine's back: the scheduler is told to allow no failures, so the task ends in
`KilledWorker` and the attempt FAILS (the job's retry policy decides what comes next, with a
new attempt recorded first). DONE therefore stays once-only.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import signal
import subprocess
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from distributed import Client, Future, get_worker

from .errors import ExecutorError
from .executor import (
    KILL_GRACE_SECONDS,
    JobExit,
    Launch,
    LogWriter,
    OutputSink,
    Watch,
    drain,
    follow,
)
from .lifetime import die_with_parent
from .masking import Masker
from .process_tag import TAG_VARIABLE, new_tag, signal_attempt, tagged

CONNECT_SECONDS = 10.0
OUTPUT_WAIT_SECONDS = 5.0
WORKER_DIED_EXIT = 255
# The runner's own environment plays the CI role for its jobs; these describe the runner's
# machine, not the worker's, and are left to the worker.
_MACHINE_VARIABLES = frozenset({
    "PATH", "HOME", "PWD", "OLDPWD", "SHELL", "USER", "LOGNAME", "HOSTNAME", "TMPDIR",
    "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "LD_LIBRARY_PATH", "PT_STATE_DIR",
})


class DaskExecutor:
    """Runs attempts as Dask tasks; the same contract as LocalExecutor."""

    def __init__(self, address: str, masker: Masker, on_output: OutputSink | None = None,
                 kill_grace: float = KILL_GRACE_SECONDS) -> None:
        self._address = address
        self._masker = masker
        self._on_output = on_output
        self._kill_grace = kill_grace
        self._exits: queue.Queue[JobExit] = queue.Queue()
        self._attempts: dict[str, _Attempt] = {}
        self._by_key: dict[str, _Attempt] = {}
        self._lock = threading.Lock()
        self._topic = f"pt-output-{uuid.uuid4().hex}"
        self._client = _connect(address)
        self._client.subscribe_topic(self._topic, self._on_event)

    def launch(self, launch: Launch) -> None:
        """Open the attempt's log here and submit the attempt to the cluster."""
        key = f"pt-{launch.job}-{launch.attempt}-{uuid.uuid4().hex[:12]}"
        attempt = _Attempt(launch, key)
        with self._lock:
            self._attempts[launch.job] = attempt
            self._by_key[key] = attempt
        try:
            attempt.open_log(self._masker, self._on_output)
            missing = self._unoffered(launch.resources)
            if missing:
                self._finish(attempt, 127, f"no Dask worker offers the resources {missing} "
                                           "the job needs")
                return
            spec = replace(launch, env=tagged(_portable(launch.env), attempt.tag))
            future = self._client.submit(
                run_attempt, spec, self._topic, key, self._kill_grace, key=key, pure=False,
                retries=0, resources=dict(launch.resources) or None)
        except Exception as exc:
            self._finish(attempt, 127, f"pt could not run the job on the Dask cluster: "
                                       f"{_describe(exc)}")
            return
        attempt.future = future
        future.add_done_callback(lambda done: self._ended(attempt, done))

    def wait(self, timeout: float) -> list[JobExit]:
        """Ended attempts (at least one unless `timeout` passed first)."""
        return drain(self._exits, timeout)

    def stop(self, job: str, reason: str) -> None:
        """Stop a running attempt: TERM its process group on its worker, KILL after grace."""
        with self._lock:
            attempt = self._attempts.get(job)
        if attempt is None or attempt.stop_reason is not None:
            return
        attempt.stop_reason = reason
        if attempt.pid is None or attempt.worker is None:
            if attempt.future is not None:
                attempt.future.cancel()  # not started on a worker yet
            return
        self._signal(attempt, signal.SIGTERM)
        timer = threading.Timer(self._kill_grace, self._signal, (attempt, signal.SIGKILL))
        timer.daemon = True
        timer.start()

    def running(self) -> int:
        """Attempts not yet reported by `wait`."""
        with self._lock:
            return len(self._attempts)

    def close(self) -> None:
        """Disconnect from the scheduler."""
        with contextlib.suppress(Exception):
            self._client.close(timeout=5)

    # ---- this side of an attempt -----------------------------------------------------------

    def _unoffered(self, resources: Mapping[str, float]) -> dict[str, float]:
        if not resources:
            return {}
        workers = self._client.scheduler_info(n_workers=-1).get("workers", {}).values()
        for worker in workers:
            offered = worker.get("resources") or {}
            if all(offered.get(name, 0) >= amount for name, amount in resources.items()):
                return {}
        return dict(resources)

    def _on_event(self, event: tuple[float, dict[str, Any]]) -> None:
        """Output and start notices of attempts, in the order their worker sent them."""
        message = event[1]
        with self._lock:
            attempt = self._by_key.get(str(message.get("key")))
        if attempt is None:
            return
        if "pid" in message:
            attempt.pid = int(message["pid"])
            attempt.worker = str(message["worker"])
            if attempt.stop_reason is not None:  # stopped while it was being started
                self._signal(attempt, signal.SIGTERM)
            return
        attempt.receive(int(message["n"]), bytes(message["data"]))

    def _ended(self, attempt: _Attempt, future: Future[dict[str, Any]]) -> None:
        """Report the attempt once its task ended, its output all written."""
        try:
            if future.cancelled():
                self._finish(attempt, 130, f"stopped: {attempt.stop_reason or 'cancelled'}")
                return
            error = future.exception()
            if error is not None:
                self._finish(attempt, *_failure(error))
                return
            result = future.result()
            attempt.await_output(int(result["chunks"]), OUTPUT_WAIT_SECONDS)
            code, text = int(result["exit_code"]), str(result["error"])
            if attempt.stop_reason is not None and code != 0:
                text = f"stopped: {attempt.stop_reason}"
            self._finish(attempt, code, text)
        except Exception as exc:  # whatever happens, the attempt's end is reported
            self._finish(attempt, 127, f"pt lost track of the job: {_describe(exc)}")

    def _finish(self, attempt: _Attempt, exit_code: int, error: str) -> None:
        with self._lock:
            if self._attempts.get(attempt.launch.job) is attempt:
                del self._attempts[attempt.launch.job]
            self._by_key.pop(attempt.key, None)
        digest = attempt.close_log(error if exit_code == WORKER_DIED_EXIT else "")
        self._exits.put(JobExit(attempt.launch.job, attempt.launch.attempt, exit_code, error,
                                attempt.launch.log_path, digest,
                                stopped=attempt.stop_reason is not None))

    def _signal(self, attempt: _Attempt, sig: signal.Signals) -> None:
        if attempt.pid is None or attempt.worker is None:
            return
        # A synchronous client cannot fire and forget (`wait=False` is refused), and this may be
        # called on the client's own event loop (a start notice): signal from a thread of its own.
        threading.Thread(target=self._signal_now, args=(attempt.pid, attempt.worker, attempt.tag,
                                                        sig), daemon=True).start()

    def _signal_now(self, pid: int, worker: str, tag: str, sig: signal.Signals) -> None:
        with contextlib.suppress(Exception):  # the worker may be gone: its job is gone with it
            self._client.run(signal_attempt, pid, tag, int(sig), workers=[worker])


@dataclass
class _Attempt:
    """One attempt as seen from the runner: its log, its worker, its output so far."""

    launch: Launch
    key: str
    future: Future[dict[str, Any]] | None = None
    pid: int | None = None
    worker: str | None = None
    stop_reason: str | None = None
    tag: str = field(default_factory=new_tag)  # carried by the attempt's processes
    writer: LogWriter | None = None
    received: int = 0
    early: dict[int, bytes] = field(default_factory=dict)
    lock: threading.Condition = field(default_factory=threading.Condition)

    def open_log(self, masker: Masker, on_output: OutputSink | None) -> None:
        path = self.launch.log_path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        self.writer = LogWriter(os.fdopen(fd, "wb"), masker, self.launch, on_output)

    def receive(self, number: int, data: bytes) -> None:
        """Write chunk `number` (chunks may only arrive in order, but do not rely on it)."""
        with self.lock:
            self.early[number] = data
            while self.received in self.early and self.writer is not None:
                self.writer.write(self.early.pop(self.received))
                self.received += 1
            self.lock.notify_all()

    def await_output(self, chunks: int, seconds: float) -> None:
        with self.lock:
            self.lock.wait_for(lambda: self.received >= chunks, timeout=seconds)

    def close_log(self, note: str) -> str:
        with self.lock:
            writer, self.writer = self.writer, None
        if writer is None:
            return hashlib.sha256(b"").hexdigest()
        with contextlib.suppress(OSError):
            if note:
                writer.write(f"\npt: {note}\n".encode())
            writer.close()
        return writer.sha256()


def _connect(address: str) -> Client:
    try:
        client = Client(address, timeout=CONNECT_SECONDS, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ExecutorError(f"cannot reach the Dask scheduler at {address}: "
                            f"{_describe(exc)}") from None
    try:
        client.run_on_scheduler(_allow_no_failures)
    except Exception as exc:
        client.close()
        raise ExecutorError(f"the Dask scheduler at {address} refused pt's setting "
                            f"(allowed-failures 0): {_describe(exc)}") from None
    return client


def _allow_no_failures(dask_scheduler: Any) -> None:
    """On the scheduler: a task whose worker died is failed, never run again elsewhere."""
    dask_scheduler.allowed_failures = 0


def _portable(env: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k not in _MACHINE_VARIABLES}


def _failure(error: BaseException) -> tuple[int, str]:
    if type(error).__name__ == "KilledWorker":
        return WORKER_DIED_EXIT, ("the Dask worker running the job died (KilledWorker); the "
                                  "attempt is failed, never run again behind pt's back")
    return 127, f"pt could not run the job on the Dask cluster: {_describe(error)}"


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# ---- the worker side -------------------------------------------------------------------------


def run_attempt(launch: Launch, topic: str, key: str, grace: float) -> dict[str, Any]:
    """On a worker: run the attempt's command, stream its output, return how it ended."""
    worker = get_worker()
    env = {**os.environ, **launch.env, "PT_WORKER": worker.address}
    tag = launch.env.get(TAG_VARIABLE)
    cwd = launch.cwd if launch.cwd.is_dir() else None
    proc = subprocess.Popen(
        ["/bin/sh", "-c", launch.command], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=die_with_parent)  # noqa: PLW1509 - only prctl, async-signal-safe
    worker.log_event(topic, {"key": key, "pid": proc.pid, "worker": worker.address})
    chunks = 0

    def send(data: bytes) -> None:
        nonlocal chunks
        worker.log_event(topic, {"key": key, "n": chunks, "data": data})
        chunks += 1

    outcome = follow(proc, Watch(proc, launch, grace, tag), send)
    return {"exit_code": outcome.exit_code, "error": outcome.error, "chunks": chunks}


