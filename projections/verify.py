"""An auditor's check of one run's evidence: every line, the chain, the replay, the pipeline
file as run, the job logs, and (given a public key) the seals.

Findings name the first line where something is wrong; checking goes on after a finding so
that one report lists everything (the chain re-synchronises on the line actually present).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from eventsourcing.domain import OriginatorIDError, OriginatorVersionError

from pulsaride.engine.aggregate import PipelineRun
from pulsaride.engine.errors import PulsarideError
from pulsaride.engine.events import (
    JobApprovalSigned,
    JobApproved,
    JobAwaitingApproval,
    JobRejected,
    RunEvent,
    RunStarted,
)
from pulsaride.engine.evidence import RunEvidence as Evidence
from pulsaride.engine.fastschema import Check, Unsure, compile_schema
from pulsaride.engine.gates import (
    GateContext,
    SignedDecision,
    decision_refusal,
    expected_expiry,
    keyed_verdict,
)
from pulsaride.engine.lines import GENESIS, LineError, decode
from pulsaride.engine.loader import parse_pipeline
from pulsaride.engine.masking import MASK
from pulsaride.engine.model import GatePolicy, definition_bounds_problems, definition_digest
from pulsaride.engine.seal import Seal, key_id, signature_valid
from pulsaride.engine.signatures import Decision, SignatureInvalid, signer, start_statement
from pulsaride.schemas import load_schema

SCHEMA = "pulsaride.verification/1"


@dataclass(frozen=True)
class Finding:
    """One thing wrong with the evidence."""

    check: str
    message: str
    line: int | None = None

    def text(self) -> str:
        """`line N: [check] message`."""
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{where}[{self.check}] {self.message}"


@dataclass
class VerifyReport:
    """The outcome of verifying one run."""

    run_id: str
    lines: int = 0
    head: str = GENESIS
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    logs_checked: int = 0
    sealed_up_to: int | None = None
    signed_decisions: int = 0  # decisions of keyed gates whose signature holds

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.findings

    def document(self) -> dict[str, Any]:
        """A stable JSON-ready form."""
        first = self.findings[0] if self.findings else None
        return {
            "schema": SCHEMA,
            "pipeline_run_id": self.run_id,
            "verdict": "verified" if self.ok else "failed",
            "lines": self.lines,
            "head": self.head,
            "logs_checked": self.logs_checked,
            "signed_decisions": self.signed_decisions,
            "sealed_up_to": self.sealed_up_to,
            "first_offending_line": first.line if first else None,
            "findings": [{"line": f.line, "check": f.check, "message": f.message}
                         for f in self.findings],
            "notes": self.notes,
        }


def verify_run(evidence: Evidence, *, public_key: Ed25519PublicKey | None = None,
               current_file_sha256: str | None = None) -> VerifyReport:
    """Check everything the evidence claims; see the module docstring."""
    report = VerifyReport(run_id=evidence.run_id, lines=len(evidence.lines))
    records, digests = _check_lines(evidence, report)
    report.head = digests[-1] if digests else GENESIS
    if not evidence.lines:
        report.findings.append(Finding(
            "sequence", "the run file has no complete line: line 1 (RunStarted) is missing", 1))
    if evidence.tail:
        report.findings.append(Finding(
            "tail", f"{len(evidence.tail)} bytes after the last complete line (a torn write; "
            "'pt pipeline resume' sets them aside)", len(evidence.lines) + 1))
    _check_pipelines(evidence, records, report, current_file_sha256)
    _check_artifacts(evidence, records, report)
    _check_seals(evidence, digests, report, public_key)
    report.findings.sort(key=lambda f: (f.line is None, f.line or 0))
    return report


# ---- lines ---------------------------------------------------------------------------------


def _check_lines(evidence: Evidence,
                 report: VerifyReport) -> tuple[list[tuple[int, dict[str, Any]]], list[str]]:
    records: list[tuple[int, dict[str, Any]]] = []
    digests: list[str] = []
    replay = _Replay(report)
    prev, expected = GENESIS, 1
    for number, raw in enumerate(evidence.lines, start=1):
        digest = hashlib.sha256(raw).hexdigest()
        digests.append(digest)
        record = _parse(raw, number, report)
        if record is not None:
            expected = _check_record(record, number, prev, expected, run_id=evidence.run_id,
                                     report=report)
            records.append((number, record))
            replay.fold(record, number)
        else:
            expected += 1
        prev = digest
    return records, digests


def _parse(raw: bytes, number: int, report: VerifyReport) -> dict[str, Any] | None:
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        report.findings.append(Finding("json", "not a JSON line", number))
        return None
    if not isinstance(record, dict):
        report.findings.append(Finding("json", "not a JSON object", number))
        return None
    return record


def _check_record(record: dict[str, Any], number: int, prev: str, expected: int, *,
                  run_id: str, report: VerifyReport) -> int:
    """Check one parsed line; return the seq expected of the next line."""
    add = report.findings.append
    problem = _schema_problem(record)
    if problem is not None:
        add(Finding("schema", problem, number))
    if record.get("pipeline_run_id") != run_id:
        add(Finding("run", f"belongs to run {record.get('pipeline_run_id')!r}, not {run_id!r} "
                           "(a line copied from another run?)", number))
    seq = record.get("seq")
    if seq != expected:
        add(Finding("sequence", f"seq is {seq!r} where {expected} was expected: a line was "
                                "removed, inserted or moved", number))
    if record.get("prev") != prev:
        add(Finding("chain", f"prev does not match the SHA-256 of line {number - 1}: line "
                             f"{number - 1} was changed, or lines were removed, inserted or "
                             "moved before this one" if number > 1 else
                             "the first line's prev is not 64 zeros", number))
    return seq + 1 if isinstance(seq, int) else expected + 1


@cache
def _fast_checks() -> dict[str, Check | None]:
    """Per event: an exact yes/no check of a line against its schema (fastschema), about 40x
    faster than jsonschema, which is only loaded to explain a line the fast check rejects."""
    schema = load_schema("event")
    defs = schema["$defs"]
    return {name: compile_schema(_event_schema(name), defs)
            for name in schema["properties"]["event"]["enum"]}


@cache
def _validator(name: str) -> Any:
    from jsonschema import Draft202012Validator  # noqa: PLC0415 - 0.1 s to import; rarely needed

    return Draft202012Validator(_event_schema(name))


def _event_schema(name: str) -> dict[str, Any]:
    return {"$ref": f"#/$defs/{name}", "$defs": load_schema("event")["$defs"]}


def _schema_problem(record: dict[str, Any]) -> str | None:
    name = record.get("event")
    checks = _fast_checks()
    if not isinstance(name, str) or name not in checks:
        return f"unknown event {name!r}"
    fast = checks[name]
    if fast is not None:
        try:
            if fast(record):
                return None
        except Unsure:
            pass
    validator = _validator(name)
    error = next(iter(validator.iter_errors(record)), None)
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{where + ': ' if where else ''}{error.message}"


class _Replay:
    """Folds lines through the aggregate; the first illegal transition is a finding."""

    def __init__(self, report: VerifyReport) -> None:
        self._report = report
        self.run: PipelineRun | None = None
        self._broken = False
        self._heads: set[str] = set()  # digests of the lines before the current one

    def fold(self, record: dict[str, Any], number: int) -> None:
        if self._broken:
            return
        prev = record.get("prev")
        if isinstance(prev, str):
            self._heads.add(prev)
        try:
            event = decode(record)
            if self.run is None:
                run = event.mutate(None)
                assert isinstance(run, PipelineRun)
                self.run = run
                self._check_start(record, number)
            else:
                self._check_gate(event, number)
                event.mutate(self.run)
        except (OriginatorIDError, OriginatorVersionError):
            self._refuse(number, "out of sequence for the run's aggregate")
        except (LineError, PulsarideError, AssertionError, TypeError, ValueError, KeyError,
                AttributeError) as exc:
            self._refuse(number, str(exc) or type(exc).__name__)

    def _check_gate(self, event: RunEvent | RunStarted, number: int) -> None:
        """A decision, or the start of a gate's wait, against the gate's policy as recorded
        when it first appeared (ADR 0017); the run's state is the one before this line."""
        run = self.run
        assert run is not None
        if isinstance(event, JobAwaitingApproval):
            expected = expected_expiry(run.gate_policy(event.job), event.timestamp)
            if event.expires_at != expected:
                self._report.findings.append(Finding(
                    "gate", f"gate '{event.job}' waits until {event.expires_at or 'no time'}, "
                            f"but its policy gives {expected or 'no time'} (expires_in as "
                            "recorded at the start)", number))
        elif isinstance(event, JobApproved | JobRejected | JobApprovalSigned) and \
                _keyed(run.gate_policy(event.job)):
            self._check_signed(event, number)
        elif isinstance(event, JobApproved | JobRejected):
            state = run.jobs.get(event.job)
            refusal = decision_refusal(
                run.gate_policy(event.job), who=event.by, started_by=run.started_by,
                at=event.timestamp, expires_at=state.expires_at if state else None)
            if refusal is not None:
                verb = "approval" if isinstance(event, JobApproved) else "rejection"
                self._report.findings.append(Finding(
                    "gate", f"the {verb} of gate '{event.job}' by {event.by} breaks the policy "
                            f"recorded when the run started: {refusal}", number))

    def _check_signed(self, event: JobApproved | JobRejected | JobApprovalSigned,
                      number: int) -> None:
        """A decision of a keyed gate: signed, by a listed key, over this run, this gate and a
        real earlier head, and within the policy (separation, distinct keys, the window)."""
        run = self.run
        assert run is not None
        policy = run.gate_policy(event.job)
        assert policy is not None
        verb = "rejection" if isinstance(event, JobRejected) else "approval"
        state = run.jobs.get(event.job)
        if not event.signature:
            self._report.findings.append(Finding(
                "gate", f"the {verb} of gate '{event.job}' by {event.by} is not signed, but the "
                        "gate's approvers have keys (a forged or hand-written line)", number))
            return
        asked = "reject" if isinstance(event, JobRejected) else "approve"
        statement = Decision(run_id=run.id, job=event.job, decision=asked, reason=event.reason,
                             at=event.signed_at or "", head=event.head, by=event.by).statement()
        context = GateContext(run_id=run.id, job=event.job, heads=frozenset(self._heads),
                              started_by=run.started_by, started_key=run.started_key,
                              approved_by=state.signed_by if state else ())
        verdict = keyed_verdict(policy, context, asked, SignedDecision(statement, event.signature))
        refusal = verdict.refusal or decision_refusal(
            policy, who=event.by, started_by=run.started_by, at=event.timestamp,
            expires_at=state.expires_at if state else None)
        if refusal is None and verdict.key is not None \
                and verdict.key.fingerprint != event.key_fingerprint:
            refusal = f"the line names key {event.key_fingerprint}, the signature is by another"
        if refusal is not None:
            self._report.findings.append(Finding(
                "gate", f"the signed {verb} of gate '{event.job}' by {event.by} does not hold: "
                        f"{refusal}", number))
        else:
            self._report.signed_decisions += 1

    def _check_start(self, record: dict[str, Any], number: int) -> None:
        """A run started with --key: the start statement verifies with the recorded key."""
        run = self.run
        assert run is not None
        started = run.parameters.get("started_key")
        if not isinstance(started, dict):
            return
        pipeline = record.get("pipeline")
        sha256 = pipeline.get("sha256", "") if isinstance(pipeline, dict) else ""
        statement = start_statement(run.id, str(sha256),
                                    str(started.get("signed_at", "")), run.started_by)
        try:
            key = signer(statement, str(started.get("signature", "")))
        except SignatureInvalid as exc:
            self._report.findings.append(Finding("gate", f"the signed start does not verify: "
                                                          f"{exc}", number))
            return
        if key.fingerprint != started.get("fingerprint"):
            self._report.findings.append(Finding(
                "gate", "the start is signed by another key than the one recorded", number))

    def _refuse(self, number: int, why: str) -> None:
        self._broken = True
        self._report.findings.append(Finding("transition", f"replay refuses this line: {why}",
                                             number))


