"""`pt pipeline verify | history | show | export | seal | keygen`: the evidence chain."""

from __future__ import annotations

import hashlib
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pulsaride.engine.commands import import_jsonl, seal_run
from pulsaride.engine.errors import EXIT_FAILED, BadInputError, PulsarideError
from pulsaride.engine.evidence import RunEvidence, load_evidence, write_bundle
from pulsaride.engine.inputs import PIPELINE_FILE_BYTES, read_bounded
from pulsaride.engine.layout import StateDir
from pulsaride.engine.masking import safe_url as store_where
from pulsaride.engine.run_views import list_runs, locate_run, read_run
from pulsaride.engine.seal import key_id, load_private_key, load_public_key
from pulsaride.engine.services import tool_version
from pulsaride.projections.documents import history_rows
from pulsaride.projections.export import (
    bundle_files,
    export_csv,
    export_json,
    last_time,
    run_records,
)
from pulsaride.projections.history import history_document, render_history
from pulsaride.projections.timeline import render_timeline, timeline
from pulsaride.projections.verify import VerifyReport, verify_run

from . import options
from .attest import ATTESTATION_FILE, attestation
from .context import Pt, pass_pt
from .verify_all import render as render_all
from .verify_all import verify_all

OPTIONAL_FILE = options.pipeline_file(required=False)
STATE_DIR = options.state_dir(
    "Where runs are kept [default: .pulsaride beside FILE, or ./.pulsaride].")
RUN_ID = options.run_id()
STORE = options.store("Read runs from this shared PostgreSQL database [default: the state "
                      "dir's JSONL files; env PT_STORE].")
AS_JSON = options.as_json()


@click.command()
@OPTIONAL_FILE
@RUN_ID
@click.option("--pubkey", type=click.Path(path_type=Path, dir_okay=False),
              help="Check the run's seals against this Ed25519 public key (PEM).")
@click.option("--all", "every_run", is_flag=True,
              help="Verify every run of the state dir (or store) and check them against the "
                   "run index: a deleted, swapped or cut-back run is a finding.")
@STATE_DIR
@STORE
@AS_JSON
def verify(pipeline_file: Path | None, run_id: str | None, pubkey: Path | None,
           every_run: bool, state_dir: Path | None, store: str | None, as_json: bool) -> None:
    """Check a run's evidence: schema, hash chain, sequence, transitions, the pipeline file
    as run, job logs, signed decisions and (with --pubkey) seals. Exit 1 on any finding."""
    if every_run:
        if run_id is not None:
            raise BadInputError("--all verifies every run: give it without --run-id")
        document = verify_all(_state(pipeline_file, state_dir), store or None)
        click.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() if as_json
                   else render_all(document))
        sys.exit(0 if document["verdict"] == "verified" else EXIT_FAILED)
    state, run_id = locate_run(pipeline_file, state_dir, run_id, store or None)
    evidence = load_evidence(state, run_id, store or None)
    report = _verify(evidence, pubkey, pipeline_file)
    if as_json:
        _print_json(report.document())
    else:
        click.echo(_render_report(report))
    sys.exit(0 if report.ok else EXIT_FAILED)


@click.command()
@OPTIONAL_FILE
@STATE_DIR
@STORE
@AS_JSON
def history(pipeline_file: Path | None, state_dir: Path | None, store: str | None,
            as_json: bool) -> None:
    """Every run of FILE (or of the state dir or store), oldest first: who, when, outcome,
    counts."""
    state = _state(pipeline_file, state_dir)
    rows = history_rows(list_runs(state, pipeline_file, store or None))
    if as_json:
        _print_json(history_document(rows))
    elif rows:
        click.echo(render_history(rows))
    else:
        click.echo(f"no runs in {store_where(store) if store else state.runs}")


@click.command()
@OPTIONAL_FILE
@RUN_ID
@STATE_DIR
@STORE
@AS_JSON
def show(pipeline_file: Path | None, run_id: str | None, state_dir: Path | None,
         store: str | None, as_json: bool) -> None:
    """One run as a timeline: every transition with time, attempt, exit code, error, actor."""
    view = read_run(pipeline_file, state_dir, run_id, with_events=True, store=store or None)
    entries = timeline(view.events)
    if as_json:
        _print_json({"schema": "pulsaride.timeline/1", "pipeline_run_id": view.run.id,
                     "entries": entries})
    else:
        click.echo(render_timeline(entries))


@click.command()
@OPTIONAL_FILE
@RUN_ID
@click.option("--format", "fmt", type=click.Choice(["json", "csv", "bundle", "jsonl"]),
              required=True,
              help="json: the replayed run; csv: one row per transition; bundle: a .tar.gz "
                   "evidence package checkable with sha256sum -c; jsonl: the run's lines "
                   "byte for byte (a run file 'pt pipeline verify' checks).")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Write here [default: stdout; bundle: ./pulsaride-run-ID.tar.gz].")
@click.option("--key", "key_path", type=click.Path(path_type=Path, dir_okay=False),
              help="bundle: add the run's signed in-toto attestation (attestation.intoto.jsonl, "
                   "as 'pt pipeline attest' makes it) signed with this Ed25519 key.")
