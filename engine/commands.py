"""The use cases that write a run: start, resume, approve or reject a gate, seal, import.

Each is get (replay the lines), decide (checks and new events), save (append under lock);
starting and resuming hand back a Runner that executes the run. Reading runs is
engine/run_views.py; what they take from the outside world, engine/services.py.
"""

from __future__ import annotations

import hashlib
import os
from contextlib import ExitStack, closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .aggregate import JobState, PipelineRun
from .changes import definition_changes
from .errors import (
    BadInputError,
    GateError,
    PipelineChangedError,
    PulsarideError,
    RunFileError,
)
from .events import (
    JobApprovalRefused,
    JobApproved,
    JobInterrupted,
    JobRejected,
    JobRequeued,
    RunCheckpoint,
    RunResumed,
    TailQuarantined,
)
from .gates import SignedDecision, decision_refusal, policy_changes
from .jsonl_store import append_seal, exported_lines, keep_copy
from .keyed_gates import SigningRequest, prepare, record_keyed
from .layout import StateDir, check_run_id, seals_path
from .loader import PipelineFile, load_pipeline_file
from .masking import YAML_MASK, Masker, safe_url, secret_values
from .model import Pipeline, When, definition_digest
from .replay import quarantine_tail, replay
from .run_index import IndexEntry
from .runner import JobEnvironment, Runner, RunResult
from .runstore import RunLog, RunOwnership, RunStore
from .seal import Seal, sign
from .services import Identity, Services, tool_version
from .signatures import Decision, SigningError, public_key_of, start_statement
from .signatures import sign as sign_statement
from .stores import is_shared_store, open_store
from .times import format_time
from .transitions import DONE, REQUEUEABLE, RUNNING, WAITING


@dataclass(frozen=True)
class RunRequest:
    """How to execute a pipeline file."""

    pipeline_path: Path
    state_dir: Path | None = None
    parallelism: int = 4
    wait_for_approval: bool = True
    tool_bin: Path | None = None
    store: str | None = None  # a postgresql:// URL; default: the state dir's JSONL files
    executor: str | None = None  # a dask://HOST:PORT scheduler; default: local processes
    start_key: Path | None = None  # sign the start (separate_approver then compares keys)


def start_run(request: RunRequest, services: Services, run_id: str | None = None) -> Runner:
    """Record a new run of the pipeline file and return its runner."""
    pipeline_file = load_pipeline_file(request.pipeline_path)
    state = StateDir.for_pipeline(pipeline_file.path, request.state_dir)
    with ExitStack() as cleanup:
        store = open_store(request.store, state)
        cleanup.callback(store.close)
        run_id = check_run_id(run_id) if run_id is not None else store.new_run_id()
        store.check_new(run_id)
        lock = _acquire(store, run_id, services.who(), services.clock())
        cleanup.callback(lock.release)
        run_file, leftover = store.create(run_id)
        cleanup.callback(run_file.close)
        masker = _masker(pipeline_file.pipeline)
        run = _record_start(request, services, pipeline_file, state=state,
                            run_file=run_file, masker=masker, leftover=leftover)
        index(store, "created", run_file, run.created_on)
        runner = _runner(run, run_file, lock, pipeline_file, state=state, request=request,
                         services=services, masker=masker, store=store)
        cleanup.pop_all()  # the runner owns the store, the run and its file from here on
    return runner


def _record_start(request: RunRequest, services: Services, pipeline_file: PipelineFile, *,
                  state: StateDir, run_file: RunLog, masker: Masker,
                  leftover: dict[str, Any] | None) -> PipelineRun:
    who = services.who()
    now = services.clock()
    run = PipelineRun.start(
        run_file.run_id, now,
        pipeline=_recorded_pipeline(pipeline_file, masker, state, run_file.run_id,
                                    "pipeline.yml"),
        parameters=masker.document(_parameters(request, state) | _signed_start(
            request, run_file.run_id, pipeline_file.sha256, format_time(now), who.user)),
        started_by=who.user, host=who.host, pid=who.pid, tool_version=tool_version(),
    )
    run.masker = masker
    if leftover is not None:
        run.record(TailQuarantined, now, **leftover)
    with run_file.locked():
        events = run.pending()
        run_file.append(events)
    services.observer.events_recorded(run, events)
    return run