# ---- the pipeline file as run, logs, set-aside tails ------------------------------------------


def _check_pipelines(evidence: Evidence, records: list[tuple[int, dict[str, Any]]],
                     report: VerifyReport, current_file_sha256: str | None) -> None:
    latest: str | None = None
    for number, record in records:
        pipeline = record.get("pipeline")
        if not isinstance(pipeline, dict):
            continue
        latest = pipeline.get("sha256")
        for problem in _pipeline_problems(evidence, pipeline):
            report.findings.append(Finding("pipeline", problem, number))
    if current_file_sha256 is not None and latest is not None:
        if current_file_sha256 == latest:
            report.notes.append("the pipeline file today is the one the run used")
        else:
            report.notes.append("the pipeline file today differs from the one the run used "
                                f"(run: {latest[:12]}, today: {current_file_sha256[:12]})")


def _pipeline_problems(evidence: Evidence, pipeline: dict[str, Any]) -> Iterator[str]:
    definition = pipeline.get("definition")
    if not isinstance(definition, dict):
        return
    if definition_digest(definition) != pipeline.get("definition_sha256"):
        yield "the recorded definition does not hash to its recorded definition_sha256"
    yield from _bounds_findings(definition)
    copy = evidence.artifact(str(pipeline.get("copy", "")))
    if copy is None:
        yield f"the copy of the pipeline file as run ({pipeline.get('copy')}) is missing"
        return
    if hashlib.sha256(copy).hexdigest() != pipeline.get("copy_sha256"):
        yield f"the copy of the pipeline file ({pipeline.get('copy')}) was changed"
        return
    try:
        parsed = parse_pipeline(copy, str(pipeline.get("copy"))).masked_definition()
    except PulsarideError as exc:
        yield f"the pipeline file as run no longer parses: {exc}"
        return
    if not _same_definition(parsed, definition):
        yield "the recorded definition differs from the pipeline file as run"


