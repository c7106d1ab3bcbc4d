"""The status view of a run: a stable JSON document and the ASCII DAG drawn from it.

A pure fold over the replayed run; `now` is passed in so durations of running jobs are
deterministic in tests.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pulsaride.engine.aggregate import JobState, PipelineRun
from pulsaride.engine.model import Job, When
from pulsaride.engine.times import parse_time
from pulsaride.engine.transitions import DONE, RUNNING, WAITING, JobStatus

SCHEMA = "pulsaride.status/1"

SYMBOLS = {
    JobStatus.DONE: "✓", JobStatus.FAILED: "✗", JobStatus.RUNNING: "⏳",
    JobStatus.PENDING: "⏸", JobStatus.WAITING: "✋", JobStatus.APPROVED: "▶",
    JobStatus.RETRYING: "↻", JobStatus.SKIPPED: "⊘", JobStatus.CANCELLED: "■",
    JobStatus.INTERRUPTED: "⚡",
}
ASCII_SYMBOLS = {
    JobStatus.DONE: "[ok]", JobStatus.FAILED: "[FAIL]", JobStatus.RUNNING: "[run]",
    JobStatus.PENDING: "[..]", JobStatus.WAITING: "[gate]", JobStatus.APPROVED: "[go]",
    JobStatus.RETRYING: "[retry]", JobStatus.SKIPPED: "[skip]", JobStatus.CANCELLED: "[cancel]",
    JobStatus.INTERRUPTED: "[intr]",
}


def run_state(run: PipelineRun, active: bool) -> str:
    """succeeded/failed/aborted/rejected when finished; else running or waiting for approval
    (a runner is at work), awaiting approval, suspended (stopped on purpose; resume to go on),
    or interrupted (the runner was stopped or died)."""
    if run.outcome is not None:
        return run.outcome
    statuses = {job.status for job in run.active_jobs.values()}
    if active:
        return "waiting for approval" if WAITING in statuses and RUNNING not in statuses \
            else "running"
    if RUNNING in statuses or run.interrupted:
        return "interrupted"
    if WAITING in statuses:
        return "awaiting approval"
    return "suspended"


def status_document(run: PipelineRun, *, active: bool, now: datetime,
                    torn_tail_bytes: int = 0) -> dict[str, Any]:
    """The run's status as a stable, JSON-ready document."""
    pipeline = run.pipeline
    jobs = run.active_jobs
    return {
        "schema": SCHEMA,
        "pipeline_run_id": run.id,
        "pipeline": {"path": run.pipeline_path, "sha256": run.pipeline_sha256},
        "state": run_state(run, active),
        "active": active,
        "started_at": run.created_on.isoformat(),
        "started_by": run.started_by,
        "resumes": run.resumes,
        "events": run.version,
        "aborted": run.aborted.reason if run.aborted else None,
        "counts": dict(sorted(Counter(j.status.value for j in jobs.values()).items())),
        "torn_tail_bytes": torn_tail_bytes,
        "stages": [
            {"name": stage,
             "jobs": [_job(job, jobs[job.name], jobs, now) for job in pipeline.jobs_of(stage)]}
            for stage in pipeline.stages
        ],
    }


def _job(spec: Job, job: JobState, jobs: Mapping[str, JobState],
         now: datetime) -> dict[str, Any]:
    return {
        "name": spec.name,
        "status": job.status.value,
        "when": spec.when.value,
        "on_failure": spec.on_failure.value,
        "needs": list(spec.needs),
        "unmet_needs": [n for n in spec.needs if jobs[n].status is not DONE],
        "attempt": job.attempt,
        "attempts_in_budget": job.attempts_in_budget,
        "max_attempts": spec.retry.max + 1,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "duration_seconds": _duration(job, now),
        "exit_code": job.exit_code,
        "error": job.error,
        "reason": job.reason,
        "cause": job.cause or None,
        "retry_at": job.retry_at,
        "approval": None if job.approval is None else {
            "decision": job.approval.decision, "by": job.approval.by,
            "at": job.approval.at, "reason": job.approval.reason,
            # Signed by a key on the gate's list; False: a gate without keys, `by` is a name.
            "authenticated": job.approval.authenticated,
            "key_fingerprint": job.approval.key_fingerprint or None,
            "signers": list(job.approval.signers)},
        "signed_approvals": list(job.signed_by),
        "log": job.log,
    }


