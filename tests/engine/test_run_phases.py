"""The run-phase table: a run moves between phases only as its lifecycle allows."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pulsaride.engine.errors import IllegalRunTransitionError
from pulsaride.engine.transitions import RUN_TABLE, RunPhase, next_phase

RUN_EVENTS = ["JobEvent", "RunAborted", "RunSuspended", "RunInterrupted", "RunFinished",
              "RunResumed", "RunCheckpoint", "TailQuarantined"]

# Written from the runner's behaviour, not from RUN_TABLE: (phase, event) -> phase after it.
LEGAL_RUN_MOVES = {
    ("active", "JobEvent"): "active",
    ("active", "RunAborted"): "aborting",
    ("active", "RunSuspended"): "suspended",
    ("active", "RunInterrupted"): "interrupted",
    ("active", "RunFinished"): "finished",
    ("active", "RunResumed"): "active",  # the runner died without a line
    ("aborting", "JobEvent"): "aborting",
    ("aborting", "RunInterrupted"): "interrupted",
    ("aborting", "RunFinished"): "finished",
    ("aborting", "RunResumed"): "active",
    ("suspended", "JobEvent"): "active",
    ("suspended", "RunResumed"): "active",
    ("interrupted", "JobEvent"): "interrupted",
    ("interrupted", "RunResumed"): "active",
    ("finished", "RunResumed"): "active",
    **{(phase, event): phase for phase in
       ("active", "aborting", "suspended", "interrupted", "finished")
       for event in ("RunCheckpoint", "TailQuarantined")},
}
ILLEGAL_RUN_MOVES = [
    ("aborting", "RunAborted"), ("aborting", "RunSuspended"), ("suspended", "RunFinished"),
    ("suspended", "RunAborted"), ("suspended", "RunSuspended"), ("interrupted", "RunFinished"),
    ("interrupted", "RunInterrupted"), ("finished", "JobEvent"), ("finished", "RunFinished"),
    ("finished", "RunAborted"),
]


def test_table_covers_every_phase() -> None:
    assert set(RUN_TABLE) == set(RunPhase)


@pytest.mark.parametrize("phase", list(RunPhase))
@pytest.mark.parametrize("event", RUN_EVENTS)
def test_next_phase_allows_exactly_the_listed_moves(phase: RunPhase, event: str) -> None:
    if (phase.value, event) in LEGAL_RUN_MOVES:
        assert next_phase(phase, event) is RunPhase(LEGAL_RUN_MOVES[(phase.value, event)])
    else:
        with pytest.raises(IllegalRunTransitionError, match=f"{event} is not allowed"):
            next_phase(phase, event)


@pytest.mark.parametrize(("phase", "event"), ILLEGAL_RUN_MOVES)
def test_each_illegal_run_move_raises(phase: str, event: str) -> None:
    with pytest.raises(IllegalRunTransitionError):
        next_phase(RunPhase(phase), event)


@given(st.sampled_from(list(RunPhase)), st.lists(st.sampled_from(RUN_EVENTS), max_size=12))
def test_a_resume_always_makes_a_run_active_again(start: RunPhase, events: list[str]) -> None:
    phase = start
    for event in events:
        try:
            phase = next_phase(phase, event)
        except IllegalRunTransitionError:
            break
    assert next_phase(phase, "RunResumed") is RunPhase.ACTIVE
