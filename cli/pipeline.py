"""`pt pipeline ...`: run, status, resume, approve, reject, validate."""

from __future__ import annotations

import shlex
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

import click
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pulsaride.engine.commands import (
    RunRequest,
    decide_gate,
    decision_statement,
    resume_run,
    start_run,
)
from pulsaride.engine.errors import EXIT_OK
from pulsaride.engine.loader import load_pipeline_file
from pulsaride.engine.model import When
from pulsaride.engine.run_views import read_run
from pulsaride.engine.runner import Runner, RunResult
from pulsaride.engine.seal import load_private_key
from pulsaride.engine.services import Identity
from pulsaride.projections.status import render_status, status_document

from . import options
from .attest import attest
from .context import Pt, pass_pt
from .evidence import export, history, import_run, keygen, seal, show, verify
from .gate_signing import GateSigning
from .reporter import ProgressReporter

JSON_HELP = "Print a JSON document on stdout (progress goes to stderr)."

@click.group()
def pipeline() -> None:
    """Run and inspect migration pipelines (pulsaride-pipeline.yml), and audit their runs."""


@pipeline.command()
@options.pipeline_file()
@options.parallelism()
@options.run_id("Id for the new run [default: random].")
@options.no_wait()
@options.quiet()
@options.state_dir()
@options.store()
@options.executor()
@options.seal_key()
@click.option("--key", "start_key", type=click.Path(path_type=Path), metavar="KEY",
              help="Sign the start with this SSH key: gates with `separate_approver: true` then "
                   "refuse decisions signed by the same key.")
@options.as_json(JSON_HELP)
@pass_pt
def run(pt: Pt, pipeline_file: Path, parallelism: int, run_id: str | None, no_wait: bool,
        quiet: bool, state_dir: Path | None, store: str | None, executor: str | None,
        seal_key: Path | None, start_key: Path | None, as_json: bool) -> None:
    """Run the pipeline FILE: stages in order, jobs in parallel as their needs allow.

    The run id is printed first; resume it later with 'pt pipeline resume FILE --run-id ID'.
    """
    request = replace(_request(pt, pipeline_file, state_dir, parallelism, not no_wait, store,
                               executor), start_key=start_key)
    reporter = _reporter(pipeline_file, state_dir, as_json, quiet)
    services = pt.services(observer=reporter, seal_key=_seal_key(seal_key))
    runner = start_run(request, services, run_id)
    _finish(pt, _execute(runner), pipeline_file, state_dir, as_json, store)


@pipeline.command()
@options.pipeline_file()
@options.run_id()
@click.option("--from", "from_stage", metavar="STAGE",
              help="Re-run unsuccessful jobs from this stage on "
                   "[default: the first stage not all DONE].")
@click.option("--allow-changed", is_flag=True,
              help="Continue even though FILE changed since the run started (recorded).")
@options.parallelism()
@options.no_wait()
@options.quiet()
@options.state_dir()
@options.store()
@options.executor()
@options.seal_key()
@options.as_json(JSON_HELP)
@pass_pt
def resume(pt: Pt, pipeline_file: Path, run_id: str | None, from_stage: str | None,
           allow_changed: bool, parallelism: int, no_wait: bool, quiet: bool,
           state_dir: Path | None, store: str | None, executor: str | None,
           seal_key: Path | None, as_json: bool) -> None:
    """Continue a run of FILE. DONE jobs are never executed again; failed, skipped,
    cancelled and interrupted jobs run again with a fresh retry budget."""
    request = _request(pt, pipeline_file, state_dir, parallelism, not no_wait, store, executor)
    if run_id is None:  # an empty --run-id "" is refused as invalid, never "the latest"
        run_id = read_run(pipeline_file, state_dir, None, store=store).run.id
    reporter = _reporter(pipeline_file, state_dir, as_json, quiet)
    services = pt.services(observer=reporter, seal_key=_seal_key(seal_key))
    outcome = resume_run(request, services, run_id,
                         from_stage=from_stage, allow_changed=allow_changed)
    if isinstance(outcome, RunResult):
        click.echo(f"run {run_id} already succeeded; nothing to resume", err=True)
        _finish(pt, outcome, pipeline_file, state_dir, as_json, store)
    else:
        _finish(pt, _execute(outcome), pipeline_file, state_dir, as_json, store)


