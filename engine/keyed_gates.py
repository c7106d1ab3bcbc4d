"""Deciding a gate whose approvers have keys: the statement to sign, and what to record.

`prepare` builds the statement an approver signs (from the run as it is now: its head, the
gate's key list) and signs it with a key file or the ssh-agent; `record_keyed` turns a
checked decision into the events the run file gets: JobApprovalSigned while a `required: N`
gate still needs approvals, then JobApproved (or JobRejected at once), or JobApprovalRefused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .aggregate import JobState, PipelineRun
from .approvers import ApproverKey, key_holders
from .events import (
    JobApprovalRefused,
    JobApprovalSigned,
    JobApproved,
    JobRejected,
    RunCheckpoint,
)
from .gates import GateContext, KeyedVerdict, SignedDecision, keyed_verdict
from .masking import Masker
from .model import GatePolicy
from .signatures import (
    Decision,
    SigningError,
    agent_key_among,
    public_key_of,
    sign,
    sign_with_agent,
)
from .times import format_time


@dataclass(frozen=True)
class SigningRequest:
    """How the approver signs: a key file (private, or public with its private half in the
    agent), or None for the first gate key the ssh-agent holds."""

    key_file: Path | None


def prepare(run: PipelineRun, head: str, job: str, *, approve: bool, reason: str, who: str,
            now: datetime, masker: Masker, request: SigningRequest) -> SignedDecision:
    """Sign the decision about `job` of `run`, seen at chain head `head`."""
    policy = run.gate_policy(job)
    if policy is None or not policy.keyed:
        raise SigningError(f"job '{job}' has no approvers with keys: nothing to sign")
    keys = [a.key for a in policy.keys if a.key is not None]
    key: ApproverKey | None = (public_key_of(request.key_file)
                               if request.key_file is not None else None)
    by = _holder(policy, key) if key is not None else who

    def statement_by(signer: str) -> bytes:
        return Decision(run_id=run.id, job=job, decision="approve" if approve else "reject",
                        reason=masker.text(reason), at=format_time(now), head=head,
                        by=signer).statement()

    if request.key_file is not None:
        statement = statement_by(by)
        return SignedDecision(statement, sign(statement, request.key_file))
    # The agent: the first gate key it holds signs, as the name listed for that key.
    chosen = agent_key_among(keys)
    statement = statement_by(_holder(policy, chosen))
    return SignedDecision(statement, sign_with_agent(statement, chosen))


def _holder(policy: GatePolicy, key: ApproverKey) -> str:
    """The name a key signs as on this gate (its first listed name), or its fingerprint."""
    return key_holders(policy.keys).get(key, key.fingerprint)


def check(run: PipelineRun, job: JobState, heads: set[str], asked: str,
          signed: SignedDecision | None) -> KeyedVerdict:
    """The verdict on a decision of the keyed gate `job` of `run`."""
    policy = run.gate_policy(job.name)
    assert policy is not None and policy.keyed
    context = GateContext(run_id=run.id, job=job.name, heads=heads,
                          started_by=run.started_by, started_key=run.started_key,
                          approved_by=job.signed_by)
    return keyed_verdict(policy, context, asked, signed)


def record_keyed(run: PipelineRun, job: JobState, heads: set[str], signed: SignedDecision | None,
                 *, approve: bool, now: datetime, fields: dict[str, Any]) -> str | None:
    """Check a decision of the keyed gate `job` and record what it makes: JobApprovalRefused
    (returning why), or JobApprovalSigned / JobApproved / JobRejected and a checkpoint."""
    asked = "approve" if approve else "reject"
    verdict = check(run, job, heads, asked, signed)
    fingerprint = verdict.key.fingerprint if verdict.key is not None else ""
    if verdict.refusal is not None or signed is None or verdict.decision is None:
        refusal = verdict.refusal or "the decision is not signed"
        run.record(JobApprovalRefused, now, decision=asked, reason=refusal,
                   key_fingerprint=fingerprint, **fields)
        return refusal
    decision = verdict.decision
    signature = {"by": decision.by, "reason": decision.reason, "head": decision.head,
                 "signature": signed.signature, "key_fingerprint": fingerprint}
    fields = {k: v for k, v in fields.items() if k not in signature}
    policy = run.gate_policy(job.name)
    assert policy is not None
    counted = approve and len(job.signed_by) + 1 < policy.approvals_needed
    event = JobApprovalSigned if counted else JobApproved if approve else JobRejected
    run.record(event, now, signed_at=decision.at, **signature, **fields)
    run.record(RunCheckpoint, now, reason=f"{job.name} {asked} signed by {decision.by}")
    return None