def resume_run(request: RunRequest, services: Services, run_id: str, *,
               from_stage: str | None = None, allow_changed: bool = False) -> Runner | RunResult:
    """Take an existing run over and return its runner (or its result if nothing is left)."""
    pipeline_file = load_pipeline_file(request.pipeline_path)
    state = StateDir.for_pipeline(pipeline_file.path, request.state_dir)
    run_id = check_run_id(run_id)
    with ExitStack() as cleanup:
        store = open_store(request.store, state)
        cleanup.callback(store.close)
        run_file = store.open(run_id, writable=True)
        cleanup.callback(run_file.close)
        lock = _acquire(store, run_id, services.who(), services.clock())
        cleanup.callback(lock.release)
        masker = _masker(pipeline_file.pipeline)
        run = _record_resume(request, services, pipeline_file, state=state, run_file=run_file,
                             masker=masker, from_stage=from_stage, allow_changed=allow_changed)
        if run is None:
            # Closed on leaving the block, after the append lock is given up: closing the
            # file inside `locked()` made its unlock fail with EBADF.
            return RunResult(run_id, "succeeded", 0)
        runner: Runner = _runner(run, run_file, lock, pipeline_file, state=state,
                                 request=request, services=services, masker=masker,
                                 store=store)
        cleanup.pop_all()  # the runner owns the store, the run and its file from here on
    return runner


def _record_resume(request: RunRequest, services: Services, pipeline_file: PipelineFile, *,
                   state: StateDir, run_file: RunLog, masker: Masker,
                   from_stage: str | None, allow_changed: bool) -> PipelineRun | None:
    """Record the resumption of the run (under its append lock); None if the run had
    succeeded with this very pipeline file, so that nothing is left to do."""
    who = services.who()
    with run_file.locked():
        run = replay(run_file)
        run.masker = masker
        now = services.clock()
        # Checked before anything is written or moved: a refused resume leaves the run as
        # it found it (a torn tail included).
        changes = _check_unchanged(run, pipeline_file, masker, allow_changed)
        quarantine_tail(run_file, run, now)
        succeeded = run.outcome == "succeeded" and changes is None
        # A gate rejected while the run was still going (suspended with --no-wait, or its
        # runner died) stays rejected: the resumed run then ends `rejected`. Resuming a run
        # that had finished asks such a gate again.
        keep_rejected = run.outcome is None
        if not succeeded:
            stage = _from_stage(pipeline_file.pipeline, run, from_stage)
            run.record(
                RunResumed, now, by=who.user, host=who.host, pid=who.pid,
                tool_version=tool_version(), parameters=_parameters(request, state),
                from_stage=stage,
                pipeline=_recorded_pipeline(
                    pipeline_file, masker, state, run.id,
                    f"pipeline-{run.version + 1}.yml") if changes else None,
                changes=changes,
            )
            _requeue(run, pipeline_file.pipeline, stage, now, keep_rejected=keep_rejected)
        events = run.pending()
        run_file.append(events)
    if succeeded:
        return None
    services.observer.events_recorded(run, events)
    return run


def decide_gate(pipeline_path: Path, *, state_dir: Path | None, run_id: str | None, job: str,
                approve: bool, reason: str, services: Services,
                store: str | None = None, signing: SigningRequest | None = None,
                signed: SignedDecision | None = None) -> tuple[PipelineRun, JobState]:
    """Record an approval or rejection of a waiting manual job; return the run and the job.
    On a gate with keyed approvers the decision is signed first (`signing`), or comes signed
    (`signed`: a statement and its signature made elsewhere, e.g. by `ssh-keygen -Y sign`)."""
    state = StateDir.for_pipeline(pipeline_path, state_dir)
    live = _live_pipeline(pipeline_path)
    with closing(open_store(store, state)) as runs:
        run_id = check_run_id(run_id) if run_id is not None else runs.latest_run(pipeline_path)
        if signed is None:
            signed = _signed_if_keyed(runs, run_id, job, approve=approve, reason=reason,
                                      services=services, live=live, signing=signing)
        run_file = runs.open(run_id, writable=True)
        return _decide_gate(state, runs, run_file, job, approve=approve, reason=reason,
                            services=services, live=live, signed=signed)


def decision_statement(pipeline_path: Path, *, state_dir: Path | None, run_id: str | None,
                       job: str, approve: bool, reason: str, by: str, services: Services,
                       store: str | None = None) -> bytes:
    """The statement an approver of a keyed gate signs (to sign it with ssh-keygen)."""
    state = StateDir.for_pipeline(pipeline_path, state_dir)
    live = _live_pipeline(pipeline_path)
    with closing(open_store(store, state)) as runs:
        run_id = check_run_id(run_id) if run_id is not None else runs.latest_run(pipeline_path)
        run_file = runs.open(run_id)
        try:
            run = replay(run_file)
            _waiting_gate(run, job)
            return Decision(run_id=run.id, job=job, decision="approve" if approve else "reject",
                            reason=_masker(live).text(reason), at=format_time(services.clock()),
                            head=run_file.head, by=by).statement()
        finally:
            run_file.close()


