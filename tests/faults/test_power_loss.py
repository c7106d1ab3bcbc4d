"""Simulated power loss: record every write, sync and truncation of a real run's file, then, for
every point between a write and its sync, rebuild the file as a disk may leave it after a power
cut, and check recovery on each state.

The run is driven in-process through the engine's operations (start_run, a crash, resume_run,
decide_gate from a second writer) with the SimulatedExecutor of tests/property/sim.py; the
recording wraps os.write / os.fdatasync / os.fsync / os.ftruncate for the run file only.

Disk model (what the checks hold recovery to): bytes that were synced (fdatasync returned)
survive intact; of the bytes written since the last sync, a disk may keep
- none of them ("dropped"),
- a prefix, cut anywhere, even mid-line ("cut"),
- a prefix followed by zeros up to the written size: the file grew but its data blocks were
  never written ("zero-filled"),
- a prefix followed by other bytes: stale blocks ("garbage").
For each state, recovery (the read path of `status`, then `resume` run to the end) must keep
every acknowledged (synced) line, change no byte of the good lines, set exactly the bytes after
the last good line aside (side file + TailQuarantined line), and finish the run.

Outside the model, also explored and counted: a later sector of the unsynced write reached the
disk but an earlier one did not ("reordered"), and stale blocks holding whole event lines of
another run ("stale lines"). Recovery refuses those as damage, changing nothing: the states are
listed as a known limit in docs/RELIABILITY.md.

Sizes: CI samples cut points (every line boundary +-1 and random ones) and cuts the recovery
of 4 states again; PT_FAULTS_FULL=1 (or PT_FAULTS_POWER=0 alone) explores every byte of every
unsynced write, and cuts the recovery of 400 states (PT_FAULTS_POWER_NESTED=N).
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from pulsaride.engine.errors import RunFileError
from pulsaride.engine.run_views import read_run
from tests.property.sim import RUN_ID, Scenario
from tests.property.strategies import CrashPoint, JobSpec, Outcomes, PipelineSpec

from .conftest import FULL, Tally, seed, size

SPEC = PipelineSpec(
    stages=("preflight", "migrate", "cutover"),
    jobs=(
        JobSpec("check", "preflight"),
        JobSpec("customers", "migrate", needs=("check",), retry=1),
        JobSpec("orders", "migrate", needs=("customers",)),
        JobSpec("products", "migrate"),
        JobSpec("gate", "cutover", needs=("orders",), when="manual"),
        JobSpec("switch", "cutover", needs=("gate",)),
        JobSpec("notify", "cutover", needs=("gate",), when="always"),
    ),
)
OUTSIDE = ("reordered", "stale lines")  # states outside the disk model
OUTCOMES = Outcomes(codes={"customers": (1, 0)}, gates={"gate": (True,)})


@dataclass(frozen=True)
class Op:
    """One recorded operation on the run file."""

    kind: str  # write | sync | truncate
    offset: int = 0
    data: bytes = b""


class Recorder:
    """Wraps os.write/os.fdatasync/os.fsync/os.ftruncate; records those on one file."""

    def __init__(self, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.path = path
        self.ops: list[Op] = []
        real_write, real_fdatasync = os.write, os.fdatasync
        real_fsync, real_ftruncate = os.fsync, os.ftruncate

        def write(fd: int, data: Any) -> int:
            offset = os.fstat(fd).st_size if self._ours(fd) else -1
            written = real_write(fd, data)
            if offset >= 0:
                self.ops.append(Op("write", offset, bytes(memoryview(data)[:written])))
            return written

        def fdatasync(fd: int) -> None:
            real_fdatasync(fd)
            if self._ours(fd):
                self.ops.append(Op("sync"))

        def fsync(fd: int) -> None:
            real_fsync(fd)
            if self._ours(fd):
                self.ops.append(Op("sync"))

        def ftruncate(fd: int, length: int) -> None:
            real_ftruncate(fd, length)
            if self._ours(fd):
                self.ops.append(Op("truncate", length))

        for name, wrapper in (("write", write), ("fdatasync", fdatasync), ("fsync", fsync),
                              ("ftruncate", ftruncate)):
            monkeypatch.setattr(os, name, wrapper)

    def _ours(self, fd: int) -> bool:
        try:
            return os.path.samestat(os.fstat(fd), self.path.stat())
        except OSError:
            return False


@dataclass(frozen=True)
class DiskState:
    """A file as a disk may hold it after a power cut."""

    kind: str
    durable: bytes  # what was synced when the power went
    written: bytes  # what the page cache held (durable + the unsynced write)
    data: bytes  # what the disk holds


def _cut_points(pending: bytes, rng: random.Random, every_byte: bool) -> list[int]:
    if every_byte:
        return list(range(len(pending) + 1))
    points = {0, len(pending)}
    for at, byte in enumerate(pending):
        if byte == ord("\n"):
            points.update(p for p in (at, at + 1, at + 2) if p <= len(pending))
    points.update(rng.randrange(len(pending) + 1) for _ in range(6))
    return sorted(points)


def disk_states(ops: list[Op], rng: random.Random, every_byte: bool,
                start: bytes = b"") -> Iterator[DiskState]:
    """Every state of the model (and the outside-the-model ones) at every unsynced point of
    `ops`, applied to a file that holds `start` (durably) at first."""
    durable = written = start
    for op in ops:
        if op.kind == "sync":
            durable = written
            continue
        if op.kind == "truncate":
            written = written[:op.offset]
            # Until the next sync the disk may hold the file before or after the cut.
            yield DiskState("dropped", durable[:op.offset], written, durable)
            continue
        assert op.offset == len(written), "writes are appends"
        written += op.data
        pending = written[len(durable):]
        yield DiskState("dropped", durable, written, durable)
        for k in _cut_points(pending, rng, every_byte):
            if k:
                yield DiskState("cut", durable, written, durable + pending[:k])
            if k < len(pending):
                yield DiskState("zero-filled", durable, written,
                                durable + pending[:k] + bytes(len(pending) - k))
        for k in sorted({0, rng.randrange(len(pending)), len(pending) - 1}):
            noise = rng.randbytes(len(pending) - k)
            yield DiskState("garbage", durable, written, durable + pending[:k] + noise)
        yield from _outside_the_model(durable, written, pending)


def _outside_the_model(durable: bytes, written: bytes,
                       pending: bytes) -> Iterator[DiskState]:
    start = len(durable)
    boundary = (start // 512 + 1) * 512
    if boundary < len(written) and b"\n" in written[boundary:]:
        yield DiskState("reordered", durable, written,
                        durable + bytes(boundary - start) + written[boundary:])
    stale = (b'{"seq":3,"event":"JobStarted","at":"2026-01-01T00:00:00.000000Z",'
             b'"pipeline_run_id":"another-run","job":"x","stage":"s","status":"RUNNING",'
             b'"attempt":1,"prev":"' + b"0" * 64 + b'"}\n')
    yield DiskState("stale lines", durable, written, durable + (stale * 20)[:len(pending)])


def good_prefix(state: DiskState) -> bytes:
    """Independently of the engine: the longest prefix of the disk's bytes made of whole lines
    that are the lines that were written (synced or not)."""
    data, written = state.data, state.written
    end = 0
    while True:
        newline = written.find(b"\n", end)
        if newline < 0 or data[end:newline + 1] != written[end:newline + 1]:
            return data[:end]
        end = newline + 1


def chain_ok(data: bytes) -> list[dict[str, Any]]:
    """Parse and check seq and prev of every line (a small re-implementation, not the
    engine's)."""
    assert data.endswith(b"\n")
    prev, records = "0" * 64, []
    for number, raw in enumerate(data[:-1].split(b"\n"), start=1):
        record = orjson.loads(raw)
        assert record["seq"] == number and record["prev"] == prev, f"line {number}"
        prev = hashlib.sha256(raw).hexdigest()
        records.append(record)
    return records


def record_run(monkeypatch: pytest.MonkeyPatch) -> tuple[Scenario, list[Op]]:
    """Run SPEC in-process through a crash, a resume and a gate approval; its file's ops."""
    scenario = Scenario(SPEC, OUTCOMES, parallelism=2, wait_for_approval=True, seed=7)
    recorder = Recorder(scenario.run_file, monkeypatch)
    crashed = scenario.segment(CrashPoint("observer", after=4))
    assert crashed.result is None, "the recorded run was meant to crash once"
    finished = scenario.segment()
    assert finished.result is not None and finished.result.outcome == "succeeded"
    monkeypatch.undo()
    return scenario, recorder.ops


class Recovery:
    """Puts a disk state in place and recovers it as `status` and `resume` would."""

    def __init__(self, scenario: Scenario, monkeypatch: pytest.MonkeyPatch) -> None:
        self.scenario = scenario
        self.runs = scenario.run_file.parent
        # Recovery's own durability was covered by the recording; here only bytes matter, and
        # thousands of states cannot each pay real fsyncs.
        monkeypatch.setattr(os, "fdatasync", lambda fd: None)
        monkeypatch.setattr(os, "fsync", lambda fd: None)

    def put(self, data: bytes) -> None:
        for side in self.runs.glob(f"{RUN_ID}.jsonl.tail-*"):
            side.unlink()
        self.scenario.run_file.write_bytes(data)

    def check(self, state: DiskState, crash_in_recovery: Tally | None = None) -> str:
        """'recovered' or 'refused' (only outside the model); asserts everything else.

        With `crash_in_recovery`, the recovery's own writes are recorded and the power is cut
        again at each of its unsynced points (up to its first synced batch): every such state
        must recover too.
        """
        self.put(state.data)
        good = good_prefix(state)
        assert good.startswith(state.durable), "the model itself: synced bytes survive"
        try:
            view = read_run(self.scenario.pipeline_path, None, RUN_ID)
        except RunFileError as exc:
            if state.kind in OUTSIDE and "damaged line" in str(exc):
                return self._refused(state)
            # Nothing of the first line was synced: the run never started; `run` again.
            assert not good and "never recorded its start" in str(exc), str(exc)
            self.scenario.started = False
        else:
            assert view.path.read_bytes() == state.data, "reading changed the file"
            assert (view.tail.data if view.tail else b"") == state.data[len(good):]
        if crash_in_recovery is None:
            segment = self.scenario.segment()
        else:
            with pytest.MonkeyPatch.context() as patch:
                recorder = Recorder(self.scenario.run_file, patch)
                segment = self.scenario.segment()
            after = self.scenario.run_file.read_bytes()
            sides = {p: p.read_bytes() for p in self.runs.glob(f"{RUN_ID}.jsonl.tail-*")}
            self._again(state, recorder.ops, crash_in_recovery)
            self.put(after)
            for side, data in sides.items():
                side.write_bytes(data)
        assert segment.result is not None and segment.result.outcome == "succeeded"
        after = self.scenario.run_file.read_bytes()
        assert after.startswith(good), "recovery changed a byte of a good line"
        records = chain_ok(after)
        kept = good.count(b"\n")
        lost = state.durable.count(b"\n") - min(kept, state.durable.count(b"\n"))
        assert lost == 0
        if good != state.data and not good:
            quarantined = records[1]  # after the new RunStarted: what the cut left
            torn = state.data
            assert quarantined["event"] == "TailQuarantined", quarantined
            assert (self.runs / quarantined["path"]).read_bytes() == torn
        elif good != state.data:
            quarantined = records[kept]
            torn = state.data[len(good):]
            assert quarantined["event"] == "TailQuarantined", quarantined
            assert quarantined["size"] == len(torn)
            assert quarantined["sha256"] == hashlib.sha256(torn).hexdigest()
            assert (self.runs / quarantined["path"]).read_bytes() == torn
        else:
            assert not list(self.runs.glob(f"{RUN_ID}.jsonl.tail-*"))
        return "recovered"

    def _again(self, state: DiskState, ops: list[Op], tally: Tally) -> None:
        first_write = next(i for i, op in enumerate(ops) if op.kind == "write")
        first_sync = next(i for i, op in enumerate(ops) if op.kind == "sync" and i > first_write)
        rng = random.Random(len(state.data))
        for again in disk_states(ops[:first_sync + 1], rng, every_byte=False, start=state.data):
            if again.kind not in OUTSIDE:
                assert self.check(again) == "recovered"
                tally.add("states during recovery passed")

    def _refused(self, state: DiskState) -> str:
        try:
            self.scenario.segment()
        except RunFileError as exc:
            assert "damaged line" in str(exc), str(exc)
        else:
            raise AssertionError(f"{state.kind}: status refused, resume did not")
        assert self.scenario.run_file.read_bytes() == state.data, "a refusal changed the file"
        return "refused"


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Scenario, list[Op]]]:
    scenario, ops = record_run(monkeypatch)
    try:
        yield scenario, ops
    finally:
        scenario.close()


