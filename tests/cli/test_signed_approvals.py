# ruff: noqa: E501  (pipeline files are written as readable one-line YAML jobs)
"""Approvals that prove who approved: gates whose approvers have SSH keys (made here by the
real `ssh-keygen`), decisions signed with `--key`, with the ssh-agent, or by `ssh-keygen -Y
sign` over the statement `--print-statement` gives, each through real `pt` processes.

Every refusal is one line (exit 2) and a JobApprovalRefused line; every signature the run file
holds verifies with the real `ssh-keygen -Y verify` against an allowed_signers file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from pulsaride.engine.signatures import Decision
from tests.conftest import run_pt

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs OpenSSH")
RUN = "keyed"
NO_AGENT = {"SSH_AUTH_SOCK": ""}


def keygen(folder: Path, name: str) -> Path:
    key = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)],
                   check=True)
    return key


def public(key: Path) -> str:
    return " ".join(key.with_suffix(".pub").read_text().split()[:2])


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "keys"
    folder.mkdir()
    return {name: keygen(folder, name) for name in ("alice", "bob", "carol", "mallory")}


def write_pipeline(folder: Path, approvers: str, extra: str = "") -> Path:
    path = folder / "pulsaride-pipeline.yml"
    path.write_text(f"""\
stages: [build, release]
jobs:
  build: {{stage: build, command: "true"}}
  gate: {{stage: release, command: "true", when: manual, needs: [build]{extra}, {approvers}}}
  after: {{stage: release, command: "true", needs: [gate]}}