def _signed_if_keyed(runs: RunStore, run_id: str, job: str, *, approve: bool, reason: str,
                     services: Services, live: Pipeline | None,
                     signing: SigningRequest | None) -> SignedDecision | None:
    """The signed decision, when the gate has keyed approvers and a way to sign was given
    (or an agent runs); None for gates without keys and when nothing can sign."""
    run_file = runs.open(run_id)
    try:
        run = replay(run_file)
        policy = run.gate_policy(job)
        if policy is None or not policy.keyed:
            return None
        if signing is None:
            signing = SigningRequest(key_file=None)
        _waiting_gate(run, job)
        try:
            return prepare(run, run_file.head, job, approve=approve, reason=reason,
                           who=services.who().user, now=services.clock(),
                           masker=_masker(live), request=signing)
        except SigningError:
            if signing.key_file is not None:
                raise
            return None  # no key given and none in an agent: recorded as an unsigned refusal
    finally:
        run_file.close()


def _live_pipeline(path: Path) -> Pipeline | None:
    """The pipeline file as it is now, for the secrets its variables hold; None if it cannot
    be read (an approver on another machine of a shared store may not have it)."""
    try:
        return load_pipeline_file(path).pipeline
    except PulsarideError:
        return None


def _decide_gate(state: StateDir, runs: RunStore, run_file: RunLog, job: str, *, approve: bool,
                 reason: str,
                 services: Services, live: Pipeline | None,
                 signed: SignedDecision | None = None) -> tuple[PipelineRun, JobState]:
    who = services.who()
    heads: set[str] = set()
    try:
        with run_file.locked():
            run = replay(run_file, heads=heads)
            # An approver may paste a secret into --reason: mask with the live values (the
            # run's recorded definition holds them masked already, so it cannot tell).
            run.masker = _masker(live)
            now = services.clock()
            quarantine_tail(run_file, run, now)
            current = _waiting_gate(run, job)
            refusal = _gate_refusal(run, job, current, who.user, now)
            fields = {"job": job, "stage": current.stage, "attempt": current.attempt,
                      "by": who.user, "host": who.host}
            policy = run.gate_policy(job)
            if policy is not None and policy.keyed and refusal is None:
                refusal = record_keyed(run, current, heads, signed, approve=approve, now=now,
                                       fields=fields)
            elif refusal is not None:
                run.record(JobApprovalRefused, now, decision="approve" if approve else "reject",
                           reason=refusal, **fields)
            else:
                verb = "approved" if approve else "rejected"
                run.record(JobApproved if approve else JobRejected, now, reason=reason,
                           head=run_file.head, **fields)
                run.record(RunCheckpoint, now, reason=f"{job} {verb} by {who.user}")
            run_file.append(run.pending())
            if refusal is None:
                index(runs, "checkpoint", run_file, now)
            if refusal is None and services.seal_key is not None:
                seal_head(run_file, services.seal_key, now, who.user,
                          state.seals_file(run.id))
                index(runs, "sealed", run_file, now)
    finally:
        run_file.close()
    if refusal is not None:
        asked = "approval" if approve else "rejection"
        raise GateError(f"{asked} of '{job}' refused: {refusal} (the attempt is recorded)")
    return run, run.jobs[job]


def seal_run(pipeline_path: Path | None, *, state_dir: Path | None, run_id: str,
             key: Ed25519PrivateKey, services: Services, store: str | None = None) -> Seal:
    """Sign the current chain head of a run (after checking that the file replays cleanly)."""
    state = StateDir.for_command(pipeline_path, state_dir)
    with closing(open_store(store, state)) as runs:
        run_file = runs.open(check_run_id(run_id))
        try:
            replay(run_file)
            if run_file.tail is not None:
                raise RunFileError(run_file.where, run_file.tail.first_line_no,
                                   "torn last line; resume the run (it sets the bytes aside) "
                                   "before sealing")
            now = services.clock()
            seal = seal_head(run_file, key, now, services.who().user, state.seals_file(run_id))
            index(runs, "sealed", run_file, now)
            return seal
        finally:
            run_file.close()


