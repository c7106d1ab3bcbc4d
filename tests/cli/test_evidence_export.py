# ruff: noqa: E501  (pipeline files are written as readable one-line YAML jobs)
"""`pt pipeline export`: JSON, CSV and the evidence bundle, on real runs and against golden files.

The real run (module fixture `audited`) retries a job, fails, is resumed twice, suspends at a
gate, has one approval refused by policy and one granted: every kind of fact the exports carry.

Golden files: tests/golden/export.csv and tests/golden/export.json hold the exports of a fully
deterministic run (fixed clock, identity, run id and scripted job outcomes, driven in-process
through engine.commands). Only what must vary is normalised: the temporary folder, the
digests of lines (they cover the folder and the tool version written in the lines; each one is
checked to be the digest of the line it names before it is replaced), exported_at and
tool_version. Regenerate them after an intended format change with:

    PT_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_evidence_export.py -k golden
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import subprocess
import tarfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from pulsaride.engine.commands import RunRequest, decide_gate, resume_run, start_run
from pulsaride.engine.errors import GateError
from pulsaride.engine.executor import JobExit, Launch
from pulsaride.engine.masking import is_secret_name
from pulsaride.engine.runner import Runner, RunResult
from pulsaride.engine.services import Identity, Services
from pulsaride.projections.export import CSV_COLUMNS
from tests.conftest import PT, run_pt

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
UPDATE_GOLDEN = os.environ.get("PT_UPDATE_GOLDEN") == "1"

AUDITED = """\
stages: [prep, migrate, cutover]
approvers: [alice, bob]
jobs:
  schema: {stage: prep, command: 'echo "schema attempt $PT_ATTEMPT"; [ "$PT_ATTEMPT" -ge 2 ]', retry: 1}
  copy: {stage: migrate, command: 'echo copying; test -f go', needs: [schema]}
  gate: {stage: cutover, command: 'echo switching', needs: [copy], when: manual}
  announce: {stage: cutover, command: 'echo announced', needs: [gate]}
