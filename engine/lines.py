"""The run file's line format: one event per line, JSON, chained by SHA-256.

A line is `{"seq", "event", "at", "pipeline_run_id", <event fields>, "prev"}`; job lines also
carry `status`, the status the transition leads to. `prev` is the SHA-256 (hex) of the
previous line's bytes without its newline (64 zeros for the first line), so an edited,
deleted, inserted or reordered line breaks the chain.
"""

from __future__ import annotations

import dataclasses
import hashlib
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson
from eventsourcing.utils import get_topic

from .aggregate import PipelineRun
from .errors import StoreWriteError
from .events import ADDED_FIELDS, EVENT_TYPES, JobEvent, RunEvent, RunStarted
from .times import format_time, parse_time
from .transitions import TARGET

GENESIS = "0" * 64
"""The `prev` of a run's first line."""

_ENVELOPE = frozenset({"originator_id", "originator_version", "timestamp", "originator_topic"})


class LineError(ValueError):
    """A line that does not decode to a known, well-formed event."""


def digest(line: bytes) -> str:
    """The chain hash of one line (its bytes without the newline)."""
    return hashlib.sha256(line).hexdigest()


@cache
def _fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls) if f.name not in _ENVELOPE)


@cache
def _kinds(cls: type) -> tuple[tuple[str, frozenset[type], bool], ...]:
    """(field, the exact JSON types its value may have, whether it is a time) for every field
    of `cls` that is not Any. Parsed JSON holds exactly str, int, float, bool, None, dict and
    list, so an exact type test suffices (and a bool is no int)."""
    hints = typing.get_type_hints(cls)
    kinds = []
    for field in _fields(cls):
        allowed = _json_types(hints[field])
        if allowed is not None:
            kinds.append((field, frozenset(allowed), field.endswith("_at")))
    return tuple(kinds)


def _json_types(hint: Any) -> tuple[type, ...] | None:
    if hint is Any:
        return None
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        parts = [_json_types(arg) for arg in typing.get_args(hint)]
        if any(part is None for part in parts):
            return None
        return tuple(kind for part in parts if part is not None for kind in part)
    origin = typing.get_origin(hint) or hint
    return (int, float) if origin is float else (origin,)


def _check_kinds(cls: type, name: str, kwargs: dict[str, Any]) -> None:
    """LineError unless every field has its type and every time parses: a line can be well
    chained and still hold values no event has (the readers would then fail on them)."""
    for field, allowed, is_time in _kinds(cls):
        value = kwargs[field]
        if type(value) not in allowed:
            raise LineError(f"{name} line has a malformed field {field!r}: "
                            f"{type(value).__name__}")
        if is_time and value is not None:
            try:
                parse_time(value)
            except ValueError:
                raise LineError(f"{name} line has a malformed time in {field!r}") from None


def encode(event: RunEvent | RunStarted, prev: str) -> bytes:
    """The line bytes (no newline) for `event`, chained to the line whose digest is `prev`."""
    cls = type(event)
    name = cls.__name__
    record: dict[str, Any] = {
        "seq": event.originator_version,
        "event": name,
        "at": format_time(event.timestamp),
        "pipeline_run_id": event.originator_id,
    }
    values = event.__dict__
    if isinstance(event, JobEvent):
        record["job"] = event.job
        record["stage"] = event.stage
        record["status"] = TARGET[name].value
    added = ADDED_FIELDS.get(name, {})
    for field in _fields(cls):
        if field not in record and not (field in added and values[field] == added[field]):
            record[field] = values[field]
    record["prev"] = prev
    return orjson.dumps(record)


def decode(record: dict[str, Any]) -> RunEvent | RunStarted:
    """The event a parsed line records; LineError if it is not a well-formed event."""
    name = record.get("event")
    cls = EVENT_TYPES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise LineError(f"unknown event {name!r}")
    try:
        added = ADDED_FIELDS.get(cls.__name__)
        kwargs = ({field: record[field] for field in _fields(cls)} if added is None else
                  {field: record[field] if field in record or field not in added
                   else added[field] for field in _fields(cls)})
        at = parse_time(record["at"])
        run_id = record["pipeline_run_id"]
        seq = record["seq"]
    except KeyError as exc:
        raise LineError(f"{name} line lacks the field {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise LineError(f"{name} line has a malformed field: {exc}") from None
    if not isinstance(seq, int) or not isinstance(run_id, str):
        raise LineError(f"{name} line has a malformed seq or pipeline_run_id")
    assert isinstance(name, str)
    _check_kinds(cls, name, kwargs)
    if issubclass(cls, JobEvent) and record.get("status") != TARGET[name]:
        raise LineError(f"{name} line says status {record.get('status')!r}, "
                        f"but {name} leads to {TARGET[name].value}")
    if cls is RunStarted:
        kwargs["originator_topic"] = _RUN_TOPIC
    kwargs.update(originator_id=run_id, originator_version=seq, timestamp=at)
    # The fields are exactly the dataclass's (built from them above): fill the frozen event
    # directly instead of through its __init__, which replay would pay once per line.
    event = cls.__new__(cls)
    event.__dict__.update(kwargs)
    return event


_RUN_TOPIC = get_topic(PipelineRun)


@dataclass(frozen=True)
class Tail:
    """Bytes after the last good line: a torn or garbled write."""

    offset: int
    data: bytes
    first_line_no: int

    @property
    def sha256(self) -> str:
        """Digest of the tail bytes."""
        return hashlib.sha256(self.data).hexdigest()


def chained_lines(events: Sequence[RunEvent | RunStarted], seq: int, head: str,
                  where: str) -> tuple[list[bytes], str]:
    """The lines of `events`, which must follow line `seq`, each chained to the one before
    (the first to `head`); and the new head. Shared by every store."""
    lines: list[bytes] = []
    for event in events:
        if event.originator_version != seq + len(lines) + 1:
            raise StoreWriteError(f"{where}: event out of sequence (internal error)")
        line = encode(event, head)
        head = digest(line)
        lines.append(line)
    return lines, head


def check_line(raw: bytes, run_id: str, seq: int, head: str, lines: int) -> RunEvent | RunStarted:
    """The event of the line after line `lines` (whose seq and digest are `seq` and `head`);
    LineError unless it is well formed, in sequence, chained and of run `run_id`."""
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise LineError("not a JSON line") from None
    if not isinstance(record, dict):
        raise LineError("not a JSON object")
    if record.get("seq") != seq + 1:
        raise LineError(f"seq is {record.get('seq')!r}, expected {seq + 1}")
    if record.get("prev") != head:
        raise LineError(f"prev does not match the SHA-256 of line {lines} (chain broken: "
                        f"line {lines} was changed, or lines were removed or "
                        "inserted before this one)")
    if record.get("pipeline_run_id") != run_id:
        raise LineError(f"belongs to run {record.get('pipeline_run_id')!r}, not {run_id!r}")
    if (seq == 0) != (record.get("event") == "RunStarted"):
        raise LineError("a run file starts with RunStarted, and only there")
    return decode(record)


def looks_like_event(raw: bytes) -> bool:
    """True if `raw` parses as a line of some run (whatever its chain): never a torn write."""
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return isinstance(record, dict) and "seq" in record and "event" in record
