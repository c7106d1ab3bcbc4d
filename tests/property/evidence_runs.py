"""Random valid, sealed runs and single random mutations of their files, for the property that
`verify` detects every mutation (test_verify_mutations.py).

A run is made in-process through the real operations (start_run, decide_gate, resume_run), the
real Runner and real run files; job processes are the SimulatedExecutor of sim.py, wrapped so
that every attempt leaves a real log file whose SHA-256 is the one recorded (verify checks it).
Every checkpoint is sealed with a fixed Ed25519 key.
"""

from __future__ import annotations

import atexit
import hashlib
import random
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import assume
from hypothesis import strategies as st

from pulsaride.engine.commands import RunRequest, decide_gate, resume_run, start_run
from pulsaride.engine.executor import JobExit, Launch
from pulsaride.engine.layout import StateDir
from pulsaride.engine.run_views import read_run
from pulsaride.engine.runner import RunResult
from pulsaride.engine.services import Services
from pulsaride.engine.transitions import WAITING

from .sim import IDENTITY, FakeClock, Observer, SimulatedExecutor, World
from .strategies import Outcomes, PipelineSpec, outcomes, pipelines

KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"pt property seal key").digest())
PUBLIC_KEY = KEY.public_key()


# ---- runs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvidencePlan:
    """A pipeline, how its jobs and gates end, and how often a failed run is resumed."""

    spec: PipelineSpec
    outcomes: Outcomes
    parallelism: int
    seed: int
    resumes: int


@st.composite
def evidence_plans(draw: st.DrawFn) -> EvidencePlan:
    spec = draw(pipelines(max_jobs=5, max_stages=3))
    return EvidencePlan(spec=spec, outcomes=draw(outcomes(spec)),
                        parallelism=draw(st.integers(1, 3)),
                        seed=draw(st.integers(0, 2**32 - 1)), resumes=draw(st.integers(0, 2)))


class Clock(FakeClock):
    """FakeClock starting at `start` (another run starts at another time)."""

    def __init__(self, start: datetime) -> None:
        super().__init__()
        self._now = start


class LoggingExecutor:
    """Executor wrapper: every attempt that ends leaves a log file, digest as recorded."""

    def __init__(self, inner: SimulatedExecutor) -> None:
        self.inner = inner

    def launch(self, launch: Launch) -> None:
        self.inner.launch(launch)

    def wait(self, timeout: float) -> list[JobExit]:
        ended = []
        for exit_ in self.inner.wait(timeout):
            data = f"{exit_.job} attempt {exit_.attempt}: exit {exit_.exit_code}\n".encode()
            exit_.log_path.parent.mkdir(parents=True, exist_ok=True)
            exit_.log_path.write_bytes(data)
            ended.append(replace(exit_, log_sha256=hashlib.sha256(data).hexdigest()))
        return ended

    def stop(self, job: str, reason: str) -> None:
        self.inner.stop(job, reason)

    def running(self) -> int:
        return self.inner.running()


def make_run(plan: EvidencePlan, folder: Path, run_id: str, start: datetime) -> StateDir:
    """Run the plan to its end (gates decided as the plan says, failed runs resumed
    `plan.resumes` times), sealing every checkpoint; return the state dir."""
    path = plan.spec.write(folder)
    state = StateDir.for_pipeline(path)
    clock = Clock(start)
    world = World(run_file=state.run_file(run_id))
    rng = random.Random(plan.seed)
    request = RunRequest(pipeline_path=path, parallelism=plan.parallelism)

    def decide_next_gate() -> bool:
        view = read_run(path, None, run_id)
        waiting = [name for name, job in view.run.active_jobs.items() if job.status is WAITING]
        if not waiting:
            return False
        name = waiting[0]
        world.decisions[name] += 1
        decide_gate(path, state_dir=None, run_id=run_id, job=name,
                    approve=plan.outcomes.approve(name, world.decisions[name]),
                    reason="property test",
                    services=Services(clock=clock, identity=IDENTITY, seal_key=KEY))
        return True

    def services() -> Services:
        executor = SimulatedExecutor(world, plan.outcomes, rng, clock, on_idle=decide_next_gate)
        factory: Any = lambda _masker, _observer, _lock: LoggingExecutor(executor)  # noqa: E731
        return Services(observer=Observer(), clock=clock, identity=IDENTITY,
                        executor_factory=factory, seal_key=KEY)

    result = start_run(request, services(), run_id=run_id).execute()
    for _ in range(plan.resumes):
        if result.outcome == "succeeded":
            break
        runner = resume_run(request, services(), run_id)
        result = runner if isinstance(runner, RunResult) else runner.execute()
    return state


_BASE: list[Path] = []


@contextmanager
def example_folder() -> Iterator[Path]:
    """An empty folder, at the same path for every example of this process: paths are
    recorded in the run file, and hypothesis needs equal runs for equal draws."""
    if not _BASE:
        _BASE.append(Path(tempfile.mkdtemp(prefix="pt-verify-prop-")))
        atexit.register(shutil.rmtree, _BASE[0], True)
    folder = _BASE[0] / "example"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# ---- mutations -----------------------------------------------------------------------------


Draw = Callable[..., Any]  # st.DrawFn, or st.DataObject.draw
KINDS = ("edit", "delete", "swap", "insert", "paste", "cut")


@dataclass(frozen=True)
class Mutation:
    """What was done to the file (for hypothesis' report of a counterexample)."""

    kind: str
    detail: str