"""
RUN_ID = "audit-1"


def raw_lines(runs: Path, run_id: str) -> list[bytes]:
    return (runs / f"{run_id}.jsonl").read_bytes().splitlines()


@dataclass
class Audited:
    folder: Path
    path: Path
    runs: Path
    lines: list[bytes]
    records: list[dict[str, Any]]


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Audited:
    """One real run: retry, failure, resume (--no-wait), refused approval, approval, resume."""
    folder = tmp_path_factory.mktemp("audited")
    path = folder / "pulsaride-pipeline.yml"
    path.write_text(AUDITED)
    first = run_pt("pipeline", "run", path.name, "--run-id", RUN_ID, cwd=folder)
    assert first.returncode == 1, first.stdout + first.stderr
    (folder / "go").touch()
    suspended = run_pt("pipeline", "resume", path.name, "--run-id", RUN_ID, "--no-wait", cwd=folder)
    assert suspended.returncode == 3, suspended.stdout + suspended.stderr
    refused = run_pt("pipeline", "approve", path.name, "--job", "gate", "--as", "mallory",
                     "--reason", "let me", cwd=folder)
    assert refused.returncode == 2, refused.stderr
    approved = run_pt("pipeline", "approve", path.name, "--job", "gate", "--as", "alice",
                      "--reason", "window open", cwd=folder)
    assert approved.returncode == 0, approved.stderr
    done = run_pt("pipeline", "resume", path.name, "--run-id", RUN_ID, cwd=folder)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = folder / ".pulsaride" / "pipeline-runs"
    lines = raw_lines(runs, RUN_ID)
    return Audited(folder, path, runs, lines, [orjson.loads(line) for line in lines])


def export(audited: Audited, *args: str) -> subprocess.CompletedProcess[str]:
    return run_pt("pipeline", "export", "--run-id", RUN_ID, *args, cwd=audited.folder)


# ---- json ------------------------------------------------------------------------------------


def test_json_export_has_the_definition_jobs_decisions_resumes_and_the_verdict(audited: Audited) -> None:
    result = export(audited, "--format", "json")
    assert result.returncode == 0, result.stderr
    document = orjson.loads(result.stdout)
    assert list(document) == [
        "schema", "pipeline_run_id", "exported_at", "tool_version", "pipeline", "started_at",
        "last_event_at", "started_by", "outcome", "counts", "jobs", "approvals",
        "refused_approvals", "resumes", "verification"]
    assert document["schema"] == "pulsaride.export/1"
    assert document["pipeline_run_id"] == RUN_ID
    first = audited.records[0]
    assert document["pipeline"] == {"path": str(audited.path.resolve()),
                                    "sha256": hashlib.sha256(audited.path.read_bytes()).hexdigest(),
                                    "definition": first["pipeline"]["definition"]}
    assert document["started_at"] == first["at"]
    assert document["last_event_at"] == audited.records[-1]["at"]
    assert document["outcome"] == "succeeded"
    assert document["counts"] == {"DONE": 4}

    # Per job: outcome and timing, as the last lines about the job say.
    jobs = document["jobs"]
    assert list(jobs) == ["schema", "copy", "gate", "announce"]
    for name, job in jobs.items():
        last = [r for r in audited.records if r.get("job") == name and r["event"] == "JobSucceeded"][-1]
        assert job["status"] == "DONE"
        assert (job["started_at"], job["finished_at"]) == (last["started_at"], last["finished_at"])
        assert job["log"] == last["log"] == f"{RUN_ID}/logs/{name}/attempt-{last['attempt']}.log"
        assert job["duration_seconds"] is not None and job["duration_seconds"] >= 0
    assert (jobs["schema"]["attempt"], jobs["schema"]["max_attempts"]) == (2, 2)
    assert jobs["copy"]["attempt"] == 2  # failed once, ran again after the resume
    assert jobs["gate"]["approval"]["by"] == "alice"

    approved = next(r for r in audited.records if r["event"] == "JobApproved")
    assert document["approvals"] == [{
        "job": "gate", "decision": "approved", "by": "alice", "at": approved["at"],
        "reason": "window open", "host": approved["host"], "head": approved["prev"],
        "authenticated": False, "key_fingerprint": None}]
    refused = next(r for r in audited.records if r["event"] == "JobApprovalRefused")
    assert document["refused_approvals"] == [{
        "job": "gate", "asked": "approve", "by": "mallory", "at": refused["at"],
        "reason": "mallory is not an approver of this gate (approvers: alice, bob)"}]
    resumed = [r for r in audited.records if r["event"] == "RunResumed"]
    assert [(r["by"], r["at"], r["from_stage"]) for r in document["resumes"]] == [
        (r["by"], r["at"], r["from_stage"]) for r in resumed]
    assert [r["from_stage"] for r in document["resumes"]] == ["migrate", "cutover"]

    verification = document["verification"]
    assert verification["verdict"] == "verified", verification["findings"]
    assert verification["lines"] == len(audited.lines)
    assert verification["head"] == hashlib.sha256(audited.lines[-1]).hexdigest()
    assert verification["logs_checked"] == 6


def test_json_export_to_a_file_equals_stdout_but_for_the_export_time(audited: Audited, tmp_path: Path) -> None:
    target = tmp_path / "out" / "run.json"
    target.parent.mkdir()
    result = export(audited, "--format", "json", "-o", str(target))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    on_stdout = orjson.loads(export(audited, "--format", "json").stdout)
    in_file = orjson.loads(target.read_bytes())
    assert in_file.pop("exported_at") != "" and on_stdout.pop("exported_at") != ""
    assert in_file == on_stdout
    assert list(target.parent.iterdir()) == [target]  # no partial file left behind


# ---- csv -------------------------------------------------------------------------------------


def test_csv_export_is_one_row_per_line_with_the_stable_columns(audited: Audited) -> None:
    result = export(audited, "--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout, newline="")))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert CSV_COLUMNS[:4] == ("seq", "at", "event", "pipeline_run_id")
    body = [dict(zip(CSV_COLUMNS, row, strict=True)) for row in rows[1:]]
    assert len(body) == len(audited.lines)
    previous = "0" * 64
    for row, record, raw in zip(body, audited.records, audited.lines, strict=True):
        assert int(row["seq"]) == record["seq"]
        assert (row["at"], row["event"], row["pipeline_run_id"]) == (record["at"], record["event"], RUN_ID)
        assert row["prev"] == record["prev"] == previous
        previous = hashlib.sha256(raw).hexdigest()
        for column in ("job", "stage", "status", "started_at", "finished_at", "error", "reason",
                       "cause", "outcome", "log", "log_sha256"):
            assert row[column] == ("" if record.get(column) is None else str(record[column])), column
        for column in ("attempt", "exit_code"):
            assert row[column] == ("" if record.get(column) is None else str(record[column]))
        assert row["by"] == (record.get("by") or record.get("started_by") or "")
    events = [row["event"] for row in body]
    assert events.count("JobRetrying") == 1
    assert events.count("RunResumed") == 2
    refused = body[events.index("JobApprovalRefused")]
    assert (refused["job"], refused["by"], refused["status"]) == ("gate", "mallory", "WAITING")
    assert "not an approver" in refused["reason"]
    approved = body[events.index("JobApproved")]
    assert (approved["by"], approved["reason"], approved["status"]) == ("alice", "window open", "APPROVED")


def test_csv_export_to_a_file_is_byte_identical_to_stdout(audited: Audited, tmp_path: Path) -> None:
    target = tmp_path / "run.csv"
    assert export(audited, "--format", "csv", "-o", str(target)).returncode == 0
    stdout = subprocess.run([PT, "pipeline", "export", "--run-id", RUN_ID, "--format", "csv"],
                            cwd=audited.folder, capture_output=True, check=True).stdout
    assert target.read_bytes() == stdout
    assert target.read_bytes().endswith(b"\r\n")


# ---- bundle ----------------------------------------------------------------------------------


def extract(bundle: Path, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["tar", "xzf", str(bundle), "-C", str(into)], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr
    (root,) = into.iterdir()
    return root


def sha256sum_check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sha256sum", "-c", "MANIFEST.sha256"], cwd=root, capture_output=True,
                          text=True, check=False)


def make_bundle(audited: Audited, target: Path) -> subprocess.CompletedProcess[str]:
    result = export(audited, "--format", "bundle", "-o", str(target))
    assert result.returncode == 0, result.stderr
    return result


def test_bundle_checks_with_sha256sum_and_holds_every_piece_of_evidence(audited: Audited, tmp_path: Path) -> None:
    bundle = tmp_path / "evidence.tar.gz"
    result = make_bundle(audited, bundle)
    assert "verification passed" in result.stderr
    root = extract(bundle, tmp_path / "x")
    assert root.name == f"pulsaride-run-{RUN_ID}"

    check = sha256sum_check(root)
    assert check.returncode == 0, check.stdout + check.stderr
    checked = check.stdout.splitlines()
    assert checked and all(line.endswith(": OK") for line in checked)

    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    manifest = [line.split("  ", 1)[1] for line in (root / "MANIFEST.sha256").read_text().splitlines()]
    assert sorted(manifest) == [f for f in files if f != "MANIFEST.sha256"]
    assert len(checked) == len(manifest)

    # The run file and the pipeline file as run, byte for byte.
    assert (root / f"{RUN_ID}.jsonl").read_bytes() == (audited.runs / f"{RUN_ID}.jsonl").read_bytes()
    assert (root / RUN_ID / "pipeline.yml").read_bytes() == audited.path.read_bytes()
    assert audited.records[0]["pipeline"]["copy"] == f"{RUN_ID}/pipeline.yml"
    # Every job log any line names, each matching its recorded digest.
    logs = {(r["log"], r["log_sha256"]) for r in audited.records if r.get("log")}
    assert len(logs) == 6
    for log, digest in logs:
        assert hashlib.sha256((root / log).read_bytes()).hexdigest() == digest
    on_disk = sorted(str(p.relative_to(audited.runs)) for p in (audited.runs / RUN_ID / "logs").rglob("*.log"))
    assert sorted(f for f in files if "/logs/" in f) == on_disk
    assert (root / RUN_ID / "logs" / "schema" / "attempt-1.log").read_text() == "schema attempt 1\n"

    verification = orjson.loads((root / "verification.json").read_bytes())
    assert verification["verdict"] == "verified", verification
    assert verification["lines"] == len(audited.lines)
    tool = orjson.loads((root / "tool.json").read_bytes())
    assert tool["tool"] == "pt" and tool["version"]
    assert tool["as_of"] == audited.records[-1]["at"]  # no export time: the bundle is deterministic
    readme = (root / "README.txt").read_text()
    assert "sha256sum -c MANIFEST.sha256" in readme
    assert RUN_ID in readme


def test_a_file_changed_in_an_extracted_bundle_fails_sha256sum(audited: Audited, tmp_path: Path) -> None:
    bundle = tmp_path / "evidence.tar.gz"
    make_bundle(audited, bundle)
    root = extract(bundle, tmp_path / "x")
    log = root / RUN_ID / "logs" / "copy" / "attempt-2.log"
    log.write_bytes(log.read_bytes().replace(b"copying", b"copied!"))
    check = sha256sum_check(root)
    assert check.returncode != 0
    assert f"{RUN_ID}/logs/copy/attempt-2.log: FAILED" in check.stdout
    assert sum(line.endswith(": FAILED") for line in check.stdout.splitlines()) == 1

    root2 = extract(bundle, tmp_path / "y")
    run_file = root2 / f"{RUN_ID}.jsonl"
    run_file.write_bytes(run_file.read_bytes().replace(b'"by":"alice"', b'"by":"bob"'))
    check = sha256sum_check(root2)
    assert check.returncode != 0
    assert f"{RUN_ID}.jsonl: FAILED" in check.stdout


def test_two_exports_of_the_same_run_are_byte_identical_bundles(audited: Audited, tmp_path: Path) -> None:
    first, second = tmp_path / "a" / "first.tar.gz", tmp_path / "b" / "another-name.tar.gz"
    make_bundle(audited, first)
    make_bundle(audited, second)  # later, and under another name
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first) as bundle:
        names = bundle.getnames()
        assert names[-1] == f"pulsaride-run-{RUN_ID}/MANIFEST.sha256"
        assert {m.mtime for m in bundle.getmembers()} == {
            int(datetime.fromisoformat(audited.records[-1]["at"]).timestamp())}


def test_bundle_defaults_to_a_file_named_after_the_run(audited: Audited, tmp_path: Path) -> None:
    result = run_pt("pipeline", "export", "--state-dir", str(audited.runs.parent), "--run-id",
                    RUN_ID, "--format", "bundle", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / f"pulsaride-run-{RUN_ID}.tar.gz").is_file()
    assert "sha256sum -c MANIFEST.sha256" in result.stderr


def test_export_of_an_unknown_run_is_a_clear_error(audited: Audited) -> None:
    result = run_pt("pipeline", "export", "--run-id", "nope", "--format", "json", cwd=audited.folder)
    assert result.returncode == 2
    assert result.stderr.startswith("pt: error: ") and "no run nope" in result.stderr
    assert "Traceback" not in result.stderr


# ---- golden files ----------------------------------------------------------------------------

GOLDEN_PIPELINE = """\
stages: [prep, migrate, cutover]
variables: {TARGET: db1}
jobs:
  schema: {stage: prep, command: "echo schema", retry: {max: 1, delay: 2s}}
  copy: {stage: migrate, command: "echo copy", needs: [schema]}
  gate: {stage: cutover, command: "echo switch", needs: [copy], when: manual, approvers: [alice, bob]}
  announce: {stage: cutover, command: "echo announce", needs: [gate]}
