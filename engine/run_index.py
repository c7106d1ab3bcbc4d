"""The run index: one append-only, hash-chained line per fact about a run of a state dir.

A run file proves its own history, but not that it exists: a deleted run, a run file swapped
for another, or one cut back to an earlier checkpoint (with its later seals removed) leave no
trace in the file itself. The index does: `created` (the digest of the run's first line),
`checkpoint` (the end of a runner's work, every gate decision) and `sealed` (a seal's head),
each with the run's line count and chain head then, chained by `prev` like a run file.
`pt pipeline verify --all` checks the runs against it. Pure: the store reads and appends it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import orjson

from .lines import GENESIS, digest

INDEX_FILE = "run-index.jsonl"
"""The index's file, in the state dir's root (beside `pipeline-runs/`, never a run id)."""

EVENTS = ("created", "checkpoint", "sealed")


@dataclass(frozen=True)
class IndexEntry:
    """One fact: run `run_id` had `lines` lines ending at chain head `head` at time `at`."""

    event: str
    run_id: str
    lines: int
    head: str
    at: str


def encode_entry(entry: IndexEntry, seq: int, prev: str) -> bytes:
    """The index line (no newline) of `entry`, number `seq`, after the line digesting to
    `prev`."""
    return orjson.dumps({"seq": seq, "event": entry.event, "run_id": entry.run_id,
                         "lines": entry.lines, "head": entry.head, "at": entry.at,
                         "prev": prev})


def next_position(last_line: bytes | None) -> tuple[int, str]:
    """The seq and `prev` of the line after `last_line` (None: the index is empty)."""
    if not last_line:
        return 1, GENESIS
    try:
        seq = orjson.loads(last_line).get("seq", 0)
    except (orjson.JSONDecodeError, AttributeError):
        seq = 0
    return (seq if isinstance(seq, int) else 0) + 1, digest(last_line)


@dataclass(frozen=True)
class IndexFinding:
    """Something the index says that the runs do not bear out (or a damaged index line)."""

    line: int  # the index line
    run_id: str | None
    message: str


def read_index(data: bytes) -> tuple[list[tuple[int, IndexEntry]], list[IndexFinding]]:
    """The entries of an index file (with their line numbers) and its damage: a line that is
    not an entry, a broken `prev` chain or `seq`."""
    entries: list[tuple[int, IndexEntry]] = []
    findings: list[IndexFinding] = []
    prev = GENESIS
    for number, raw in enumerate(data.splitlines(), start=1):
        entry = _entry(raw)
        if entry is None:
            findings.append(IndexFinding(number, None, "not an index line"))
        else:
            record = orjson.loads(raw)
            if record.get("prev") != prev or record.get("seq") != number:
                findings.append(IndexFinding(number, entry.run_id, "the index's chain is "
                                             "broken here (a line edited, removed or moved)"))
            entries.append((number, entry))
        prev = digest(raw)
    return entries, findings


def _entry(raw: bytes) -> IndexEntry | None:
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(record, dict):
        return None
    fields = (record.get("event"), record.get("run_id"), record.get("lines"),
              record.get("head"), record.get("at"))
    event, run_id, lines, head, at = fields
    if event not in EVENTS or not isinstance(run_id, str) or type(lines) is not int or lines < 1 \
            or not isinstance(head, str) or not isinstance(at, str):
        return None
    return IndexEntry(event, run_id, lines, head, at)


def run_findings(entries: Iterable[tuple[int, IndexEntry]],
                 lines_of: Callable[[str], Sequence[bytes] | None]) -> list[IndexFinding]:
    """What the runs (their complete lines, None for a run that is gone) contradict in the
    index: a run listed but missing (deleted), a first line other than the one created (the
    file swapped), fewer lines or another line where a checkpoint or seal was (cut back,
    rolled back to an earlier seal, or rewritten)."""
    findings: list[IndexFinding] = []
    cache: dict[str, Sequence[bytes] | None] = {}
    gone: set[str] = set()
    for number, entry in entries:
        if entry.run_id not in cache:
            cache[entry.run_id] = lines_of(entry.run_id)
        lines = cache[entry.run_id]
        if lines is None:
            if entry.run_id in gone:
                continue  # a missing run is one finding, at its first index line
            gone.add(entry.run_id)
        problem = _problem(entry, lines)
        if problem is not None:
            findings.append(IndexFinding(number, entry.run_id, problem))
    return findings


def _problem(entry: IndexEntry, lines: Sequence[bytes] | None) -> str | None:
    if lines is None:
        return (f"run {entry.run_id} is listed in the index ({entry.event} at {entry.at}) but "
                "its run file is gone (deleted?)")
    if len(lines) < entry.lines:
        return (f"run {entry.run_id} has {len(lines)} lines, but had {entry.lines} at its "
                f"{entry.event} of {entry.at} (cut back or rolled back)")
    if digest(lines[entry.lines - 1]) != entry.head:
        what = "first line" if entry.event == "created" else f"line {entry.lines}"
        return (f"run {entry.run_id}: its {what} is not the one indexed at its {entry.event} "
                f"of {entry.at} (the file was swapped or rewritten)")
    return None


def unindexed(run_ids: Iterable[str], entries: Iterable[tuple[int, IndexEntry]]) -> list[str]:
    """Runs of the state dir that the index never saw created (started before the index
    existed, imported, or copied in)."""
    seen = {entry.run_id for _, entry in entries if entry.event == "created"}
    return sorted(set(run_ids) - seen)

