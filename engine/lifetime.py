"""Processes that must not outlive the process that started them."""

from __future__ import annotations

import contextlib
import ctypes
import signal

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask the kernel (Linux) to SIGKILL this process when its parent dies: a helper process
    or a job's shell left behind by a killed parent would go on working for nobody. Safe
    between fork and exec (one system call)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
