# ruff: noqa: E501  (pipeline files are written as readable one-line YAML jobs)
"""Gate policy is fixed when the run starts (issue 12, item 4; ADR 0017).

Before the fix, `pt pipeline resume --allow-changed` with a new `approvers:` list or
`separate_approver: false` let a new name approve; it was only recorded as "gate changed".
Now a change to a gate's approvers, separate_approver, expires_in or on_expiry (on the job or
through the pipeline's defaults), or removing a gate that has not run, refuses the resume with
one line naming the gate and the key, exit 2, nothing appended; and `pt pipeline verify`
re-checks every recorded decision against the policy recorded at the start.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import run_pt

GATED = """\
stages: [prep, cutover]
approvers: [alice, olga]
separate_approver: true
jobs:
  prep: {stage: prep, command: "echo prep"}
  gate: {stage: cutover, command: "echo cut", needs: [prep], when: manual, expires_in: 4h, on_expiry: fail}
  after: {stage: cutover, command: "echo after", needs: [gate]}
"""
RUN = "fixed"

# (case id, replace this, by this, the gate and key the error names)
CHANGES = [
    ("pipeline-approvers", "approvers: [alice, olga]", "approvers: [alice, olga, mallory]",
     "gate 'gate': approvers changed from [alice, olga] to [alice, olga, mallory]"),
    ("job-approvers", "when: manual,", "when: manual, approvers: [mallory],",
     "gate 'gate': approvers changed from [alice, olga] to [mallory]"),
    ("approvers-dropped", "approvers: [alice, olga]\n", "",
     "gate 'gate': approvers changed from [alice, olga] to [] (anyone)"),
    ("pipeline-separate-approver", "separate_approver: true", "separate_approver: false",
     "gate 'gate': separate_approver changed from true to false"),
    ("job-separate-approver", "when: manual,", "when: manual, separate_approver: false,",
     "gate 'gate': separate_approver changed from true to false"),
    ("expires_in", "expires_in: 4h", "expires_in: 8h",
     "gate 'gate': expires_in changed from 14400s to 28800s"),
    ("expires_in-dropped", " expires_in: 4h,", "",
     "gate 'gate': expires_in changed from 14400s to none"),
    ("on_expiry", "on_expiry: fail", "on_expiry: skip",
     "gate 'gate': on_expiry changed from fail to skip"),
    ("no-longer-manual", "when: manual, expires_in: 4h, on_expiry: fail", "when: on_success",
     "gate 'gate': when changed from manual to on_success before it ran"),
    ("removed", '  gate: {stage: cutover, command: "echo cut", needs: [prep], when: manual, expires_in: 4h, on_expiry: fail}\n  after: {stage: cutover, command: "echo after", needs: [gate]}',
     '  after: {stage: cutover, command: "echo after", needs: [prep]}',
     "gate 'gate' was removed before it ran"),
]


def pt(folder: Path, *args: str, user: str = "olga") -> subprocess.CompletedProcess[str]:
    return run_pt(*args, cwd=folder, env={"LOGNAME": user})


def run_file(folder: Path) -> Path:
    return folder / ".pulsaride" / "pipeline-runs" / f"{RUN}.jsonl"


def started(tmp_path: Path) -> Path:
    """A run of GATED started by olga, waiting at its gate (--no-wait)."""
    (tmp_path / "p.yml").write_text(GATED)
    result = pt(tmp_path, "pipeline", "run", "p.yml", "--run-id", RUN, "--no-wait", "-q")
    assert result.returncode == 3, result.stdout + result.stderr
    return tmp_path


@pytest.mark.parametrize(("old", "new", "named"), [c[1:] for c in CHANGES],
                         ids=[c[0] for c in CHANGES])
def test_a_changed_gate_policy_refuses_the_resume(tmp_path: Path, old: str, new: str,
                                                  named: str) -> None:
    folder = started(tmp_path)
    path = folder / "p.yml"
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))
    before = run_file(folder).read_bytes()
    for extra in (("--allow-changed",), ()):
        result = pt(folder, "pipeline", "resume", "p.yml", "--run-id", RUN, "--no-wait", "-q",
                    *extra)
        assert result.returncode == 2, result.stdout + result.stderr
        (line,) = result.stderr.splitlines()
        assert line.startswith("pt: error: ") and named in line, line
        assert f"since run {RUN} started; a gate's policy is fixed when its run starts" in line
        assert run_file(folder).read_bytes() == before, "a refused resume appended to the run"
    # The policy of the start still decides: mallory may not approve, olga (the starter) may not.
    for who in ("mallory", "olga"):
        refused = pt(folder, "pipeline", "approve", "p.yml", "--run-id", RUN, "--job", "gate",
                     "--as", who)
        assert refused.returncode == 2 and "refused" in refused.stderr, refused.stderr


def test_other_changes_to_a_gate_and_new_gates_are_still_allowed(tmp_path: Path) -> None:
    folder = started(tmp_path)
    path = folder / "p.yml"
    path.write_text(path.read_text().replace('command: "echo cut"', 'command: "echo cut v2"')
                    + '  late-gate: {stage: cutover, command: "true", needs: [prep], when: manual, approvers: [bob]}\n')
    result = pt(folder, "pipeline", "resume", "p.yml", "--run-id", RUN, "--allow-changed",
                "--no-wait", "-q")
    assert result.returncode == 3, result.stdout + result.stderr
    approved = pt(folder, "pipeline", "approve", "p.yml", "--run-id", RUN, "--job",
                  "late-gate", "--as", "bob")
    assert approved.returncode == 0, approved.stderr
    assert verify(folder)["verdict"] == "verified"


# ---- verify re-checks every decision --------------------------------------------------------


def rechained(lines: list[bytes], index: int, **changes: Any) -> bytes:
    """The run with line `index` (0-based) edited and every later `prev` recomputed: what a
    tamperer who knows the format writes."""
    out = list(lines[:index])
    for number, line in enumerate(lines[index:], start=index):
        record = orjson.loads(line)
        if number == index:
            record.update(changes)
        record["prev"] = hashlib.sha256(out[-1]).hexdigest() if out else "0" * 64
        out.append(orjson.dumps(record))
    return b"".join(line + b"\n" for line in out)


def verify(folder: Path) -> dict[str, Any]:
    result = run_pt("pipeline", "verify", "--run-id", RUN, "--json", cwd=folder)
    assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result.stderr
    document: dict[str, Any] = orjson.loads(result.stdout)
    return document


@pytest.fixture(scope="module")
def approved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run, approved by alice within the window (verifies clean)."""
    folder = started(tmp_path_factory.mktemp("approved"))
    result = pt(folder, "pipeline", "approve", "p.yml", "--run-id", RUN, "--job", "gate",
                "--as", "alice", "--reason", "checked")
    assert result.returncode == 0, result.stderr
    assert verify(folder)["verdict"] == "verified"
    return folder


