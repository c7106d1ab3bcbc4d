"""Finding every process an attempt started, even one that left the attempt's process group.

Each attempt's environment carries a tag of its own (`PT_PROCESS_TAG`); processes inherit it,
so one that `setsid`, double-forked or daemonized away from the job's group can still be found
(over /proc, Linux) and stopped with the group on a timeout or a stop. A process that clears its
environment sheds the tag too: that is the remaining limit (docs/RELIABILITY.md, ADR 0004).

Tags add up: a job that runs `pt pipeline run` gives its own jobs the outer attempt's tag as
well as theirs (`outer:inner`), so stopping the outer attempt reaches the inner jobs too.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

TAG_VARIABLE = "PT_PROCESS_TAG"
_PROC = Path("/proc")
_ROUNDS = 3  # a process forking while we look is caught on the next round


def new_tag() -> str:
    """A tag no other attempt carries."""
    return secrets.token_hex(16)


def tagged(env: Mapping[str, str], tag: str) -> dict[str, str]:
    """`env` with the attempt's tag added to those it already carries."""
    outer = env.get(TAG_VARIABLE)
    return {**env, TAG_VARIABLE: f"{outer}:{tag}" if outer else tag}


def tagged_pids(tag: str) -> list[int]:
    """Pids of this user's live processes whose environment carries `tag`."""
    prefix = f"{TAG_VARIABLE}=".encode()
    wanted = tag.encode()
    me = os.getpid()
    found = []
    for proc in _PROC.iterdir():
        if not proc.name.isdigit() or int(proc.name) == me:
            continue
        try:
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue  # gone, or not ours
        if any(wanted in variable[len(prefix):].split(b":")
               for variable in environ.split(b"\0") if variable.startswith(prefix)):
            found.append(int(proc.name))
    return found


def signal_attempt(group: int, tag: str | None, sig: int) -> None:
    """Send `sig` to the attempt's process group `group` and, if it has a tag, to every process
    carrying it (those that left the group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, sig)
    if tag is not None:
        signal_tagged(tag, sig)


def signal_tagged(tag: str, sig: int) -> int:
    """Send `sig` to every process carrying `tag`; how many were signalled."""
    signalled: set[int] = set()
    for _ in range(_ROUNDS):
        fresh = [pid for pid in tagged_pids(tag) if pid not in signalled]
        if not fresh:
            break
        for pid in fresh:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
            signalled.add(pid)
    return len(signalled)
