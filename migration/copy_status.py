"""Every legal move of a transform's copy in the run registry, as data.

TABLE[status][event] is the status after `event`; a pair missing from the table is illegal and
raises IllegalCopyTransition before anything is written. `None` stands for "no registry row
yet". The statuses are stored in `pulsaride_run_registry.status` as these exact strings.
"""

from __future__ import annotations

from enum import StrEnum

from pulsaride.engine.errors import PulsarideError


class CopyStatus(StrEnum):
    """Where a transform's copy stands in the registry."""

    RUNNING = "RUNNING"  # being copied, or interrupted after its last committed batch
    DONE = "DONE"  # every row copied (or deferred and replayed)
    FAILED = "FAILED"
    CUT_OVER = "CUT_OVER"  # the cutover gate passed; the target is live


class CopyEvent(StrEnum):
    """What happens to a copy."""

    STARTED = "started"  # a fresh copy (replaces any earlier row: first run or --force)
    CLAIMED = "claimed"  # an interrupted copy taken over to resume after its checkpoint
    BATCH_COMMITTED = "batch committed"
    FINISHED = "finished"
    FAILED = "failed"
    CUT_OVER = "cut over"


RUNNING, DONE, FAILED, CUT_OVER = (
    CopyStatus.RUNNING, CopyStatus.DONE, CopyStatus.FAILED, CopyStatus.CUT_OVER)

FINISHED_COPY = frozenset({DONE, CUT_OVER})
"""Statuses of a copy that holds every row: it is not copied again unless forced."""

_RESTART = {CopyEvent.STARTED: RUNNING}

TABLE: dict[CopyStatus | None, dict[CopyEvent, CopyStatus]] = {
    None: {**_RESTART},
    RUNNING: {
        **_RESTART,
        CopyEvent.CLAIMED: RUNNING,
        CopyEvent.BATCH_COMMITTED: RUNNING,
        CopyEvent.FINISHED: DONE,
        CopyEvent.FAILED: FAILED,
    },
    FAILED: {**_RESTART, CopyEvent.CLAIMED: RUNNING},
    DONE: {**_RESTART, CopyEvent.CUT_OVER: CUT_OVER},
    CUT_OVER: {**_RESTART},
}


class IllegalCopyTransition(PulsarideError):
    """A registry move the copy's status does not allow; nothing was written."""

    def __init__(self, transform: str, status: CopyStatus | None, event: CopyEvent) -> None:
        self.transform = transform
        self.status = status
        self.event = event
        where = "has no registry row" if status is None else f"is {status.value}"
        super().__init__(f"transform {transform}: a copy cannot be {event.value} when it {where}")


def next_copy_status(transform: str, status: CopyStatus | None,
                     event: CopyEvent) -> CopyStatus:
    """The status after `event`, or IllegalCopyTransition if the table forbids it."""
    target = TABLE[status].get(event)
    if target is None:
        raise IllegalCopyTransition(transform, status, event)
    return target