"""
GOLDEN_RUN = "golden-run"
# Exit codes per job, attempt by attempt (attempt numbers count across resumes).
SCRIPT = {"schema": (3, 0), "copy": (1, 0), "gate": (0,), "announce": (0,)}


class SteppingClock:
    """Every reading is one millisecond after the previous one; waiting only moves time."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=max(seconds, 0.0))


class ScriptedExecutor:
    """Executor protocol, deterministic (like tests/property/sim.py's SimulatedExecutor): each
    attempt writes a fixed log and exits with SCRIPT's code; running jobs end in name order."""

    def __init__(self, clock: SteppingClock) -> None:
        self.clock = clock
        self.running_jobs: dict[str, Launch] = {}

    def launch(self, launch: Launch) -> None:
        self.running_jobs[launch.job] = launch

    def wait(self, timeout: float) -> list[JobExit]:
        if not self.running_jobs:
            self.clock.sleep(timeout)
            return []
        exits = []
        for name in sorted(self.running_jobs):
            launch = self.running_jobs.pop(name)
            code = SCRIPT[name][min(launch.attempt, len(SCRIPT[name])) - 1]
            data = f"{launch.command} (attempt {launch.attempt})\n".encode()
            launch.log_path.parent.mkdir(parents=True, exist_ok=True)
            launch.log_path.write_bytes(data)
            exits.append(JobExit(name, launch.attempt, code, f"exit code {code}" if code else "",
                                 launch.log_path, hashlib.sha256(data).hexdigest()))
        return exits

    def stop(self, job: str, reason: str) -> None:
        raise AssertionError(f"nothing is stopped in the golden run ({job}: {reason})")

    def running(self) -> int:
        return len(self.running_jobs)


