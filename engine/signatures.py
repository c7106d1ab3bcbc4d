"""Signed gate decisions: the statement an approver signs, signing it, checking a signature.

The statement is canonical JSON (sorted keys, no spaces) of what was decided: run id, job,
decision, reason (as recorded, secrets masked), time, the chain head the approver saw, and the
approver's name. It is signed in OpenSSH's SSHSIG format under the namespace
`pulsaride-approval`, so `ssh-keygen -Y sign -n pulsaride-approval -f KEY` makes the same kind
of signature and `ssh-keygen -Y verify` checks one. Signing runs the user's own `ssh-keygen`
(their key file, passphrase prompt, hardware key or ssh-agent); checking uses the `sshsig`
library, so `pt pipeline verify` needs no OpenSSH (ADR 0018).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson

from .approvers import NAMESPACE, ApproverKey, ApproverKeyError, parse_key
from .errors import BadInputError
from .inputs import KEY_FILE_BYTES, read_bounded

STATEMENT_TYPE = "pulsaride.approval/1"
START_TYPE = "pulsaride.run-start/1"
SIGN_TIMEOUT_SECONDS = 120  # a passphrase prompt or a hardware key's touch
MAX_SIGNATURE_CHARS = 16 * 1024  # an armored RSA-16384 signature is about 3 KiB


class SigningError(BadInputError):
    """The decision could not be signed (no key, ssh-keygen failed)."""


class SignatureInvalid(ValueError):
    """A signature that does not verify, or not by a key on the list; the message says which."""


@dataclass(frozen=True)
class Decision:
    """What an approver signs."""

    run_id: str
    job: str
    decision: str  # approve | reject
    reason: str
    at: str
    head: str
    by: str

    def statement(self) -> bytes:
        """The canonical bytes signed and verified: one line of JSON (sorted keys) and its
        newline, so the file `--print-statement` writes is exactly what ssh-keygen signs."""
        return orjson.dumps({"type": STATEMENT_TYPE, "run_id": self.run_id, "job": self.job,
                             "decision": self.decision, "reason": self.reason, "at": self.at,
                             "head": self.head, "by": self.by},
                            option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)


def start_statement(run_id: str, pipeline_sha256: str, at: str, by: str) -> bytes:
    """What `pt pipeline run --key` signs: this run of this pipeline file, started by `by`."""
    return orjson.dumps({"type": START_TYPE, "run_id": run_id, "pipeline_sha256": pipeline_sha256,
                         "at": at, "by": by},
                        option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)


def sign(statement: bytes, key_file: Path) -> str:
    """The armored SSHSIG signature of `statement` by the private key `key_file` (or, when
    `key_file` is a public key, by the ssh-agent holding its private half)."""
    ssh_keygen = shutil.which("ssh-keygen")
    if ssh_keygen is None:
        raise SigningError("cannot sign: ssh-keygen (OpenSSH) is not installed")
    if not key_file.is_file():
        raise SigningError(f"{key_file}: no such key file")
    try:
        done = subprocess.run([ssh_keygen, "-q", "-Y", "sign", "-n", NAMESPACE,
                               "-f", str(key_file)], input=statement, capture_output=True,
                              timeout=SIGN_TIMEOUT_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        raise SigningError(f"cannot sign with {key_file}: ssh-keygen did not answer in "
                           f"{SIGN_TIMEOUT_SECONDS} s") from None
    armored = done.stdout.decode("ascii", "replace")
    if done.returncode != 0 or "BEGIN SSH SIGNATURE" not in armored:
        problem = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise SigningError(f"cannot sign with {key_file}: "
                           f"{problem[-1] if problem else 'ssh-keygen failed'}")
    return armored


def agent_key_among(candidates: Iterable[ApproverKey]) -> ApproverKey:
    """The first of `candidates` the running ssh-agent holds; SigningError if none."""
    held = agent_keys()
    wanted = [key for key in candidates if key in held]
    if not wanted:
        raise SigningError("cannot sign: the ssh-agent holds none of this gate's approver keys"
                           if held else "cannot sign: no --key given and no ssh-agent key")
    return wanted[0]


def sign_with_agent(statement: bytes, key: ApproverKey) -> str:
    """Sign with `key`, whose private half the running ssh-agent holds."""
    with tempfile.TemporaryDirectory(prefix="pt-sign-") as folder:
        public = Path(folder) / "key.pub"
        public.write_text(key.openssh + "\n")
        return sign(statement, public)


def agent_keys() -> set[ApproverKey]:
    """The keys the ssh-agent at SSH_AUTH_SOCK holds (empty when there is none)."""
    ssh_add = shutil.which("ssh-add")
    if ssh_add is None or not os.environ.get("SSH_AUTH_SOCK"):
        return set()
    try:
        done = subprocess.run([ssh_add, "-L"], capture_output=True, timeout=10, check=False)
    except subprocess.TimeoutExpired:
        return set()
    keys: set[ApproverKey] = set()
    for line in done.stdout.decode("utf-8", "replace").splitlines():
        try:
            keys.add(parse_key(line, "ssh-agent"))
        except ApproverKeyError:
            continue  # a key type pt cannot verify (e.g. ECDSA, a security key)
    return keys


def public_key_of(key_file: Path) -> ApproverKey:
    """The public key of the private key `key_file` (read from `key_file`.pub or derived by
    ssh-keygen), to name the signer before signing."""
    public = key_file.with_name(key_file.name + ".pub")
    if key_file.name.endswith(".pub"):
        public = key_file
    if public.is_file():
        text = read_bounded(public, KEY_FILE_BYTES, "public key file")
        return parse_key(text.decode("utf-8", errors="replace"), str(public))
    ssh_keygen = shutil.which("ssh-keygen")
    if ssh_keygen is None:
        raise SigningError("cannot sign: ssh-keygen (OpenSSH) is not installed")
    done = subprocess.run([ssh_keygen, "-y", "-f", str(key_file)], capture_output=True,
                          timeout=SIGN_TIMEOUT_SECONDS, check=False)
    if done.returncode != 0:
        raise SigningError(f"{key_file}: cannot read the key's public half")
    return parse_key(done.stdout.decode("utf-8", "replace"), str(key_file))


def signer(statement: bytes, armored: str) -> ApproverKey:
    """The key whose valid SSHSIG signature over `statement` `armored` is (namespace
    `pulsaride-approval`); SignatureInvalid otherwise."""
    import sshsig  # noqa: PLC0415 - 40 ms; only gates with keys need it

    if len(armored) > MAX_SIGNATURE_CHARS:
        raise SignatureInvalid("the signature is too long to be an SSH signature")
    try:
        public = sshsig.check_signature(statement, armored, namespace=NAMESPACE)
    except (sshsig.InvalidSignature, NotImplementedError, ValueError) as exc:
        raise SignatureInvalid(f"the signature does not verify ({exc})") from None
    try:
        return parse_key(public.openssh_str(), "signature")
    except ApproverKeyError as exc:
        raise SignatureInvalid(str(exc)) from None


def verify(statement: bytes, armored: str, allowed: Iterable[ApproverKey]) -> ApproverKey:
    """The signer of `statement` if `armored` is its valid signature by one of `allowed`."""
    key = signer(statement, armored)
    if key not in set(allowed):
        raise SignatureInvalid(f"signed by {key.fingerprint}, a key not on the gate's "
                               "approver list")
    return key
