"""`pt migrate schema --post-data`: a script applied statement by statement, resumably.

The post-data part of a target schema (indexes, constraints, foreign keys, identity restarts,
triggers) runs after the copies, on tables that may hold millions of rows, and a step may fail
on the data (a VALIDATE CONSTRAINT meets an orphan row). So each statement is a step that
commits on its own together with its record in `pulsaride_schema_steps`; a rerun skips the
steps recorded as done and continues with the first that is not, after the user fixed what
stopped it. A step is known by its file name, its number and the SHA-256 of its text: a
statement edited since it ran is a new step.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from .registry import now
from .tables import STEPS, ensure_tables
from .target_inspection import read_script, run_statement, split_statements


@dataclass(frozen=True)
class Step:
    """One statement of the script."""

    number: int
    statement: str

    @property
    def sha256(self) -> str:
        """The statement's identity (with its file name and number)."""
        return hashlib.sha256(self.statement.encode()).hexdigest()

    @property
    def head(self) -> str:
        """The statement's first line, for messages."""
        return self.statement.splitlines()[0].strip()


@dataclass
class Steps:
    """What one application of a script did."""

    file: str
    total: int
    ran: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    failed: Step | None = None
    error: str | None = None

    @property
    def message(self) -> str:
        """The one line that says which step failed and why ('' when none did)."""
        if self.failed is None:
            return ""
        return (f"{self.file}: step {self.failed.number} of {self.total} failed: "
                f"{self.failed.head}: {self.error}")

    def document(self) -> dict[str, Any]:
        """JSON-ready summary."""
        failed = None if self.failed is None else {
            "number": self.failed.number, "statement": self.failed.head, "error": self.error}
        return {"schema": "pulsaride.schema-steps/1", "file": self.file,
                "status": "failed" if self.failed else "ok", "steps": self.total,
                "ran": len(self.ran), "skipped": len(self.skipped), "failed": failed}


# Called after each step: the step, "done" | "skipped" | "failed", seconds it took.
StepSink = Callable[[Step, str, float], None]


def read_steps(path: Path) -> list[Step]:
    """The statements of the script at `path`, numbered from 1."""
    return [Step(n, s) for n, s in enumerate(split_statements(read_script(path)), start=1)]


def apply_steps(engine: Engine, path: Path, on_step: StepSink | None = None) -> Steps:
    """Run the steps of `path` not yet done, each in a transaction of its own with its
    record; stop at the first that fails (recorded in the result, not raised)."""
    steps = read_steps(path)
    outcome = Steps(file=path.name, total=len(steps))
    ensure_tables(engine)
    done = _done(engine, path.name)
    report = on_step or (lambda _step, _state, _seconds: None)
    for step in steps:
        if (step.number, step.sha256) in done:
            outcome.skipped.append(step.number)
            report(step, "skipped", 0.0)
            continue
        started = time.monotonic()
        try:
            with engine.begin() as connection:
                run_statement(connection, step.statement)
                connection.execute(STEPS.insert().values(
                    file=path.name, number=step.number, sha256=step.sha256,
                    statement=step.head[:1000], done_at=now()))
        except SQLAlchemyError as exc:
            outcome.failed, outcome.error = step, _first_line(exc)
            report(step, "failed", time.monotonic() - started)
            return outcome
        outcome.ran.append(step.number)
        report(step, "done", time.monotonic() - started)
    return outcome




def _done(engine: Engine, file: str) -> set[tuple[int, str]]:
    with engine.connect() as connection:
        rows = connection.execute(select(STEPS.c.number, STEPS.c.sha256)
                                  .where(STEPS.c.file == file)).all()
    return {(int(number), str(sha)) for number, sha in rows}


def _first_line(exc: SQLAlchemyError) -> str:
    original = getattr(exc, "orig", None)
    text = str(original if original is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