def execute(runner: Runner | RunResult) -> str:
    assert isinstance(runner, Runner)
    return runner.execute().outcome


def deterministic_run(folder: Path) -> Path:
    """Fail, resume to a gate, refused approval, approval, resume to success; return the state dir."""
    path = folder / "pulsaride-pipeline.yml"
    path.write_text(GOLDEN_PIPELINE)
    state = folder / "state"
    clock = SteppingClock()
    executor = ScriptedExecutor(clock)

    def services(user: str) -> Services:
        return Services(clock=clock, identity=Identity(user=user, host="host", pid=1),
                        executor_factory=lambda _masker, _observer, _lock: executor)

    request = RunRequest(pipeline_path=path, state_dir=state, parallelism=2,
                         wait_for_approval=False)
    assert execute(start_run(request, services("alice"), GOLDEN_RUN)) == "failed"
    assert execute(resume_run(request, services("alice"), GOLDEN_RUN)) == "waiting"
    gate = {"state_dir": state, "run_id": GOLDEN_RUN, "job": "gate"}
    with pytest.raises(GateError, match="mallory is not an approver"):
        decide_gate(path, approve=True, reason="me", services=services("mallory"), **gate)
    decide_gate(path, approve=True, reason="change window open", services=services("bob"), **gate)
    assert execute(resume_run(request, services("alice"), GOLDEN_RUN)) == "succeeded"
    return state