def _bounds_findings(definition: dict[str, Any]) -> Iterator[str]:
    """Durations no run may hold (written before the bounds existed, or edited in)."""
    try:
        problems = definition_bounds_problems(definition)
    except (AttributeError, TypeError, KeyError):
        return  # a malformed definition: the schema check names it
    for problem in problems:
        yield f"the recorded definition is out of bounds: {problem}"


def _same_definition(parsed: Any, recorded: Any) -> bool:
    """Equal, where a recorded string holding MASK may stand for any string."""
    if isinstance(recorded, str) and MASK in recorded:
        return isinstance(parsed, str)
    if isinstance(recorded, dict) and isinstance(parsed, dict):
        return recorded.keys() == parsed.keys() and all(
            _same_definition(parsed[k], recorded[k]) for k in recorded)
    if isinstance(recorded, list) and isinstance(parsed, list):
        return len(recorded) == len(parsed) and all(
            _same_definition(p, r) for p, r in zip(parsed, recorded, strict=True))
    return bool(parsed == recorded)


def _check_artifacts(evidence: Evidence, records: list[tuple[int, dict[str, Any]]],
                     report: VerifyReport) -> None:
    for number, record in records:
        log, digest = record.get("log"), record.get("log_sha256")
        if isinstance(log, str) and isinstance(digest, str):
            report.logs_checked += 1
            _check_log(evidence, log, digest, number, report)
        side = record.get("path")
        if record.get("event") == "TailQuarantined" and isinstance(side, str):
            _check_side_file(evidence, side, record.get("sha256"), number, report)
        # A signed decision names the head its approver saw before signing (maybe earlier
        # lines ago); _Replay checks that one. An unsigned one is recorded at once.
        if record.get("event") in ("JobApproved", "JobRejected") and \
                not record.get("signature") and record.get("head") != record.get("prev"):
            report.findings.append(Finding(
                "approval", "the chain head the decision records is not the line before it "
                            "(what the approver saw was changed)", number))


