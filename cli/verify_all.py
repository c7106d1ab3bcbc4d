"""`pt pipeline verify --all`: every run of a state dir (or shared store) verified, and the runs
checked against the run index, which finds what no run file can show about itself: a run
deleted, a run file swapped for another, a run cut back to an earlier checkpoint or seal."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing
from typing import Any

from pulsaride.engine.errors import PulsarideError
from pulsaride.engine.evidence import RunEvidence, load_evidence
from pulsaride.engine.layout import StateDir
from pulsaride.engine.run_index import read_index, run_findings, unindexed
from pulsaride.engine.run_views import DamagedRun, RunView, list_runs
from pulsaride.engine.stores import open_store
from pulsaride.projections.verify import verify_run

SCHEMA = "pulsaride.verification-all/1"


def verify_all(state: StateDir, store: str | None) -> dict[str, Any]:
    """The document of `verify --all`: each run's verdict, the index's findings, the runs
    the index never saw created."""
    with closing(open_store(store, state)) as runs:
        index = runs.index_bytes()
    entries, findings = read_index(index)
    evidence: dict[str, RunEvidence | None] = {}

    def evidence_of(run_id: str) -> RunEvidence | None:
        """Each run's files, read once for the index check and the run's own verification."""
        if run_id not in evidence:
            try:
                evidence[run_id] = load_evidence(state, run_id, store)
            except PulsarideError:
                evidence[run_id] = None
        return evidence[run_id]

    def lines_of(run_id: str) -> list[bytes] | None:
        found = evidence_of(run_id)
        return found.lines or None if found is not None else None

    findings += run_findings(entries, lines_of)
    views = list_runs(state, None, store)
    reports = [_report(view, evidence_of) for view in views]
    ids = [v.run.id if isinstance(v, RunView) else v.run_id for v in views]
    failed = [r for r in reports if r["verdict"] != "verified"]
    return {
        "schema": SCHEMA, "where": str(state.runs) if not store else "shared store",
        "verdict": "verified" if not findings and not failed else "failed",
        "runs": reports,
        "index": {"lines": len(entries),
                  "findings": [{"line": f.line, "run_id": f.run_id, "message": f.message}
                               for f in findings],
                  "runs_not_indexed": unindexed(ids, entries)},
    }


def _report(view: RunView | DamagedRun,
            evidence_of: Callable[[str], RunEvidence | None]) -> dict[str, Any]:
    if isinstance(view, DamagedRun):
        return _failed(view.run_id, view.problem)
    found = evidence_of(view.run.id)
    if found is None:
        return _failed(view.run.id, "its files cannot be read")
    document = verify_run(found).document()
    return {"pipeline_run_id": view.run.id, "verdict": document["verdict"],
            "lines": document["lines"], "findings": document["findings"]}


def _failed(run_id: str, problem: str) -> dict[str, Any]:
    return {"pipeline_run_id": run_id, "verdict": "failed",
            "findings": [{"line": None, "check": "replay", "message": problem}]}


def render(document: dict[str, Any]) -> str:
    """The text of `verify --all`: one line per run, then the index's findings."""
    lines = [f"{document['where']}: {len(document['runs'])} runs, index of "
             f"{document['index']['lines']} lines: {document['verdict'].upper()}"]
    for run in document["runs"]:
        first = run["findings"][0]["message"] if run["findings"] else ""
        lines.append(f"  run {run['pipeline_run_id']}: {run['verdict']}"
                     + (f" ({first})" if first else ""))
    for finding in document["index"]["findings"]:
        lines.append(f"  index line {finding['line']}: {finding['message']}")
    missing = document["index"]["runs_not_indexed"]
    if missing:
        lines.append(f"  note: not in the index (started before it existed, or imported): "
                     f"{', '.join(missing)}")
    return "\n".join(lines)
