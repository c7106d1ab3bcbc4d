"""Facts of a run that its final state forgets: every approval, refusal and resume, in order."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pulsaride.engine.events import (
    JobApprovalRefused,
    JobApprovalSigned,
    JobApproved,
    JobRejected,
    RecordedEvent,
    RunResumed,
    RunStarted,
)
from pulsaride.engine.times import format_time


@dataclass
class RunFacts:
    """Decisions and takeovers collected from a run's events."""

    approvals: list[dict[str, Any]] = field(default_factory=list)
    refusals: list[dict[str, Any]] = field(default_factory=list)
    resumes: list[dict[str, Any]] = field(default_factory=list)
    first_at: str | None = None
    last_at: str | None = None

    @classmethod
    def collect(cls, events: Iterable[RecordedEvent]) -> RunFacts:
        """Fold events into facts."""
        facts = cls()
        for event in events:
            facts.add(event)
        return facts

    def add(self, event: RecordedEvent) -> None:
        """Fold one event."""
        at = format_time(event.timestamp)
        if isinstance(event, RunStarted):
            self.first_at = at
        self.last_at = at
        if isinstance(event, JobApproved | JobRejected | JobApprovalSigned):
            decision = ("approved" if isinstance(event, JobApproved) else
                        "rejected" if isinstance(event, JobRejected) else "signed")
            self.approvals.append({
                "job": event.job, "decision": decision, "by": event.by, "at": at,
                "reason": event.reason, "host": event.host, "head": event.head,
                # False: a gate without keys recorded the name the approver gave.
                "authenticated": bool(event.signature),
                "key_fingerprint": event.key_fingerprint or None})
        elif isinstance(event, JobApprovalRefused):
            self.refusals.append({"job": event.job, "asked": event.decision, "by": event.by,
                                  "at": at, "reason": event.reason})
        elif isinstance(event, RunResumed):
            self.resumes.append({"by": event.by, "at": at, "host": event.host,
                                 "from_stage": event.from_stage,
                                 "changes": event.changes or []})