def index(store: RunStore, event: str, run_file: RunLog, now: datetime) -> None:
    """Note in the store's run index that the run now ends at `run_file`'s head."""
    store.note_in_index(IndexEntry(event, run_file.run_id, run_file.lines, run_file.head,
                                   format_time(now)))


def seal_head(run_file: RunLog, key: Ed25519PrivateKey, now: datetime, by: str,
              seals: Path | None = None) -> Seal:
    """Sign the head of `run_file` as last read or written, and keep the seal in `seals`
    (default: beside the run file)."""
    seal = sign(key, run_id=run_file.run_id, seq=run_file.seq, head=run_file.head,
                at=format_time(now), by=by)
    append_seal(seals or seals_path(Path(run_file.where)), seal)
    return seal


def _gate_refusal(run: PipelineRun, name: str, job: JobState, who: str,
                  now: datetime) -> str | None:
    """Why the gate's policy, as fixed when the run started, refuses `who` now, or None."""
    return decision_refusal(run.gate_policy(name), who=who, started_by=run.started_by, at=now,
                            expires_at=job.expires_at)


# ---- helpers -------------------------------------------------------------------------------


def _acquire(store: RunStore, run_id: str, who: Identity, now: datetime) -> RunOwnership:
    owner = {"pid": who.pid, "host": who.host, "user": who.user, "since": now.isoformat()}
    return store.acquire(run_id, owner)


def _runner(run: PipelineRun, run_file: RunLog, lock: RunOwnership, pipeline_file: PipelineFile,
            *, state: StateDir, request: RunRequest, services: Services, masker: Masker,
            store: RunStore) -> Runner:
    factory = services.executor_for(request.executor)
    key = services.seal_key
    who = services.who().user
    seals = state.seals_file(run.id)

    def checkpoint(run_file: RunLog, now: datetime) -> None:
        index(store, "checkpoint", run_file, now)
        if key is not None:
            seal_head(run_file, key, now, who, seals)
            index(store, "sealed", run_file, now)

    return Runner(
        run=run, run_file=run_file, lock=lock, pipeline_file=pipeline_file, state=state,
        executor=factory(masker, services.observer, lock), store=store,
        environment=JobEnvironment(base=dict(os.environ), tool_bin=request.tool_bin,
                                   workdir=pipeline_file.path.parent),
        clock=services.clock, observer=services.observer,
        parallelism=request.parallelism, wait_for_approval=request.wait_for_approval,
        on_checkpoint=checkpoint,
    )


def _masker(pipeline: Pipeline | None) -> Masker:
    """A masker built from the live values: the environment pt runs in and the pipeline file
    as loaded (never a run's recorded definition: its secrets are masked already)."""
    if pipeline is None:
        return Masker(secret_values(dict(os.environ)))
    job_variables = [job.variables for job in pipeline.jobs.values()]
    return Masker(secret_values(dict(os.environ), pipeline.variables, *job_variables,
                                declared=pipeline.declared_secrets()))


def _recorded_definition(pipeline_file: PipelineFile, masker: Masker) -> dict[str, Any]:
    """The parsed definition as a run records it: secret variables and values masked."""
    masked: dict[str, Any] = masker.document(pipeline_file.pipeline.masked_definition())
    return masked


def _recorded_pipeline(pipeline_file: PipelineFile, masker: Masker, state: StateDir,
                       run_id: str, copy_name: str) -> dict[str, Any]:
    """What a run records of the pipeline file, keeping a copy of the file as run."""
    definition = _recorded_definition(pipeline_file, masker)
    masked = masker.data(pipeline_file.data, YAML_MASK)  # still parses (`***` would not)
    copy = keep_copy(state, run_id, copy_name, masked)
    return {"path": str(pipeline_file.path), "sha256": pipeline_file.sha256,
            "copy": str(copy), "copy_sha256": hashlib.sha256(masked).hexdigest(),
            "definition": definition, "definition_sha256": definition_digest(definition)}


def _signed_start(request: RunRequest, run_id: str, sha256: str, at: str,
                  by: str) -> dict[str, Any]:
    """`started_key` for RunStarted's parameters when the run is started with --key."""
    if request.start_key is None:
        return {}
    key = public_key_of(request.start_key)
    signature = sign_statement(start_statement(run_id, sha256, at, by), request.start_key)
    return {"started_key": {"fingerprint": key.fingerprint, "key": key.openssh,
                            "signature": signature, "signed_at": at}}