def normalise(text: str, folder: Path, lines: list[bytes]) -> str:
    """Replace what must vary: the folder, line digests (checked: each names a real line)."""
    digests = {hashlib.sha256(line).hexdigest(): f"<sha256 of line {n}>"
               for n, line in enumerate(lines, start=1)}
    digests["0" * 64] = "<genesis>"
    for variant in {str(folder.resolve()), str(folder)}:
        text = text.replace(variant, "<tmp>")
    return re.sub(r"\b[0-9a-f]{64}\b", lambda m: digests.get(m[0], m[0]), text)


def compare_golden(name: str, actual: str) -> None:
    target = GOLDEN / name
    if UPDATE_GOLDEN:
        target.parent.mkdir(exist_ok=True)
        target.write_text(actual, newline="")
    expected = target.read_bytes().decode()
    assert actual == expected, f"{name} changed; if intended: PT_UPDATE_GOLDEN=1 pytest {__file__} -k golden"


@pytest.fixture
def golden_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):  # a secret-looking variable of the CI host must not mask anything
        if is_secret_name(name):
            monkeypatch.delenv(name)
    return deterministic_run(tmp_path)


def golden_export(state: Path, fmt: str) -> str:
    result = run_pt("pipeline", "export", "--state-dir", str(state), "--run-id", GOLDEN_RUN,
                    "--format", fmt, cwd=state.parent)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_csv_export_matches_the_golden_file(golden_state: Path) -> None:
    lines = raw_lines(golden_state / "pipeline-runs", GOLDEN_RUN)
    text = golden_export(golden_state, "csv")
    assert len(list(csv.reader(io.StringIO(text, newline="")))) == len(lines) + 1
    compare_golden("export.csv", normalise(text, golden_state.parent, lines))


def test_json_export_matches_the_golden_file(golden_state: Path) -> None:
    lines = raw_lines(golden_state / "pipeline-runs", GOLDEN_RUN)
    document = orjson.loads(golden_export(golden_state, "json"))
    assert document["verification"]["verdict"] == "verified", document["verification"]
    document["exported_at"] = "<exported_at>"
    document["tool_version"] = "<tool_version>"
    text = orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n"
    compare_golden("export.json", normalise(text, golden_state.parent, lines))


def test_the_golden_run_is_reproducible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two deterministic runs in different folders differ only where normalise() says."""
    for name in list(os.environ):
        if is_secret_name(name):
            monkeypatch.delenv(name)
    texts = []
    for sub in ("one", "two"):
        folder = tmp_path / sub
        folder.mkdir()
        state = deterministic_run(folder)
        lines = raw_lines(state / "pipeline-runs", GOLDEN_RUN)
        texts.append(normalise(b"\n".join(lines).decode(), folder, lines))
    assert texts[0] == texts[1]