def _check_log(evidence: Evidence, relative: str, digest: str, number: int,
               report: VerifyReport) -> None:
    data = evidence.artifact(relative)
    if data is None:
        report.findings.append(Finding("log", f"{relative} is missing", number))
    elif hashlib.sha256(data).hexdigest() != digest:
        report.findings.append(Finding("log", f"{relative} does not match its recorded SHA-256",
                                       number))


def _check_side_file(evidence: Evidence, name: str, digest: Any, number: int,
                     report: VerifyReport) -> None:
    data = evidence.side_file(name)
    if data is None:
        report.notes.append(f"line {number}: the set-aside tail {name} is not present")
    elif hashlib.sha256(data).hexdigest() != digest:
        report.findings.append(Finding("tail", f"{name} does not match its recorded SHA-256",
                                       number))


# ---- seals -------------------------------------------------------------------------------------


def _check_seals(evidence: Evidence, digests: list[str], report: VerifyReport,
                 public_key: Ed25519PublicKey | None) -> None:
    """Every seal's head against the chain (no key needed), then, given the key, the
    signatures of the seals made with it."""
    for problem in evidence.seal_problems:
        report.findings.append(Finding("seal", problem))
    holding = [seal for seal in evidence.seals
               if _head_holds(seal, evidence.run_id, digests, report)]
    if public_key is None:
        _note_unsigned(evidence, holding, report)
        return
    wanted = key_id(public_key)
    valid = [seal for seal in holding if seal.key_id == wanted
             and _signature_holds(seal, public_key, report)]
    if not valid:
        report.findings.append(Finding("seal", f"no valid seal by key {wanted}"))
        return
    report.sealed_up_to = max(seal.seq for seal in valid)
    if report.sealed_up_to < len(digests):
        report.notes.append(f"lines {report.sealed_up_to + 1}-{len(digests)} were written "
                            "after the last seal and are not covered by it")