def _parameters(request: RunRequest, state: StateDir) -> dict[str, Any]:
    parameters: dict[str, Any] = {
        "parallelism": request.parallelism, "wait_for_approval": request.wait_for_approval,
        "state_dir": str(state.root)}
    if request.executor and request.executor != "local":
        parameters["executor"] = request.executor
    if request.store:
        parameters["store"] = safe_url(request.store)
    return parameters


def _check_unchanged(run: PipelineRun, pipeline_file: PipelineFile, masker: Masker,
                     allow_changed: bool) -> list[str] | None:
    """None if the file is the one the run uses; else the changes (if allowed). A change to
    the policy of a gate that has not run is never allowed (ADR 0017)."""
    if pipeline_file.sha256 == run.pipeline_sha256:
        return None
    done = {name for name, job in run.jobs.items() if job.status is DONE}
    gates = policy_changes(run.gate_policies, pipeline_file.pipeline, done)
    if gates:
        raise PipelineChangedError(
            f"{pipeline_file.path}: {'; '.join(gates)} since run {run.id} started; a gate's "
            "policy is fixed when its run starts (start a new run to use the new one)")
    new = _recorded_definition(pipeline_file, masker)
    changes = definition_changes(run.definition, new)
    if new != run.definition and not allow_changed:
        listed = "\n".join(f"  - {c}" for c in changes)
        raise PipelineChangedError(
            f"{pipeline_file.path} changed since run {run.id} started:\n{listed}\n"
            "resume with --allow-changed to continue with the new file (DONE jobs stay DONE)")
    return changes


def _from_stage(pipeline: Pipeline, run: PipelineRun, wanted: str | None) -> str:
    if wanted is not None:
        if wanted not in pipeline.stages:
            raise BadInputError(f"unknown stage '{wanted}' (stages: {', '.join(pipeline.stages)})")
        return wanted
    for stage in pipeline.stages:
        # A job a changed file adds has no state yet (the RunResumed line that adds it follows).
        if any(job.name not in run.jobs or run.jobs[job.name].status is not DONE
               for job in pipeline.jobs_of(stage)):
            return stage
    return pipeline.stages[-1]


def _requeue(run: PipelineRun, pipeline: Pipeline, from_stage: str, now: datetime, *,
             keep_rejected: bool = False) -> None:
    first = pipeline.stage_index(from_stage)
    for name, job in list(run.jobs.items()):  # also jobs a changed file no longer defines
        if job.status is RUNNING:
            run.record(JobInterrupted, now, job=name, stage=job.stage, attempt=job.attempt,
                       started_at=job.started_at,
                       reason="the runner process ended while the job was running")
    for name, job in run.active_jobs.items():
        if keep_rejected and job.approval is not None and job.approval.decision == "rejected":
            continue
        if pipeline.stage_index(job.stage) >= first and job.status in REQUEUEABLE:
            run.record(JobRequeued, now, job=name, stage=job.stage, attempt=job.attempt,
                       reason=f"resumed from stage {from_stage}", previous=job.status.value)


def _waiting_gate(run: PipelineRun, name: str) -> JobState:
    jobs = run.active_jobs
    gates = [n for n, spec in run.definition["jobs"].items() if spec["when"] == When.MANUAL]
    if name not in jobs:
        raise GateError(f"run {run.id} has no job '{name}' (manual jobs: {', '.join(gates)})")
    job = jobs[name]
    if name not in gates:
        raise GateError(f"job '{name}' is not a manual job (manual jobs: {', '.join(gates)})")
    if job.status is not WAITING:
        raise GateError(f"job '{name}' is not waiting for approval: it is {job.status.value}"
                        + _gate_hint(job))
    return job


def _gate_hint(job: JobState) -> str:
    if job.approval is not None:
        return f" ({job.approval.decision} by {job.approval.by} at {job.approval.at})"
    if job.status.value == "PENDING":
        return " (its needs are not met yet, or its stage has not started)"
    return ""


def import_jsonl(path: Path, store: str) -> tuple[str, int]:
    """Check the run file at `path` (chain, sequence, transitions) and store its lines, byte
    for byte, in the shared `store`; return the run id and the number of lines."""
    if not is_shared_store(store):
        raise BadInputError("import needs a shared store: --store postgresql://...")
    run_id, lines = exported_lines(path)
    from .pgstore import PostgresStore  # noqa: PLC0415 - psycopg only when asked for

    with closing(PostgresStore.connect(store)) as runs:
        runs.import_lines(run_id, lines)
    return run_id, len(lines)
