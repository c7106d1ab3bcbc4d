"""What the use cases take from the outside world: the clock, who acts, and the executor.

Replaced in tests; `Services()` is the real world.
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .errors import BadInputError, ExecutorError
from .executor import Executor, LocalExecutor
from .masking import Masker
from .runner import Clock, NullObserver, RunObserver
from .runstore import RunOwnership

ExecutorFactory = Callable[[Masker, RunObserver, RunOwnership], Executor]


def utc_now() -> datetime:
    """The default clock."""
    return datetime.now(UTC)


def tool_version() -> str:
    """The installed version of pt."""
    from importlib import metadata  # noqa: PLC0415 - costs 20 ms at start-up; needed rarely

    try:
        return metadata.version("pulsaride")
    except metadata.PackageNotFoundError:
        return "0+unknown"


@dataclass(frozen=True)
class Identity:
    """Who acts, from where."""

    user: str
    host: str
    pid: int

    @classmethod
    def local(cls, user: str | None = None) -> Identity:
        """This process, acting as `user` (default: the OS user)."""
        return cls(user=user or _os_user(), host=socket.gethostname(), pid=os.getpid())


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid-{os.getuid()}"


@dataclass(frozen=True)
class Services:
    """What the use cases need from the outside world (replaced in tests)."""

    observer: RunObserver = field(default_factory=NullObserver)
    clock: Clock = utc_now
    identity: Identity | None = None
    executor_factory: ExecutorFactory | None = None
    seal_key: Ed25519PrivateKey | None = None  # sign the head at every checkpoint

    def who(self) -> Identity:
        """The acting identity."""
        return self.identity or Identity.local()

    def executor_for(self, url: str | None) -> ExecutorFactory:
        """The executor factory given, else the one `url` names."""
        return self.executor_factory or executor_for(url)


def executor_for(url: str | None) -> ExecutorFactory:
    """Local processes (no URL), or the Dask scheduler at dask://HOST:PORT."""
    if not url or url == "local":
        return _local_executor
    if url.startswith("dask://") or url.startswith("tcp://"):
        address = "tcp://" + url.split("://", 1)[1]

        def dask_executor(masker: Masker, observer: RunObserver, lock: RunOwnership) -> Executor:
            try:
                from .dask_executor import DaskExecutor  # noqa: PLC0415 - only when asked
            except ImportError:
                raise ExecutorError("the Dask executor needs the 'distributed' package: "
                                    "pip install 'pulsaride[dask]'") from None
            return DaskExecutor(address, masker, on_output=observer.job_output)

        return dask_executor
    raise BadInputError(f"unsupported executor {url!r}: give dask://HOST:PORT, or nothing for "
                        "local processes")


def _local_executor(masker: Masker, observer: RunObserver, lock: RunOwnership) -> Executor:
    return LocalExecutor(masker, on_output=observer.job_output, inherit_fds=lock.inherit_fds)