@STATE_DIR
@STORE
@pass_pt
def export(pt: Pt, pipeline_file: Path | None, run_id: str | None, fmt: str,
           output: Path | None, key_path: Path | None, state_dir: Path | None,
           store: str | None) -> None:
    """Export a run for compliance as JSON, CSV, JSONL or an evidence bundle."""
    store = store or None
    state, run_id = locate_run(pipeline_file, state_dir, run_id, store)
    evidence = load_evidence(state, run_id, store)
    if fmt == "jsonl":
        _emit(evidence.data, output)
        return
    if fmt == "csv":
        _emit(export_csv(run_records(evidence.lines)).encode(), output)
        return
    report = _verify(evidence, None, pipeline_file)
    if fmt == "json":
        _emit(_export_json(state, run_id, report, pt.services().clock(), store) + b"\n",
              output)
        return
    target = output or Path(f"pulsaride-run-{run_id}.tar.gz")
    as_of = last_time(evidence.lines)
    try:
        replayed: bytes | str = _export_json(state, run_id, report, as_of, store)
    except PulsarideError as exc:
        replayed = str(exc)
    extra = bundle_files(run_id, report.document(), as_of, tool_version(), replayed)
    if key_path is not None:
        extra[ATTESTATION_FILE] = attestation(state, run_id, store, key_path)
    manifest = write_bundle(evidence, extra, target, mtime=as_of.timestamp())
    click.echo(f"wrote {target}: {len(manifest)} files, verification "
               f"{'passed' if report.ok else 'FAILED'}; check it with: "
               f"tar xzf {target.name} && cd pulsaride-run-{run_id} && sha256sum -c "
               "MANIFEST.sha256", err=True)


@click.command()
@OPTIONAL_FILE
@RUN_ID
@click.option("--key", "key_path", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Ed25519 private key (PEM), e.g. from 'pt pipeline keygen'.")
@STATE_DIR
@STORE
@AS_JSON
@pass_pt
def seal(pt: Pt, pipeline_file: Path | None, run_id: str | None, key_path: Path,
         state_dir: Path | None, store: str | None, as_json: bool) -> None:
    """Sign a run's current chain head, so that cutting the file or rewriting the chain is
    detected by 'pt pipeline verify --pubkey'."""
    state, run_id = locate_run(pipeline_file, state_dir, run_id, store or None)
    sealed = seal_run(None, state_dir=state.root, run_id=run_id,
                      key=load_private_key(key_path), services=pt.services(), store=store or None)
    if as_json:
        _print_json(sealed.__dict__)
    else:
        click.echo(f"sealed run {run_id} up to line {sealed.seq} (head {sealed.head[:16]}…) "
                   f"with key {sealed.key_id}")


@click.command()
@click.option("--out", "out", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Private key file to write; the public key goes to OUT.pub.")
def keygen(out: Path) -> None:
    """Create an Ed25519 key pair for sealing runs (private key mode 0600)."""
    if out.exists():
        raise BadInputError(f"{out} exists; refusing to overwrite a key")
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private)
    Path(f"{out}.pub").write_bytes(public)
    click.echo(f"wrote {out} (private, keep it safe) and {out}.pub; key id "
               f"{key_id(key.public_key())}")


@click.command("import")
@click.argument("run_file", metavar="RUN_FILE", type=click.Path(path_type=Path, dir_okay=False,
                                                                exists=True))
@options.store("The PostgreSQL store to move the run into [env PT_STORE].", required=True)
def import_run(run_file: Path, store: str) -> None:
    """Copy a run's JSONL file (RUN_FILE, named <run-id>.jsonl) into a shared store, byte for
    byte, after checking its chain. Job logs stay in the state dir."""
    run_id, lines = import_jsonl(run_file, store)
    click.echo(f"imported run {run_id}: {lines} lines into {store_where(store)}")


# ---- helpers -------------------------------------------------------------------------------


def _state(pipeline_file: Path | None, state_dir: Path | None) -> StateDir:
    if state_dir is not None:
        return StateDir(state_dir.absolute())
    if pipeline_file is not None:
        return StateDir.for_pipeline(pipeline_file)
    return StateDir(Path(".pulsaride").absolute())


def _verify(evidence: RunEvidence, pubkey: Path | None,
            pipeline_file: Path | None) -> VerifyReport:
    public_key = load_public_key(pubkey) if pubkey is not None else None
    today = None
    if pipeline_file is not None and pipeline_file.is_file():
        data = read_bounded(pipeline_file, PIPELINE_FILE_BYTES, "pipeline file")
        today = hashlib.sha256(data).hexdigest()
    return verify_run(evidence, public_key=public_key, current_file_sha256=today)


def _render_report(report: VerifyReport) -> str:
    if report.ok:
        sealed = f", sealed up to line {report.sealed_up_to}" if report.sealed_up_to else ""
        signed = (f", {report.signed_decisions} signed decisions checked"
                  if report.signed_decisions else "")
        lines = [f"run {report.run_id}: verified: {report.lines} lines, chain head "
                 f"{report.head[:16]}…, {report.logs_checked} logs checked{signed}{sealed}"]
    else:
        first = report.findings[0]
        where = f"line {first.line}" if first.line is not None else "the run's files"
        lines = [f"run {report.run_id}: FAILED verification: {len(report.findings)} "
                 f"finding(s); first offending: {where}"]
        lines += [f"  {finding.text()}" for finding in report.findings]
    lines += [f"  note: {note}" for note in report.notes]
    return "\n".join(lines)


def _export_json(state: StateDir, run_id: str, report: VerifyReport, at: datetime,
                 store: str | None) -> bytes:
    """The replayed run as JSON, exported at `at` (reads the run again, with its events)."""
    view = read_run(None, state.root, run_id, with_events=True, store=store)
    return export_json(view.run, view.events, report.document(), exported_at=at,
                       tool_version=tool_version())


def _emit(data: bytes, output: Path | None) -> None:
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    output.parent.mkdir(parents=True, exist_ok=True)  # as for a bundle
    partial = output.with_name(output.name + ".partial")
    partial.write_bytes(data)
    partial.replace(output)


def _print_json(document: Any) -> None:
    click.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())