def _forged(approved: Path, tmp_path: Path, event: str, **changes: Any) -> tuple[Path, int]:
    """A copy of the approved run with the first `event` line edited and re-chained; the
    copy's folder and the edited line's number."""
    folder = tmp_path / "copy"
    shutil.copytree(approved, folder)
    lines = run_file(folder).read_bytes().splitlines()
    index = next(i for i, line in enumerate(lines) if orjson.loads(line)["event"] == event)
    if callable(changes.get("at")):
        changes["at"] = changes["at"](orjson.loads(lines[index]))
    run_file(folder).write_bytes(rechained(lines, index, **changes))
    return folder, index + 1


def _after_window(record: dict[str, Any]) -> str:
    moment = datetime.fromisoformat(record["at"]) + timedelta(hours=5)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


FORGERIES = [
    ("non-listed-name", "JobApproved", {"by": "mallory"},
     "the approval of gate 'gate' by mallory breaks the policy recorded when the run started: "
     "mallory is not an approver of this gate (approvers: alice, olga)"),
    ("the-starter", "JobApproved", {"by": "olga"},
     "the approval of gate 'gate' by olga breaks the policy recorded when the run started: "
     "olga started the run and this gate needs a separate approver"),
    ("after-the-window", "JobApproved", {"at": _after_window},
     "breaks the policy recorded when the run started: the approval window closed at "),
    ("window-removed", "JobAwaitingApproval", {"expires_at": None},
     "gate 'gate' waits until no time, but its policy gives "),
]


@pytest.mark.parametrize(("event", "changes", "says"), [f[1:] for f in FORGERIES],
                         ids=[f[0] for f in FORGERIES])
def test_verify_finds_a_decision_that_breaks_the_recorded_policy(
        approved: Path, tmp_path: Path, event: str, changes: dict[str, Any], says: str) -> None:
    folder, line = _forged(approved, tmp_path, event, **changes)
    document = verify(folder)
    gate = [f for f in document["findings"] if f["check"] == "gate"]
    assert [f["line"] for f in gate] == [line], document["findings"]
    assert says in gate[0]["message"], gate[0]["message"]
    # The chain itself is consistent: the policy check is what finds it.
    assert not [f for f in document["findings"] if f["check"] in ("chain", "sequence")]
