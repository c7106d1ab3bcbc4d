"""Gate policy is fixed when the run starts: who may decide a gate, and until when.

A gate's policy (`approvers`, `separate_approver`, `expires_in`, `on_expiry`) is the one its
run recorded when the gate first appeared (RunStarted, or the RunResumed that added the job).
Approving checks a decision against it; a resume with a changed file may not change it; and
`pt pipeline verify` re-checks every recorded decision against it (ADR 0017). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson

from .approvers import ApproverKey
from .model import GatePolicy, Pipeline, duration_problem
from .signatures import STATEMENT_TYPE, Decision, SignatureInvalid, signer
from .times import format_time, parse_time

POLICY_KEYS = ("approvers", "keys", "required", "separate_approver", "expires_in", "on_expiry")


def decision_refusal(policy: GatePolicy | None, *, who: str, started_by: str, at: datetime,
                     expires_at: str | None) -> str | None:
    """Why `who` may not decide a gate with `policy` at `at` (its window closing at
    `expires_at`), or None if they may."""
    if expires_at is not None and parse_time(expires_at) <= at:
        return f"the approval window closed at {expires_at}"
    return policy.refusal(who, started_by) if policy is not None else None


def expected_expiry(policy: GatePolicy | None, waiting_since: datetime) -> str | None:
    """When the window of a gate that began waiting at `waiting_since` closes (None: never);
    the scheduler records exactly this."""
    if policy is None or policy.expires_in is None or duration_problem(policy.expires_in):
        return None
    return format_time(waiting_since + timedelta(seconds=policy.expires_in))


def policy_changes(fixed: Mapping[str, GatePolicy], new: Pipeline,
                   done: Collection[str]) -> list[str]:
    """How `new` would change the policy of a gate that has not run yet, one phrase each
    (naming the gate and the key); empty when it changes none. New gates may be added."""
    return [change for name, policy in fixed.items() if name not in done
            for change in _changes(name, policy, new)]


def _changes(name: str, policy: GatePolicy, new: Pipeline) -> Iterator[str]:
    job = new.jobs.get(name)
    if job is None:
        yield f"gate '{name}' was removed before it ran"
        return
    if job.gate is None:
        yield f"gate '{name}': when changed from manual to {job.when.value} before it ran"
        return
    for key in POLICY_KEYS:
        old, now = _value(policy, key), _value(job.gate, key)
        if old != now:
            yield f"gate '{name}': {key} changed from {old} to {now}"


def _value(policy: GatePolicy, key: str) -> str:
    value = getattr(policy, key)
    if key == "approvers":
        return f"[{', '.join(value)}]" if value else "[] (anyone)"
    if key == "keys":
        return f"[{', '.join(sorted(a.key.fingerprint for a in value if a.key))}]"
    if key == "required":
        return str(policy.approvals_needed)
    if key == "expires_in":
        return "none" if value is None else f"{value:g}s"
    if key == "on_expiry":
        return str(value.value)
    return str(value).lower()


@dataclass(frozen=True)
class SignedDecision:
    """A decision statement (engine/signatures.py) and its armored SSHSIG signature."""

    statement: bytes
    signature: str


@dataclass(frozen=True)
class KeyedVerdict:
    """What a keyed gate makes of a signed decision: refused (why), or accepted, with the
    statement and the key that signed it."""

    refusal: str | None
    decision: Decision | None = None
    key: ApproverKey | None = None


@dataclass(frozen=True)
class GateContext:
    """What a decision is checked against, besides the policy: the run and gate it must be
    about, the chain heads the run has had, who started the run, the keys that approved."""

    run_id: str
    job: str
    heads: Collection[str]
    started_by: str
    started_key: str  # fingerprint of the key that started the run; empty: none
    approved_by: Collection[str]  # fingerprints that approved the waiting gate already


def keyed_verdict(policy: GatePolicy, context: GateContext, asked: str,
                  signed: SignedDecision | None) -> KeyedVerdict:
    """Check a decision (`asked`: approve | reject) of a keyed gate; pure but for the
    signature check itself."""
    if signed is None:
        return KeyedVerdict("this gate's approvers have keys: sign the decision (--key KEY, "
                            "PT_APPROVER_KEY or a key in the ssh-agent)")
    decision = parse_statement(signed.statement)
    if decision is None:
        return KeyedVerdict("the signed text is not a pt approval statement")
    wrong = _wrong_subject(decision, context, asked)
    if wrong is not None:
        return KeyedVerdict(wrong, decision)
    try:
        key = signer(signed.statement, signed.signature)
    except SignatureInvalid as exc:
        return KeyedVerdict(str(exc), decision)
    if key not in {a.key for a in policy.keys}:
        return KeyedVerdict(f"signed by {key.fingerprint}, a key not on the gate's approver "
                            "list", decision, key)
    refusal = _signer_refusal(policy, context, decision, key, asked)
    return KeyedVerdict(refusal, decision, key)


def parse_statement(statement: bytes) -> Decision | None:
    """The Decision `statement` holds, or None if it is not a well-formed one."""
    try:
        fields = orjson.loads(statement)
    except orjson.JSONDecodeError:
        return None
    names = ("run_id", "job", "decision", "reason", "at", "head", "by")
    if (not isinstance(fields, dict) or fields.get("type") != STATEMENT_TYPE
            or set(fields) != {"type", *names}
            or not all(isinstance(fields[n], str) for n in names)):
        return None
    decision = Decision(**{n: fields[n] for n in names})
    return decision if decision.statement() == statement else None


def _wrong_subject(decision: Decision, context: GateContext, asked: str) -> str | None:
    if decision.run_id != context.run_id or decision.job != context.job:
        return (f"the signature is over a decision of run {decision.run_id!r} job "
                f"{decision.job!r}, not of this run's job '{context.job}'")
    if decision.decision != asked:
        return f"the signature is over '{decision.decision}', not '{asked}'"
    if decision.head not in context.heads:
        return (f"the signed chain head {decision.head[:16]}... is not a line of this run "
                "(the approver saw another run, or the run file was rewritten)")
    return None


def _signer_refusal(policy: GatePolicy, context: GateContext, decision: Decision,
                    key: ApproverKey, asked: str) -> str | None:
    names = {a.name for a in policy.keys if a.key == key}
    if decision.by not in names:
        return (f"the statement names {decision.by!r}, but key {key.fingerprint} belongs to "
                f"{', '.join(sorted(names))}")
    if policy.separate_approver:
        if context.started_key and context.started_key == key.fingerprint:
            return (f"key {key.fingerprint} started the run and this gate needs a separate "
                    "approver")
        if not context.started_key and decision.by == context.started_by:
            return f"{decision.by} started the run and this gate needs a separate approver"
    if asked == "approve" and key.fingerprint in context.approved_by:
        return (f"key {key.fingerprint} ({decision.by}) approved this gate already; "
                f"required: {policy.approvals_needed} needs distinct keys")
    return None