def _duration(job: JobState, now: datetime) -> float | None:
    if job.started_at is None:
        return None
    end = parse_time(job.finished_at) if job.finished_at else (
        now if job.status is RUNNING else None)
    if end is None:
        return None
    return round((end - parse_time(job.started_at)).total_seconds(), 3)


def render_status(document: dict[str, Any], *, pipeline_label: str, ascii_only: bool = False,
                  approve_hint: str | None = None) -> str:
    """The ASCII DAG: stages in order, one line per job with its symbol and details."""
    symbols = ASCII_SYMBOLS if ascii_only else SYMBOLS
    marks = max(2, *(len(s) for s in symbols.values()))
    width = max((len(j["name"]) for s in document["stages"] for j in s["jobs"]), default=10)
    lines = [_headline(document, pipeline_label)]
    for stage in document["stages"]:
        lines.append(f"Stage: {stage['name']}")
        for job in stage["jobs"]:
            symbol = symbols[JobStatus(job["status"])]
            detail = _detail(job)
            lines.append(f"  {symbol:<{marks}} {job['name']:<{width}}  {detail}".rstrip())
            if job["status"] == WAITING and approve_hint:
                lines.append(f"      approve: {approve_hint.format(job=job['name'])}")
    return "\n".join(lines)


def _headline(document: dict[str, Any], label: str) -> str:
    started = document["started_at"][:19].replace("T", " ")
    resumes = document["resumes"]
    extra = f", resumed {resumes}x" if resumes else ""
    head = (f"Run {document['pipeline_run_id']} of {label}: {document['state']}\n"
            f"  started {started} UTC by {document['started_by']}{extra}")
    if document["aborted"]:
        head += f"\n  aborted: {document['aborted']}"
    if document["torn_tail_bytes"]:
        head += (f"\n  warning: {document['torn_tail_bytes']} bytes after the last whole line "
                 "(a torn write); they will be set aside on resume")
    return head


def _detail(job: dict[str, Any]) -> str:
    parts = []
    status = job["status"]
    if job["duration_seconds"] is not None:
        parts.append(f"{job['duration_seconds']:.1f}s")
    retried = job["attempts_in_budget"] > 1 or status in ("RUNNING", "RETRYING", "FAILED")
    if job["max_attempts"] > 1 and job["attempt"] and retried:
        parts.append(f"attempt {job['attempts_in_budget']}/{job['max_attempts']}")
    if status in ("FAILED", "INTERRUPTED", "CANCELLED", "RETRYING") and job["error"]:
        parts.append(job["error"])
    if status == "RETRYING" and job["retry_at"]:
        parts.append(f"retry at {job['retry_at'][11:19]}")
    repeated = bool(job["reason"]) and job["reason"] in (job["error"] or "")
    if status in ("SKIPPED", "CANCELLED", "INTERRUPTED") and job["reason"] and not job["approval"] \
            and not repeated:  # a stopped job's error already says why ("stopped: <reason>")
        parts.append(job["reason"] if status != "SKIPPED" else f"skipped: {job['reason']}")
    if job["approval"] is not None:
        approval = job["approval"]
        said = f": {approval['reason']}" if approval["reason"] else ""
        how = "" if approval["authenticated"] else " (unauthenticated)"
        parts.append(f"{approval['decision']} by {approval['by']}{how}{said}")
    if status == "WAITING":
        parts.append("waiting for approval")
    if job["unmet_needs"] and status in ("PENDING",):
        parts.append(f"(needs: {', '.join(job['unmet_needs'])})")
    if job["when"] == When.MANUAL and status == "PENDING":
        parts.append("[manual]")
    return "  ".join(parts)
