"""`pt pipeline attest`: the run as a signed in-toto attestation (DSSE envelope), and the
attestation file the evidence bundle carries when given a key."""

from __future__ import annotations

from pathlib import Path

import click

from pulsaride.engine.attestations import envelope_line, load_signing_key
from pulsaride.engine.evidence import RunEvidence, load_evidence
from pulsaride.engine.layout import StateDir
from pulsaride.engine.run_views import locate_run, read_run
from pulsaride.engine.services import tool_version
from pulsaride.projections.attestation import statement
from pulsaride.projections.facts import RunFacts
from pulsaride.projections.verify import verify_run

from . import options

ATTESTATION_FILE = "attestation.intoto.jsonl"


def run_files(evidence: RunEvidence) -> dict[str, bytes]:
    """The subjects: the run file and every file of the run's folder (the pipeline file as
    run, job logs, validation reports); not the seals and set-aside tails, which change or
    are evidence of damage."""
    files: dict[str, bytes] = {}
    for name, _ in evidence.files():
        if name == f"{evidence.run_id}.jsonl":
            files[name] = evidence.data
        elif name.startswith(f"{evidence.run_id}/"):
            data = evidence.artifact(name)
            if data is not None:
                files[name] = data
    return files


def attestation(state: StateDir, run_id: str, store: str | None, key_path: Path) -> bytes:
    """The signed attestation of a run: one DSSE envelope, one line."""
    key = load_signing_key(key_path)
    evidence = load_evidence(state, run_id, store)
    report = verify_run(evidence)
    view = read_run(None, state.root, run_id, with_events=True, store=store)
    document = statement(view.run, RunFacts.collect(view.events), run_files(evidence),
                         head=report.head, lines=report.lines,
                         verdict="verified" if report.ok else "failed",
                         tool_version=tool_version())
    return envelope_line(document, key)


@click.command()
@options.pipeline_file(required=False)
@options.run_id()
@click.option("--key", "key_path", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Ed25519 private key: PEM (from 'pt pipeline keygen') or OpenSSH without "
                   "passphrase.")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Write here [default: stdout], e.g. run.intoto.jsonl.")
@options.state_dir("Where runs are kept [default: .pulsaride beside FILE, or ./.pulsaride].")
@options.store("Read runs from this shared PostgreSQL database [default: the state dir's "
               "JSONL files; env PT_STORE].")
def attest(pipeline_file: Path | None, run_id: str | None, key_path: Path,
           output: Path | None, state_dir: Path | None, store: str | None) -> None:
    """Sign the run as an in-toto Statement v1 in a DSSE envelope: subjects are the SHA-256 of
    the run file, the pipeline file as run, each job log and each validation report; the
    predicate (https://pulsaride.dev/migration-run/v1) holds the chain head, the outcome, the
    jobs, the decisions with their signers and the validation verdicts."""
    state, run_id = locate_run(pipeline_file, state_dir, run_id, store or None)
    line = attestation(state, run_id, store or None, key_path)
    if output is None:
        click.echo(line.decode(), nl=False)
        return
    partial = output.with_name(output.name + ".partial")
    partial.write_bytes(line)
    partial.replace(output)
    click.echo(f"wrote {output}: the attestation of run {run_id}", err=True)
