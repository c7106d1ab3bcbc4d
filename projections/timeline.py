"""One run as a timeline: every transition with its time, attempt, exit code, error and actor."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pulsaride.engine.events import (
    JobApprovalRefused,
    JobApprovalSigned,
    JobApproved,
    JobEvent,
    JobRejected,
    RecordedEvent,
    RunResumed,
    RunStarted,
)
from pulsaride.engine.times import format_time
from pulsaride.engine.transitions import TARGET

SCHEMA = "pulsaride.timeline/1"


def timeline(events: Iterable[RecordedEvent]) -> list[dict[str, Any]]:
    """One entry per line of the run file, in order."""
    return [_entry(event) for event in events]


def _entry(event: RecordedEvent) -> dict[str, Any]:
    name = type(event).__name__
    fields = event.__dict__
    entry: dict[str, Any] = {
        "seq": event.originator_version, "at": format_time(event.timestamp), "event": name,
        "job": None, "stage": None, "status": None, "attempt": None, "exit_code": None,
        "error": "", "detail": _detail(event), "by": _actor(event),
        "authenticated": None, "key_fingerprint": None,  # decisions only
    }
    if isinstance(event, JobEvent):
        entry.update(job=event.job, stage=event.stage, status=TARGET[name].value,
                     attempt=event.attempt, exit_code=event.exit_code, error=event.error)
    if isinstance(event, JobApproved | JobRejected | JobApprovalSigned):
        # Signed by a key on the gate's list, or only the name the approver gave.
        entry.update(authenticated=bool(event.signature),
                     key_fingerprint=event.key_fingerprint or None)
    elif "reason" in fields:
        entry["detail"] = entry["detail"] or fields["reason"]
    return entry


def _actor(event: RecordedEvent) -> str | None:
    if isinstance(event, RunStarted):
        return event.started_by
    if isinstance(event, RunResumed | JobApproved | JobRejected | JobApprovalRefused
                  | JobApprovalSigned):
        return event.by
    return None


def _detail(event: RecordedEvent) -> str:
    fields = event.__dict__
    for key in ("reason", "outcome"):
        if fields.get(key):
            return str(fields[key])
    if isinstance(event, RunResumed):
        return f"from stage {event.from_stage}"
    return ""


def render_timeline(entries: list[dict[str, Any]]) -> str:
    """A readable table of the timeline."""
    lines = []
    for e in entries:
        time = e["at"][11:23]
        subject = e["job"] or "(run)"
        outcome = e["status"] or ""
        bits = []
        if e["attempt"]:
            bits.append(f"attempt {e['attempt']}")
        if e["exit_code"] is not None:
            bits.append(f"exit {e['exit_code']}")
        if e["error"] and e["error"] != f"exit code {e['exit_code']}":
            bits.append(e["error"])
        if e["detail"] and e["detail"] not in bits:
            bits.append(e["detail"])
        if e["by"]:
            signed = e.get("authenticated")
            how = ("" if signed is None else
                   f" (signed, key {e.get('key_fingerprint')})" if signed else
                   " (unauthenticated)")
            bits.append(f"by {e['by']}{how}")
        lines.append(f"{e['seq']:>5}  {time}  {e['event']:<20} {subject:<20} {outcome:<11} "
                     f"{' · '.join(bits)}".rstrip())
    return "\n".join(lines)
