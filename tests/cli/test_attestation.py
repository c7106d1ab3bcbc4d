"""`pt pipeline attest`: a run as an in-toto Statement v1 in a DSSE envelope, checked by
implementations that are not pt's: securesystemslib's DSSE verifier, DSSE's pre-authentication
encoding written out here over `cryptography`, in-toto-attestation's Statement validator,
the predicate's JSON Schema, and `sha256sum -c` over the bundle that carries it.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf import json_format
from in_toto_attestation.v1 import statement, statement_pb2
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

from pulsaride.schemas import load_schema
from tests.conftest import run_pt

RUN = "attested"
PIPELINE = """\
stages: [build, release]
jobs:
  build: {stage: build, command: "echo built; echo 'ünïcødé' >&2"}
  check: {stage: build, command: "echo checked", needs: [build]}
  gate: {stage: release, command: "echo released", when: manual, needs: [check]}
"""


def pt(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_pt(*args, cwd=folder, env={"LOGNAME": "olga", "SSH_AUTH_SOCK": ""})


@pytest.fixture
def finished_run(tmp_path: Path) -> Path:
    (tmp_path / "pulsaride-pipeline.yml").write_text(PIPELINE)
    started = pt(tmp_path, "pipeline", "run", "pulsaride-pipeline.yml", "--run-id", RUN,
                 "--no-wait", "-q")
    assert started.returncode == 3, started.stderr
    assert pt(tmp_path, "pipeline", "approve", "pulsaride-pipeline.yml", "--run-id", RUN,
              "--job", "gate", "--as", "bob").returncode == 0
    done = pt(tmp_path, "pipeline", "resume", "pulsaride-pipeline.yml", "--run-id", RUN, "-q")
    assert done.returncode == 0, done.stderr
    return tmp_path


def pem_key(folder: Path) -> tuple[Path, Ed25519PublicKey]:
    key = folder / "attest.pem"
    made = pt(folder, "pipeline", "keygen", "--out", str(key))
    assert made.returncode == 0, made.stderr
    private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    public = private.public_key()
    assert isinstance(public, Ed25519PublicKey)
    return key, public


def attest(folder: Path, key: Path) -> dict[str, Any]:
    out = folder / "run.intoto.jsonl"
    result = pt(folder, "pipeline", "attest", "--run-id", RUN, "--key", str(key), "-o", str(out))
    assert result.returncode == 0, result.stderr
    (line,) = out.read_bytes().splitlines()
    envelope: dict[str, Any] = orjson.loads(line)
    return envelope


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1's pre-authentication encoding, from the specification."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def statement_of(envelope: dict[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads(base64.b64decode(envelope["payload"]))
    return document


def test_the_attestation_verifies_with_independent_implementations(finished_run: Path) -> None:
    key, public = pem_key(finished_run)
    envelope = attest(finished_run, key)
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    payload = base64.b64decode(envelope["payload"])
    (signature,) = envelope["signatures"]
    public.verify(base64.b64decode(signature["sig"]), pae(envelope["payloadType"], payload))

    verified = Envelope.from_dict(copy.deepcopy(envelope)).verify([SSlibKey.from_crypto(public)], 1)
    assert list(verified) == [signature["keyid"]]

    parsed = json_format.Parse(payload, statement_pb2.Statement())
    statement.Statement.copy_from_pb(parsed).validate()

    document = statement_of(envelope)
    assert document["predicateType"] == "https://pulsaride.dev/migration-run/v1"
    jsonschema.validate(document["predicate"], load_schema("migration-run-predicate"))
    predicate = document["predicate"]
    assert (predicate["run_id"], predicate["outcome"], predicate["verification"]) == (
        RUN, "succeeded", "verified")
    assert [(j["name"], j["status"]) for j in predicate["jobs"]] == [
        ("build", "DONE"), ("check", "DONE"), ("gate", "DONE")]
    assert [(a["job"], a["by"], a["authenticated"]) for a in predicate["approvals"]] == [
        ("gate", "bob", False)]


def subjects_hold(folder: Path, envelope: dict[str, Any]) -> bool:
    """What an auditor checks: every subject's SHA-256 against the file it names."""
    runs = folder / ".pulsaride" / "pipeline-runs"
    return all(hashlib.sha256((runs / s["name"]).read_bytes()).hexdigest()
               == s["digest"]["sha256"] for s in statement_of(envelope)["subject"])


def test_subjects_name_every_file_of_the_run_and_fail_after_a_one_byte_change(
        finished_run: Path) -> None:
    key, _ = pem_key(finished_run)
    envelope = attest(finished_run, key)
    names = [s["name"] for s in statement_of(envelope)["subject"]]
    assert f"{RUN}.jsonl" in names and f"{RUN}/pipeline.yml" in names
    assert {f"{RUN}/logs/build/attempt-1.log", f"{RUN}/logs/gate/attempt-1.log"} <= set(names)
    predicate = statement_of(envelope)["predicate"]
    logs = {j["log"]: j["log_sha256"] for j in predicate["jobs"]}
    digests = {s["name"]: s["digest"]["sha256"] for s in statement_of(envelope)["subject"]}
    assert all(digests[log] == digest for log, digest in logs.items())
    assert subjects_hold(finished_run, envelope)
    runs = finished_run / ".pulsaride" / "pipeline-runs"
    for name in names:
        path = runs / name
        original = path.read_bytes()
        path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        assert not subjects_hold(finished_run, envelope), name
        path.write_bytes(original)
    assert subjects_hold(finished_run, envelope)


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs OpenSSH")
def test_an_openssh_key_signs_too(finished_run: Path) -> None:
    key = finished_run / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    private = serialization.load_ssh_private_key(key.read_bytes(), password=None)
    public = private.public_key()
    assert isinstance(public, Ed25519PublicKey)
    envelope = attest(finished_run, key)
    payload = base64.b64decode(envelope["payload"])
    public.verify(base64.b64decode(envelope["signatures"][0]["sig"]),
                  pae(envelope["payloadType"], payload))


def test_a_bad_key_is_one_line(finished_run: Path) -> None:
    bad = finished_run / "bad.pem"
    bad.write_text("not a key")
    result = pt(finished_run, "pipeline", "attest", "--run-id", RUN, "--key", str(bad))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="needs coreutils")
def test_the_bundle_carries_the_attestation_when_given_a_key(finished_run: Path) -> None:
    key, public = pem_key(finished_run)
    bundle = finished_run / "bundle.tar.gz"
    result = pt(finished_run, "pipeline", "export", "--run-id", RUN, "--format", "bundle",
                "--key", str(key), "-o", str(bundle))
    assert result.returncode == 0, result.stderr
    with tarfile.open(bundle) as archive:
        archive.extractall(finished_run / "out", filter="data")
    root = finished_run / "out" / f"pulsaride-run-{RUN}"
    checked = subprocess.run(["sha256sum", "-c", "MANIFEST.sha256"], cwd=root,
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    envelope = orjson.loads((root / "attestation.intoto.jsonl").read_bytes())
    payload = base64.b64decode(envelope["payload"])
    public.verify(base64.b64decode(envelope["signatures"][0]["sig"]),
                  pae(envelope["payloadType"], payload))
    # The bundle's members are the subjects: each digest matches the file in the bundle.
    for subject in statement_of(envelope)["subject"]:
        assert hashlib.sha256((root / subject["name"]).read_bytes()).hexdigest() \
            == subject["digest"]["sha256"]