def _note_unsigned(evidence: Evidence, holding: list[Seal], report: VerifyReport) -> None:
    if not evidence.seals:
        report.notes.append("no seal: truncating the end of the file or rewriting the "
                            "whole chain would not be detected (see ADR 0006)")
    elif len(holding) == len(evidence.seals):
        report.notes.append(f"{len(evidence.seals)} seal(s) present, their heads match the "
                            "chain; signatures not checked (give --pubkey to check them)")


def _head_holds(seal: Seal, run_id: str, digests: list[str], report: VerifyReport) -> bool:
    """True if the line the seal names is there and is the line that was sealed."""
    if seal.run_id != run_id:
        report.findings.append(Finding("seal", f"a seal of run {seal.run_id} is filed here"))
        return False
    if seal.seq > len(digests):
        report.findings.append(Finding(
            "seal", f"sealed line {seal.seq} is missing: the file was cut after line "
                    f"{len(digests)}", len(digests) + 1))
        return False
    if digests[seal.seq - 1] != seal.head:
        report.findings.append(Finding(
            "seal", f"line {seal.seq} is not the line that was sealed: the chain up to it was "
                    "rewritten", seal.seq))
        return False
    return True


def _signature_holds(seal: Seal, public_key: Ed25519PublicKey, report: VerifyReport) -> bool:
    if not signature_valid(seal, public_key):
        report.findings.append(Finding("seal", f"the seal of line {seal.seq} has an invalid "
                                               "signature"))
        return False
    return True


def _keyed(policy: GatePolicy | None) -> bool:
    return policy is not None and policy.keyed