@pipeline.command()
@options.pipeline_file()
@options.run_id()
@options.state_dir()
@options.store()
@options.as_json(JSON_HELP)
@click.option("--ascii", "ascii_only", is_flag=True, help="Use ASCII status markers.")
@pass_pt
def status(pt: Pt, pipeline_file: Path, run_id: str | None, state_dir: Path | None,
           store: str | None, as_json: bool, ascii_only: bool) -> None:
    """Show a run of FILE as an ASCII DAG: stages in order, one line per job."""
    view = read_run(pipeline_file, state_dir, run_id, store=store)
    tail = len(view.tail.data) if view.tail else 0
    document = status_document(view.run, active=view.active, now=pt.services().clock(),
                               torn_tail_bytes=tail)
    if as_json:
        _print_json(document)
        return
    hint = _approve_command(pipeline_file, state_dir, view.run.id)
    click.echo(render_status(document, pipeline_label=str(pipeline_file),
                             ascii_only=ascii_only or not _utf8(), approve_hint=hint))


def _gate_options(verb: str, whom: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """The options shared by approve and reject."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        for option in reversed([
            options.pipeline_file(),
            click.option("--job", required=True, metavar="NAME", help=f"The manual job to {verb}."),
            options.run_id(),
            click.option("--as", "who", metavar="WHO",
                         help=f"Who {whom} [default: the OS user]; on a gate whose approvers "
                              "have keys the name listed for the signing key is recorded."),
            click.option("--reason", default="", metavar="TEXT",
                         help="Why (kept in the evidence)."),
            options.state_dir(),
            options.store(),
            options.seal_key(),
            click.option("--key", "approver_key", type=click.Path(path_type=Path),
                         envvar="PT_APPROVER_KEY", metavar="KEY",
                         help="Sign the decision with this SSH key (private key, or public key "
                              "whose private half is in the ssh-agent); a gate whose approvers "
                              "have keys needs it [env PT_APPROVER_KEY; default: the first "
                              "gate key the running ssh-agent holds]."),
            click.option("--print-statement", is_flag=True,
                         help="Print the statement to sign (for `ssh-keygen -Y sign -n "
                              "pulsaride-approval`) and record nothing."),
            click.option("--statement", "statement_file", type=click.Path(path_type=Path),
                         metavar="FILE", help="A statement printed by --print-statement ..."),
            click.option("--signature", "signature_file", type=click.Path(path_type=Path),
                         metavar="FILE", help="... and its signature by `ssh-keygen -Y sign`: "
                                              "record that signed decision."),
            options.as_json(JSON_HELP),
        ]):
            command = option(command)
        return command

    return decorate


@pipeline.command()
@_gate_options("release", "approves")
@pass_pt
def approve(pt: Pt, /, **given: Any) -> None:
    """Release a manual gate of a run of FILE; a waiting run continues within a second."""
    _gate(pt, approve=True, **given)


@pipeline.command()
@_gate_options("refuse", "rejects")
@pass_pt
def reject(pt: Pt, /, **given: Any) -> None:
    """Refuse a manual gate of a run of FILE: it and every job needing it are SKIPPED."""
    _gate(pt, approve=False, **given)


@pipeline.command()
@options.pipeline_file()
@options.as_json(JSON_HELP)
def validate(pipeline_file: Path, as_json: bool) -> None:
    """Check FILE without running anything; list every problem (exit 2 if any)."""
    loaded = load_pipeline_file(pipeline_file)
    jobs = loaded.pipeline.jobs
    gates = [name for name, job in jobs.items() if job.when is When.MANUAL]
    if as_json:
        _print_json({"valid": True, "file": str(pipeline_file), "sha256": loaded.sha256,
                     "stages": list(loaded.pipeline.stages), "jobs": list(jobs),
                     "manual_jobs": gates})
        return
    click.echo(f"{pipeline_file}: valid: {len(loaded.pipeline.stages)} stages, {len(jobs)} jobs"
               f", {len(gates)} manual gate{'s' if len(gates) != 1 else ''}")


# ---- helpers -------------------------------------------------------------------------------


def _request(pt: Pt, pipeline_file: Path, state_dir: Path | None, parallelism: int,
             wait: bool, store: str | None, executor: str | None) -> RunRequest:
    return RunRequest(pipeline_path=pipeline_file, state_dir=state_dir,
                      parallelism=parallelism, wait_for_approval=wait, tool_bin=pt.tool_bin,
                      store=store or None, executor=executor or None)


def _reporter(pipeline_file: Path, state_dir: Path | None, as_json: bool,
              quiet: bool) -> ProgressReporter:
    stream = sys.stderr if as_json else sys.stdout
    return ProgressReporter(stream, approve_command=_approve_command(pipeline_file, state_dir,
                                                                      None),
                            show_output=not quiet)


def _approve_command(pipeline_file: Path, state_dir: Path | None, run_id: str | None) -> str:
    parts = ["pt", "pipeline", "approve", shlex.quote(str(pipeline_file))]
    if state_dir is not None:
        parts += ["--state-dir", shlex.quote(str(state_dir))]
    parts += ["--run-id", run_id or "{run_id}", "--job", "{job}"]
    return " ".join(parts)


def _execute(runner: Runner) -> RunResult:
    with _stop_on_signals(runner):
        return runner.execute()


@contextmanager
def _stop_on_signals(runner: Runner) -> Iterator[None]:
    def handler(signum: int, _frame: FrameType | None) -> None:
        runner.request_stop(f"runner received {signal.Signals(signum).name}")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _finish(pt: Pt, result: RunResult, pipeline_file: Path, state_dir: Path | None,
            as_json: bool, store: str | None) -> None:
    view = read_run(pipeline_file, state_dir, result.run_id, store=store)
    document = status_document(view.run, active=False, now=pt.services().clock())
    if as_json:
        _print_json({**document, "outcome": result.outcome, "exit_code": result.exit_code})
    else:
        hint = _approve_command(pipeline_file, state_dir, result.run_id)
        click.echo()
        click.echo(render_status(document, pipeline_label=str(pipeline_file),
                                 ascii_only=not _utf8(), approve_hint=hint))
        if result.outcome == "waiting":
            state = f" --state-dir {shlex.quote(str(state_dir))}" if state_dir is not None else ""
            click.echo(f"\nrun {result.run_id} waits for approval; after approving, continue it "
                       f"with: pt pipeline resume {shlex.quote(str(pipeline_file))}{state} "
                       f"--run-id {result.run_id}")
    sys.exit(result.exit_code)


def _gate(pt: Pt, *, approve: bool, pipeline_file: Path, job: str, run_id: str | None,
          who: str | None, reason: str, state_dir: Path | None, store: str | None,
          seal_key: Path | None, as_json: bool, **signing_options: Any) -> None:
    """Approve or reject (the options of `_gate_options`, by name)."""
    signing = GateSigning(**signing_options)
    services = pt.services(identity=Identity.local(who), seal_key=_seal_key(seal_key))
    if signing.print_statement:
        click.echo(decision_statement(pipeline_file, state_dir=state_dir, run_id=run_id, job=job,
                                      approve=approve, reason=reason,
                                      by=services.who().user, services=services,
                                      store=store or None).decode(), nl=False)
        return
    run, state = decide_gate(pipeline_file, state_dir=state_dir, run_id=run_id, job=job,
                             approve=approve, reason=reason, services=services,
                             store=store or None, signing=signing.request(),
                             signed=signing.signed())
    if state.approval is None:  # one of `required: N` signed approvals; the gate still waits
        needed = run.gate_policy(job)
        count = f"{len(state.signed_by)} of {needed.approvals_needed if needed else 1}"
        if as_json:
            _print_json({"pipeline_run_id": run.id, "job": job, "decision": "signed",
                         "approvals": len(state.signed_by), "signers": list(state.signed_by)})
            return
        click.echo(f"{job}: signed approval recorded ({count}); the gate still waits")
        sys.exit(EXIT_OK)
    if as_json:
        _print_json({"pipeline_run_id": run.id, "job": job, "decision": state.approval.decision,
                     "by": state.approval.by, "at": state.approval.at,
                     "reason": state.approval.reason,
                     "authenticated": state.approval.authenticated,
                     "key_fingerprint": state.approval.key_fingerprint or None})
        return
    verb = "approved" if approve else "rejected"
    how = (f" (signed, key {state.approval.key_fingerprint})" if state.approval.authenticated
           else " (unauthenticated: the gate has no approver keys)")
    click.echo(f"{job} {verb} by {state.approval.by} in run {run.id}{how}")
    sys.exit(EXIT_OK)



def _seal_key(path: Path | None) -> Ed25519PrivateKey | None:
    return load_private_key(path) if path is not None else None


def _print_json(document: Any) -> None:
    click.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())


def _utf8() -> bool:
    encoding = getattr(sys.stdout, "encoding", None) or ""
    return encoding.lower().replace("-", "") == "utf8"


for _command in (verify, history, show, export, seal, keygen, import_run, attest):
    pipeline.add_command(_command)