def lines_of(data: bytes) -> list[bytes]:
    assert data.endswith(b"\n")
    return data[:-1].split(b"\n")


def joined(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in lines)


_CLASSES = ("0123456789", "abcdef", "ghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _similar_text(draw: Draw, value: str) -> str:
    """`value` with one character replaced by another of its kind (a digit by a digit, a hex
    letter by a hex letter...): timestamps, digests and names keep their shape, so the edit
    still matches the schema and only the chain can tell."""
    i: int = draw(st.integers(0, len(value) - 1))
    kind = next((chars for chars in _CLASSES if value[i] in chars), "-_.:/ ")
    char: str = draw(st.sampled_from(kind))
    return value[:i] + char + value[i + 1:]


JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=6)


def _other_value(draw: Draw, value: Any) -> Any:
    """A different value: often a small change that keeps the line valid (see
    _similar_text), else one of the same JSON type, sometimes any JSON value at all."""
    new: Any
    if draw(st.integers(0, 5)) == 0:
        new = draw(JSON_VALUES)
    elif isinstance(value, str) and value and draw(st.booleans()):
        new = _similar_text(draw, value)
    elif isinstance(value, int) and not isinstance(value, bool) and draw(st.booleans()):
        new = value + draw(st.sampled_from((-1, 1)))
    elif isinstance(value, bool):
        new = not value
    elif isinstance(value, int):
        new = draw(st.integers(-(2**53), 2**53))
    elif isinstance(value, float):
        new = draw(st.floats(allow_nan=False, allow_infinity=False))
    elif isinstance(value, str):
        new = draw(st.text(max_size=12))
    elif isinstance(value, list):
        new = draw(st.lists(st.text(max_size=4), max_size=3))
    elif isinstance(value, dict):
        new = draw(st.dictionaries(st.text(max_size=4), st.integers(0, 9), max_size=2))
    else:  # None
        new = draw(st.one_of(st.text(max_size=12), st.integers(0, 9)))
    if type(new) is type(value) and new == value:
        return _surely_other(value)
    return new


def _surely_other(value: Any) -> Any:
    """A value of the same type that differs from `value` (when the drawn one did not)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, list):
        return [*value, None]
    if isinstance(value, dict):
        return {**value, "".join(value) + "x": None}  # a key longer than any: a new one
    return 0


def edit_deep(draw: Draw, record: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """`record` with one value changed, at the top level or (sometimes) nested inside an
    object or array of it; and where, as `key/key/...: new value`."""
    container: Any = record
    path: list[str] = []
    while True:
        keys = sorted(container) if isinstance(container, dict) else range(len(container))
        assume(len(keys) > 0)
        key = draw(st.sampled_from(list(keys)))
        path.append(str(key))
        inner = container[key]
        if isinstance(inner, dict | list) and inner and draw(st.booleans()):
            container = inner
            continue
        container[key] = _other_value(draw, inner)
        return record, f"{'/'.join(path)} = {container[key]!r}"


def mutate(draw: Draw, kind: str, data: bytes, other: bytes, *,
           last_line: bool) -> tuple[bytes, Mutation]:
    """`data` with one mutation of `kind`. `other`: the file of another run (for "paste").
    `last_line`: whether an edit or a deletion may touch the last line (the documented limit:
    without a seal, the last line and the end of the file are not protected)."""
    lines = lines_of(data)
    n = len(lines)
    editable = n if last_line else n - 1
    if kind == "edit":
        assume(editable > 0)
        i = draw(st.integers(0, editable - 1))
        record, where = edit_deep(draw, orjson.loads(lines[i]))
        lines[i] = orjson.dumps(record)
        mutation = Mutation(kind, f"line {i + 1}: {where}")
    elif kind == "delete":
        assume(editable > 0)
        i = draw(st.integers(0, editable - 1))
        del lines[i]
        mutation = Mutation(kind, f"line {i + 1}")
    elif kind == "swap":
        assume(n > 1)
        i, j = sorted(draw(st.lists(st.integers(0, n - 1), min_size=2, max_size=2, unique=True)))
        lines[i], lines[j] = lines[j], lines[i]
        mutation = Mutation(kind, f"lines {i + 1} and {j + 1}")
    elif kind == "insert":
        i = draw(st.integers(0, n - 1))
        j = draw(st.integers(0, n))
        lines.insert(j, lines[i])
        mutation = Mutation(kind, f"a copy of line {i + 1} before line {j + 1}")
    elif kind == "paste":
        theirs = lines_of(other)
        i = draw(st.integers(0, len(theirs) - 1))
        if draw(st.booleans()):
            j = draw(st.integers(0, n))
            lines.insert(j, theirs[i])
            mutation = Mutation(kind, f"their line {i + 1} inserted before line {j + 1}")
        else:
            j = draw(st.integers(0, n - 1))
            lines[j] = theirs[i]
            mutation = Mutation(kind, f"their line {i + 1} in place of line {j + 1}")
    elif kind == "cut":
        keep = draw(st.integers(0, n - 1))
        partial = lines[keep][:draw(st.integers(0, len(lines[keep]) - 1))]
        mutated = joined(lines[:keep]) + partial
        return mutated, Mutation(kind, f"after line {keep} (+{len(partial)} bytes)")
    else:
        raise AssertionError(kind)
    mutated = joined(lines)
    assume(mutated != data)
    return mutated, mutation
