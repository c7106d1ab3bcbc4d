"""The transition table: legal moves change status; illegal ones raise and change nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pulsaride.engine.aggregate import JobState, evolve_job
from pulsaride.engine.errors import IllegalTransitionError
from pulsaride.engine.events import EVENT_TYPES, JobEvent, JobStarted, JobSucceeded
from pulsaride.engine.transitions import DONE, TABLE, TARGET, JobStatus, next_status

JOB_EVENTS = sorted(name for name, cls in EVENT_TYPES.items() if issubclass(cls, JobEvent))


def test_every_job_event_has_exactly_one_target() -> None:
    assert sorted(TARGET) == JOB_EVENTS


def test_done_is_final_for_every_event() -> None:
    for event in JOB_EVENTS:
        with pytest.raises(IllegalTransitionError):
            next_status("j", DONE, event)


def test_table_covers_every_status() -> None:
    assert set(TABLE) == set(JobStatus)


# Written from the job lifecycle (README, "Job states"), not from TABLE: (status, event, target).
LEGAL_JOB_MOVES = {
    ("PENDING", "JobStarted", "RUNNING"),
    ("PENDING", "JobAwaitingApproval", "WAITING"),
    ("PENDING", "JobSkipped", "SKIPPED"),
    ("PENDING", "JobCancelled", "CANCELLED"),
    ("WAITING", "JobApproved", "APPROVED"),
    ("WAITING", "JobRejected", "SKIPPED"),
    ("WAITING", "JobApprovalRefused", "WAITING"),
    ("WAITING", "JobApprovalSigned", "WAITING"),  # one of a `required: N` gate's approvals
    ("WAITING", "JobFailed", "FAILED"),
    ("WAITING", "JobSkipped", "SKIPPED"),
    ("WAITING", "JobCancelled", "CANCELLED"),
    ("APPROVED", "JobStarted", "RUNNING"),
    ("APPROVED", "JobCancelled", "CANCELLED"),
    ("RUNNING", "JobSucceeded", "DONE"),
    ("RUNNING", "JobRetrying", "RETRYING"),
    ("RUNNING", "JobFailed", "FAILED"),
    ("RUNNING", "JobCancelled", "CANCELLED"),
    ("RUNNING", "JobInterrupted", "INTERRUPTED"),
    ("RETRYING", "JobStarted", "RUNNING"),
    ("RETRYING", "JobCancelled", "CANCELLED"),
    ("FAILED", "JobRequeued", "PENDING"),
    ("SKIPPED", "JobRequeued", "PENDING"),
    ("CANCELLED", "JobRequeued", "PENDING"),
    ("INTERRUPTED", "JobRequeued", "PENDING"),
}
ILLEGAL_JOB_MOVES = [  # a sample that must raise, each one a mistake someone could make
    ("DONE", "JobStarted"), ("DONE", "JobRequeued"), ("DONE", "JobFailed"),
    ("PENDING", "JobSucceeded"), ("PENDING", "JobApproved"), ("PENDING", "JobRequeued"),
    ("WAITING", "JobStarted"), ("APPROVED", "JobApproved"), ("RUNNING", "JobStarted"),
    ("RUNNING", "JobRequeued"), ("RETRYING", "JobSucceeded"), ("FAILED", "JobStarted"),
    ("SKIPPED", "JobApproved"), ("INTERRUPTED", "JobSucceeded"),
]


@pytest.mark.parametrize(("status", "event", "target"), sorted(LEGAL_JOB_MOVES))
def test_each_legal_move_leads_where_the_lifecycle_says(status: str, event: str,
                                                        target: str) -> None:
    assert next_status("j", JobStatus(status), event) is JobStatus(target)


@pytest.mark.parametrize(("status", "event"), ILLEGAL_JOB_MOVES)
def test_each_illegal_move_raises(status: str, event: str) -> None:
    with pytest.raises(IllegalTransitionError, match=f"{event} is not allowed"):
        next_status("j", JobStatus(status), event)


@pytest.mark.parametrize("status", list(JobStatus))
@pytest.mark.parametrize("event", JOB_EVENTS)
def test_next_status_allows_exactly_the_listed_moves(status: JobStatus, event: str) -> None:
    legal = {(s, e): t for s, e, t in LEGAL_JOB_MOVES}
    if (status.value, event) in legal:
        assert next_status("j", status, event) is JobStatus(legal[(status.value, event)])
    else:
        with pytest.raises(IllegalTransitionError, match=f"{event} is not allowed"):
            next_status("j", status, event)


def _started(attempt: int) -> JobStarted:
    return JobStarted(originator_id="r", originator_version=2, timestamp=datetime.now(UTC),
                      job="j", stage="s", attempt=attempt, started_at="t")


def test_evolve_rejects_a_start_that_skips_an_attempt() -> None:
    with pytest.raises(IllegalTransitionError):
        evolve_job(JobState(name="j", stage="s"), _started(2), "t")


def test_evolve_done_then_start_raises_and_keeps_the_state() -> None:
    running = evolve_job(JobState(name="j", stage="s"), _started(1), "t")
    done = evolve_job(running, JobSucceeded(
        originator_id="r", originator_version=3, timestamp=datetime.now(UTC), job="j",
        stage="s", attempt=1, exit_code=0), "t")
    assert done.status is DONE
    refused = "JobStarted is not allowed when the job is DONE"
    with pytest.raises(IllegalTransitionError, match=refused):
        evolve_job(done, _started(2), "t")
    assert done.status is DONE