""")
    return path


def inline(keys: dict[str, Path], *names: str) -> str:
    return "approvers: [" + ", ".join(
        f'{{name: {n}, key: "{public(keys[n])}"}}' for n in names) + "]"


def pt(path: Path, *args: str, user: str = "olga", env: dict[str, str] | None = None
       ) -> subprocess.CompletedProcess[str]:
    return run_pt(*args, cwd=path.parent, env={"LOGNAME": user, **NO_AGENT, **(env or {})})


def start(path: Path, *extra: str) -> None:
    result = pt(path, "pipeline", "run", path.name, "--run-id", RUN, "--no-wait", "-q", *extra)
    assert result.returncode == 3, result.stdout + result.stderr


def decide(path: Path, verb: str, *extra: str, user: str = "olga",
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return pt(path, "pipeline", verb, path.name, "--run-id", RUN, "--job", "gate", *extra,
              user=user, env=env)


def lines(path: Path) -> list[dict[str, Any]]:
    raw = (path.parent / ".pulsaride" / "pipeline-runs" / f"{RUN}.jsonl").read_bytes()
    return [orjson.loads(line) for line in raw.splitlines()]


def refused(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("pt: error: ") and fragment in line, line


def status(path: Path) -> dict[str, Any]:
    result = pt(path, "pipeline", "status", path.name, "--run-id", RUN, "--json")
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = orjson.loads(result.stdout)
    return {j["name"]: j for stage in document["stages"] for j in stage["jobs"]}


def fingerprint(key: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-lf", str(key.with_suffix(".pub"))], check=True,
                         capture_output=True, text=True).stdout
    return out.split()[1]


def ssh_keygen_verifies(record: dict[str, Any], principal: str, allowed: Path,
                        decision: str = "approve") -> bool:
    """What OpenSSH itself says of the signature a decision line carries."""
    statement = Decision(run_id=record["pipeline_run_id"], job=record["job"],
                         decision=decision, reason=record["reason"], at=record["signed_at"],
                         head=record["head"], by=record["by"]).statement()
    signature = allowed.parent / "line.sig"
    signature.write_text(record["signature"])
    done = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", principal,
                           "-n", "pulsaride-approval", "-s", str(signature)], input=statement,
                          capture_output=True, check=False)
    return done.returncode == 0


def allowed_signers(folder: Path, keys: dict[str, Path], *names: str) -> Path:
    path = folder / "allowed_signers"
    path.write_text("".join(f"{n} {public(keys[n])}\n" for n in names))
    return path


def test_a_keyed_gate_takes_only_a_signature_by_a_listed_key(tmp_path: Path,
                                                              keys: dict[str, Path]) -> None:
    path = write_pipeline(tmp_path, inline(keys, "alice", "bob"))
    start(path)
    refused(decide(path, "approve", "--as", "alice"), "sign the decision")
    refused(decide(path, "approve", "--key", str(keys["mallory"])), "not on the gate's approver list")
    # --as cannot change who signed: the name comes with the key.
    granted = decide(path, "approve", "--key", str(keys["alice"]), "--as", "bob",
                     "--reason", "checked")
    assert granted.returncode == 0, granted.stderr
    assert granted.stdout.strip() == (f"gate approved by alice in run {RUN} "
                                      f"(signed, key {fingerprint(keys['alice'])})")
    events = lines(path)
    refusals = [r for r in events if r["event"] == "JobApprovalRefused"]
    assert [r.get("key_fingerprint", "") for r in refusals] == ["", fingerprint(keys["mallory"])]
    (approved,) = [r for r in events if r["event"] == "JobApproved"]
    assert (approved["by"], approved["key_fingerprint"]) == ("alice", fingerprint(keys["alice"]))
    allowed = allowed_signers(tmp_path, keys, "alice", "bob")
    assert ssh_keygen_verifies(approved, "alice", allowed)
    assert not ssh_keygen_verifies({**approved, "reason": "changed"}, "alice", allowed)
    gate = status(path)["gate"]["approval"]
    assert (gate["authenticated"], gate["key_fingerprint"]) == (True, fingerprint(keys["alice"]))
    resumed = pt(path, "pipeline", "resume", path.name, "--run-id", RUN, "-q")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert status(path)["after"]["status"] == "DONE"


def test_required_two_needs_two_distinct_keys(tmp_path: Path, keys: dict[str, Path]) -> None:
    path = write_pipeline(tmp_path, inline(keys, "alice", "bob", "carol"), ", required: 2")
    start(path)
    first = decide(path, "approve", "--key", str(keys["alice"]))
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "gate: signed approval recorded (1 of 2); the gate still waits"
    assert status(path)["gate"]["status"] == "WAITING"
    refused(decide(path, "approve", "--key", str(keys["alice"])), "approved this gate already")
    second = decide(path, "approve", "--key", str(keys["bob"]))
    assert second.returncode == 0, second.stderr
    gate = status(path)["gate"]
    assert gate["status"] == "APPROVED"
    assert gate["approval"]["signers"] == [fingerprint(keys["alice"]), fingerprint(keys["bob"])]
    assert [r["event"] for r in lines(path) if r["event"].startswith("JobApprov")] == [
        "JobApprovalSigned", "JobApprovalRefused", "JobApproved"]


def test_a_pipeline_asking_more_keys_than_it_lists_is_refused(tmp_path: Path,
                                                               keys: dict[str, Path]) -> None:
    path = write_pipeline(tmp_path, inline(keys, "alice"), ", required: 2")
    result = pt(path, "pipeline", "validate", path.name)
    assert result.returncode == 2
    assert "required: 2 needs at least 2 approvers with distinct keys" in result.stderr


def test_separate_approver_compares_the_key_that_started_the_run(
        tmp_path: Path, keys: dict[str, Path]) -> None:
    path = write_pipeline(tmp_path, inline(keys, "alice", "bob"), ", separate_approver: true")
    start(path, "--key", str(keys["alice"]))
    refused(decide(path, "approve", "--key", str(keys["alice"])), "started the run")
    assert decide(path, "approve", "--key", str(keys["bob"])).returncode == 0


def test_ssh_keygen_signs_the_printed_statement_and_pt_records_it(
        tmp_path: Path, keys: dict[str, Path]) -> None:
    path = write_pipeline(tmp_path, inline(keys, "alice", "bob"))
    start(path)
    printed = decide(path, "approve", "--print-statement", "--as", "bob", "--reason", "fine")
    assert printed.returncode == 0, printed.stderr
    statement = tmp_path / "statement.json"
    statement.write_text(printed.stdout)
    subprocess.run(["ssh-keygen", "-q", "-Y", "sign", "-n", "pulsaride-approval", "-f",
                    str(keys["bob"]), str(statement)], check=True)
    signature = tmp_path / "statement.json.sig"
    # The same signature offered for another gate, or over an edited statement, is refused.
    other = orjson.loads(printed.stdout) | {"head": "0" * 64}
    forged = tmp_path / "forged.json"
    forged.write_bytes(orjson.dumps(other, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE))
    refused(decide(path, "approve", "--statement", str(forged), "--signature", str(signature)),
            "is not a line of this run")
    refused(decide(path, "reject", "--statement", str(statement), "--signature", str(signature)),
            "not 'reject'")
    # ... and the same signed statement offered to another run of the same pipeline.
    other = pt(path, "pipeline", "run", path.name, "--run-id", "other", "--no-wait", "-q")
    assert other.returncode == 3, other.stderr
    refused(pt(path, "pipeline", "approve", path.name, "--run-id", "other", "--job", "gate",
               "--statement", str(statement), "--signature", str(signature)),
            "not of this run's job")
    granted = decide(path, "approve", "--statement", str(statement), "--signature", str(signature))
    assert granted.returncode == 0, granted.stderr
    (approved,) = [r for r in lines(path) if r["event"] == "JobApproved"]
    assert (approved["by"], approved["reason"]) == ("bob", "fine")
    assert ssh_keygen_verifies(approved, "bob", allowed_signers(tmp_path, keys, "bob"))


def test_approvers_file_in_allowed_signers_format(tmp_path: Path, keys: dict[str, Path]) -> None:
    signers = tmp_path / "approvers"
    signers.write_text(f"# release approvers\ncarol,carol@example.org {public(keys['carol'])} carol-laptop\n"
                       f'git-only namespaces="git" {public(keys["mallory"])}\n')
    path = write_pipeline(tmp_path, "approvers_file: approvers")
    start(path)
    refused(decide(path, "approve", "--key", str(keys["mallory"])), "not on the gate's approver list")
    granted = decide(path, "approve", "--key", str(keys["carol"]))
    assert granted.returncode == 0, granted.stderr
    assert "approved by carol" in granted.stdout


def test_an_ssh_agent_key_signs_without_key_file(tmp_path: Path, keys: dict[str, Path]) -> None:
    agent = subprocess.run(["ssh-agent", "-s", "-a", str(tmp_path / "agent.sock")], check=True,
                           capture_output=True, text=True).stdout
    pid = int(agent.split("SSH_AGENT_PID=")[1].split(";")[0])
    env = {"SSH_AUTH_SOCK": str(tmp_path / "agent.sock")}
    try:
        subprocess.run(["ssh-add", "-q", str(keys["bob"])], env={**os.environ, **env}, check=True,
                       capture_output=True)
        path = write_pipeline(tmp_path, inline(keys, "alice", "bob"))
        start(path)
        granted = decide(path, "approve", env=env)
        assert granted.returncode == 0, granted.stderr
        assert "approved by bob" in granted.stdout
    finally:
        os.kill(pid, signal.SIGTERM)


def test_gates_without_keys_are_marked_unauthenticated(tmp_path: Path) -> None:
    path = write_pipeline(tmp_path, "approvers: [alice]")
    start(path)
    granted = decide(path, "approve", "--as", "alice")
    assert granted.returncode == 0, granted.stderr
    assert granted.stdout.strip().endswith("(unauthenticated: the gate has no approver keys)")
    assert status(path)["gate"]["approval"]["authenticated"] is False
    history = pt(path, "pipeline", "history", path.name)
    assert "gate approved by alice (unauthenticated)" in history.stdout


# ---- verify re-checks every signed decision offline -----------------------------------------


def run_path(path: Path) -> Path:
    return path.parent / ".pulsaride" / "pipeline-runs" / f"{RUN}.jsonl"


def rechained(lines: list[bytes], index: int, changes: dict[str, Any],
              drop: tuple[str, ...] = ()) -> bytes:
    """Line `index` edited and every later `prev` recomputed, as a tamperer would."""
    out = list(lines[:index])
    for number, line in enumerate(lines[index:], start=index):
        record = orjson.loads(line)
        if number == index:
            record.update(changes)
            for field in drop:
                record.pop(field, None)
        record["prev"] = hashlib.sha256(out[-1]).hexdigest() if out else "0" * 64
        out.append(orjson.dumps(record))
    return b"".join(line + b"\n" for line in out)


def verify(path: Path) -> dict[str, Any]:
    result = pt(path, "pipeline", "verify", "--run-id", RUN, "--json")
    assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result.stderr
    document: dict[str, Any] = orjson.loads(result.stdout)
    return document


def approved_run(tmp_path: Path, keys: dict[str, Path]) -> tuple[Path, list[bytes], int]:
    path = write_pipeline(tmp_path, inline(keys, "alice", "bob"), ", separate_approver: true")
    start(path, "--key", str(keys["bob"]))
    assert decide(path, "approve", "--key", str(keys["alice"]), "--reason", "ok").returncode == 0
    raw = run_path(path).read_bytes().splitlines()
    index = next(i for i, line in enumerate(raw) if b'"JobApproved"' in line)
    return path, raw, index


@pytest.mark.parametrize(("case", "changes", "drop", "finding"), [
    ("unsigned", {}, ("signature", "key_fingerprint", "signed_at"), "is not signed"),
    ("another name", {"by": "bob"}, (), "does not verify"),
    ("another reason", {"reason": "anything"}, (), "does not verify"),
    ("another head", {"head": "ab" * 32}, (), "is not a line of this run"),
])
def test_verify_finds_a_forged_approval_at_its_line(tmp_path: Path, keys: dict[str, Path],
                                                    case: str, changes: dict[str, Any],
                                                    drop: tuple[str, ...], finding: str) -> None:
    path, raw, index = approved_run(tmp_path, keys)
    clean = verify(path)
    assert clean["verdict"] == "verified" and clean["signed_decisions"] == 1, clean
    run_path(path).write_bytes(rechained(raw, index, changes, drop))
    report = verify(path)
    assert report["verdict"] == "failed", case
    assert report["first_offending_line"] == index + 1
    assert any(finding in f["message"] for f in report["findings"]), report["findings"]


def test_verify_finds_an_approval_by_the_key_that_started_the_run(
        tmp_path: Path, keys: dict[str, Path]) -> None:
    """A tamperer swaps in the starter's own signature: separation is re-checked offline."""
    path, raw, index = approved_run(tmp_path, keys)
    record = orjson.loads(raw[index])
    statement = Decision(run_id=RUN, job="gate", decision="approve", reason="ok",
                         at=record["signed_at"], head=record["head"], by="bob").statement()
    signed = subprocess.run(["ssh-keygen", "-q", "-Y", "sign", "-n", "pulsaride-approval", "-f",
                             str(keys["bob"])], input=statement, capture_output=True, check=True)
    run_path(path).write_bytes(rechained(raw, index, {
        "by": "bob", "signature": signed.stdout.decode(), "key_fingerprint": fingerprint(keys["bob"])}))
    report = verify(path)
    assert report["first_offending_line"] == index + 1
    assert any("started the run" in f["message"] for f in report["findings"]), report


def test_a_resume_cannot_change_the_keys_of_a_gate(tmp_path: Path, keys: dict[str, Path]) -> None:
    path = write_pipeline(tmp_path, inline(keys, "alice", "bob"))
    start(path)
    write_pipeline(tmp_path, inline(keys, "alice", "mallory"))
    resumed = pt(path, "pipeline", "resume", path.name, "--run-id", RUN, "--allow-changed", "-q")
    assert resumed.returncode == 2, resumed.stdout + resumed.stderr
    assert "gate 'gate': keys changed" in resumed.stderr
    refused(decide(path, "approve", "--key", str(keys["mallory"])), "not on the gate's approver list")
