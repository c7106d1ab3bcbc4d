"""The error tree of `pt`: every failure a user can cause or meet is one of these.

Definition errors are about what the user wrote; runtime errors about what happened.
Each carries its context and an exit code; the CLI prints `str(error)` and exits with it.
"""

from __future__ import annotations

from collections.abc import Sequence

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_WAITING = 3


class PulsarideError(Exception):
    """Base of every error `pt` reports to a user."""

    exit_code = EXIT_FAILED


class BadInputError(PulsarideError):
    """The user gave something we cannot use (file, flag, id)."""

    exit_code = EXIT_BAD_INPUT


class PipelineDefinitionError(BadInputError):
    """The pipeline file is not a valid pipeline; lists every problem found."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = [f"{source}: {p}" for p in self.problems]
        super().__init__("\n".join(lines))


class RunIdError(BadInputError):
    """A run id that is malformed, path-like or unknown."""


class RunNotFoundError(BadInputError):
    """No run matches what was asked for."""


class RunLockedError(PulsarideError):
    """The run is being executed by another live process."""

    exit_code = EXIT_BAD_INPUT


class PipelineChangedError(BadInputError):
    """The pipeline file changed since the run started, and that was not allowed."""


class GateError(BadInputError):
    """An approval or rejection that cannot be applied (job not waiting, unknown job)."""


class IllegalTransitionError(PulsarideError):
    """An event that the transition table does not allow from the job's current status."""

    def __init__(self, job: str, status: str, event: str) -> None:
        self.job = job
        self.status = status
        self.event = event
        super().__init__(f"job '{job}': {event} is not allowed when the job is {status}")


class IllegalRunTransitionError(IllegalTransitionError):
    """A run-level event that the run-phase table does not allow from the run's phase."""

    def __init__(self, phase: str, event: str) -> None:
        PulsarideError.__init__(self, f"run: {event} is not allowed when the run is {phase}")
        self.job = ""
        self.status = phase
        self.event = event


class RunFileError(PulsarideError):
    """A run file that cannot be trusted: damaged, out of sequence, or from another run."""

    def __init__(self, path: str, line_no: int, problem: str) -> None:
        self.path = path
        self.line_no = line_no
        self.problem = problem
        super().__init__(f"{path}: line {line_no}: {problem}")


class StoreWriteError(PulsarideError):
    """The event file could not be written durably (disk full, I/O error)."""


class StoreError(PulsarideError):
    """The event store cannot be reached or used (a shared database that is down)."""


class ExecutorError(PulsarideError):
    """The job executor cannot be reached or used (a distributed scheduler that is down)."""
