"""The registry's copy statuses: a copy moves only as the migration lifecycle allows."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pulsaride.migration.copy_status import (
    TABLE,
    CopyEvent,
    CopyStatus,
    IllegalCopyTransition,
    next_copy_status,
)

# Written from `pt migrate` and `pt migrate cutover`, not from TABLE: (status, event) -> status.
LEGAL_COPY_MOVES: dict[tuple[str | None, str], str] = {
    (None, "started"): "RUNNING",
    ("RUNNING", "started"): "RUNNING",  # --force
    ("DONE", "started"): "RUNNING",
    ("FAILED", "started"): "RUNNING",
    ("CUT_OVER", "started"): "RUNNING",
    ("RUNNING", "claimed"): "RUNNING",  # an interrupted copy resumes
    ("FAILED", "claimed"): "RUNNING",
    ("RUNNING", "batch committed"): "RUNNING",
    ("RUNNING", "finished"): "DONE",
    ("RUNNING", "failed"): "FAILED",
    ("DONE", "cut over"): "CUT_OVER",
}
STATUSES: list[CopyStatus | None] = [None, *CopyStatus]


def test_stored_values_are_the_strings_in_the_database() -> None:
    assert [s.value for s in CopyStatus] == ["RUNNING", "DONE", "FAILED", "CUT_OVER"]
    assert CopyStatus.CUT_OVER == "CUT_OVER"


def test_table_covers_every_status_and_no_row() -> None:
    assert set(TABLE) == set(STATUSES)


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("event", list(CopyEvent))
def test_next_copy_status_allows_exactly_the_listed_moves(status: CopyStatus | None,
                                                          event: CopyEvent) -> None:
    key = (None if status is None else status.value, event.value)
    if key in LEGAL_COPY_MOVES:
        assert next_copy_status("t", status, event) is CopyStatus(LEGAL_COPY_MOVES[key])
    else:
        with pytest.raises(IllegalCopyTransition, match="transform t: a copy cannot be"):
            next_copy_status("t", status, event)


@pytest.mark.parametrize(("status", "event"), [
    (CopyStatus.RUNNING, CopyEvent.CUT_OVER), (CopyStatus.CUT_OVER, CopyEvent.CLAIMED),
    (CopyStatus.DONE, CopyEvent.CLAIMED), (CopyStatus.DONE, CopyEvent.BATCH_COMMITTED),
    (CopyStatus.FAILED, CopyEvent.CUT_OVER), (None, CopyEvent.FINISHED)])
def test_each_illegal_copy_move_raises(status: CopyStatus | None, event: CopyEvent) -> None:
    with pytest.raises(IllegalCopyTransition):
        next_copy_status("t", status, event)


@given(st.lists(st.sampled_from(list(CopyEvent)), max_size=12))
def test_only_a_done_copy_is_ever_cut_over(events: list[CopyEvent]) -> None:
    status: CopyStatus | None = None
    for event in events:
        try:
            after = next_copy_status("t", status, event)
        except IllegalCopyTransition:
            continue
        if after is CopyStatus.CUT_OVER:
            assert status is CopyStatus.DONE
        status = after
