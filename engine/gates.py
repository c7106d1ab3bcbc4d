"""Gate policy is fixed when the run starts: who may decide a gate, and until when.

A gate's policy (`approvers`, `separate_approver`, `expires_in`, `on_expiry`) is the one its
run recorded when the gate first appeared (RunStarted, or the RunResumed that added the job).
Approving checks a decision against it; a resume with a changed file may not change it; and
`pt pipeline verify` re-checks every recorded decision against it (ADR 0017). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from datetime import datetime, timedelta

from .model import GatePolicy, Pipeline, duration_problem
from .times import format_time, parse_time

POLICY_KEYS = ("approvers", "separate_approver", "expires_in", "on_expiry")


def decision_refusal(policy: GatePolicy | None, *, who: str, started_by: str, at: datetime,
                     expires_at: str | None) -> str | None:
    """Why `who` may not decide a gate with `policy` at `at` (its window closing at
    `expires_at`), or None if they may."""
    if expires_at is not None and parse_time(expires_at) <= at:
        return f"the approval window closed at {expires_at}"
    return policy.refusal(who, started_by) if policy is not None else None


def expected_expiry(policy: GatePolicy | None, waiting_since: datetime) -> str | None:
    """When the window of a gate that began waiting at `waiting_since` closes (None: never);
    the scheduler records exactly this."""
    if policy is None or policy.expires_in is None or duration_problem(policy.expires_in):
        return None
    return format_time(waiting_since + timedelta(seconds=policy.expires_in))


def policy_changes(fixed: Mapping[str, GatePolicy], new: Pipeline,
                   done: Collection[str]) -> list[str]:
    """How `new` would change the policy of a gate that has not run yet, one phrase each
    (naming the gate and the key); empty when it changes none. New gates may be added."""
    return [change for name, policy in fixed.items() if name not in done
            for change in _changes(name, policy, new)]


def _changes(name: str, policy: GatePolicy, new: Pipeline) -> Iterator[str]:
    job = new.jobs.get(name)
    if job is None:
        yield f"gate '{name}' was removed before it ran"
        return
    if job.gate is None:
        yield f"gate '{name}': when changed from manual to {job.when.value} before it ran"
        return
    for key in POLICY_KEYS:
        old, now = _value(policy, key), _value(job.gate, key)
        if old != now:
            yield f"gate '{name}': {key} changed from {old} to {now}"


def _value(policy: GatePolicy, key: str) -> str:
    value = getattr(policy, key)
    if key == "approvers":
        return f"[{', '.join(value)}]" if value else "[] (anyone)"
    if key == "expires_in":
        return "none" if value is None else f"{value:g}s"
    if key == "on_expiry":
        return str(value.value)
    return str(value).lower()