@pytest.mark.slow
def test_every_power_loss_state_of_a_run_recovers(recorded, monkeypatch) -> None:
    scenario, ops = recorded
    writes = [op for op in ops if op.kind == "write"]
    syncs = [op for op in ops if op.kind == "sync"]
    assert len(writes) >= 10 and len(syncs) >= len(writes), "each write is synced"
    final = scenario.run_file.read_bytes()
    saved = scenario.folder / "saved-runs"
    shutil.copytree(scenario.run_file.parent, saved)

    every_byte = FULL or os.environ.get("PT_FAULTS_POWER") == "0"
    recovery = Recovery(scenario, monkeypatch)
    tally = Tally("power loss")
    nested = 0
    # States whose recovery is itself cut by a power loss at each of its unsynced points.
    nested_limit = size("power_nested", ci=4, full=400)
    for state in disk_states(ops, random.Random(seed()), every_byte):
        good = good_prefix(state)
        # (a run that never started is set aside by a rename: not an append to nest in)
        nest = (good and good != state.data and state.kind not in OUTSIDE
                and nested < nested_limit)
        nested += bool(nest)
        outcome = recovery.check(state, tally if nest else None)
        tally.add(f"{state.kind} {outcome}")
        tally.add("states explored")
        if state.kind not in OUTSIDE:
            tally.add("states in the model passed")
            tally.add("acknowledged lines checked", state.durable.count(b"\n"))
    tally.add("unsynced writes", len(writes))
    tally.add("bytes written", len(final))
    tally.save(**{"acknowledged lines lost": 0, "every byte": every_byte})


def test_the_first_line_torn_by_a_power_cut_leaves_the_run_id_usable(recorded,
                                                                       monkeypatch) -> None:
    """A power cut during the very first write leaves a run file without a whole line: `run`
    with the same id sets it aside (recorded) and starts; `resume` says what to do."""
    scenario, ops = recorded
    first = next(op for op in ops if op.kind == "write").data
    Recovery(scenario, monkeypatch)
    for torn in (first[:1], first[:len(first) // 2], first[:-1], bytes(len(first)),
                 first[:40] + bytes(len(first) - 40)):
        shutil.rmtree(scenario.run_file.parent)
        scenario.run_file.parent.mkdir(parents=True)
        scenario.run_file.write_bytes(torn)
        with pytest.raises(RunFileError, match="never recorded its start"):
            read_run(scenario.pipeline_path, None, RUN_ID)
        scenario.started = False
        segment = scenario.segment()
        assert segment.result is not None and segment.result.outcome == "succeeded"
        records = chain_ok(scenario.run_file.read_bytes())
        assert [r["event"] for r in records[:2]] == ["RunStarted", "TailQuarantined"]
        side = scenario.run_file.parent / records[1]["path"]
        assert side.read_bytes() == torn
