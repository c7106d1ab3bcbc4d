"""Who may decide a gate when names are not enough: approvers with SSH public keys.

An approver is a name and, optionally, an OpenSSH public key (`ssh-ed25519 AAAA...` or
`ssh-rsa AAAA...`). Keys come inline in the pipeline file (`approvers: [{name, key}]`) or from
an `approvers_file` in OpenSSH's allowed_signers format, the one `git` and `ssh-keygen -Y
verify` read: `principal[,principal...] [options] keytype base64 [comment]`. The key set is
fixed in `RunStarted` like the rest of the gate policy (ADR 0017); an approval of a keyed gate
counts only when signed by one of those keys (engine/signatures.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import BadInputError
from .inputs import read_bounded

NAMESPACE = "pulsaride-approval"
"""The SSHSIG namespace of every approval signature (`ssh-keygen -Y sign -n ...`)."""

KEY_TYPES = ("ssh-ed25519", "ssh-rsa")
"""Key types whose signatures pt verifies (those the `sshsig` library checks)."""

MAX_SIGNERS_FILE_BYTES = 256 * 1024  # an allowed_signers file of about a thousand keys


class ApproverKeyError(BadInputError):
    """An approver's key or an allowed_signers file that cannot be used."""


@dataclass(frozen=True, order=True)
class ApproverKey:
    """A public key an approver signs with."""

    key_type: str
    base64_key: str

    @property
    def openssh(self) -> str:
        """The key as OpenSSH writes it (`ssh-ed25519 AAAA...`)."""
        return f"{self.key_type} {self.base64_key}"

    @property
    def fingerprint(self) -> str:
        """`SHA256:...`, as `ssh-keygen -l` prints it."""
        blob = base64.b64decode(self.base64_key)
        return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


@dataclass(frozen=True)
class Approver:
    """A person who may decide a gate: by name only, or by a key they hold."""

    name: str
    key: ApproverKey | None = None

    def as_json(self) -> dict[str, Any] | str:
        """How the approver is recorded in RunStarted (a bare name when it has no key)."""
        if self.key is None:
            return self.name
        return {"name": self.name, "key": self.key.openssh,
                "fingerprint": self.key.fingerprint}


def parse_key(text: str, where: str) -> ApproverKey:
    """The key in `text` (`type base64 [comment]`); ApproverKeyError if pt cannot verify it."""
    parts = text.split()
    if len(parts) < 2:
        raise ApproverKeyError(f"{where}: not an OpenSSH public key (expected 'type base64')")
    key_type, encoded = parts[0], parts[1]
    if key_type not in KEY_TYPES:
        raise ApproverKeyError(f"{where}: key type {key_type!r} is not supported "
                               f"(use {' or '.join(KEY_TYPES)})")
    try:
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ApproverKeyError(f"{where}: the key is not valid base64") from None
    if not _blob_names(blob, key_type):
        raise ApproverKeyError(f"{where}: the key's contents are not a {key_type} key")
    return ApproverKey(key_type, encoded)


def _blob_names(blob: bytes, key_type: str) -> bool:
    """Whether the SSH wire-format `blob` starts with the string `key_type`."""
    length = int.from_bytes(blob[:4], "big")
    return len(blob) > 4 + length and blob[4:4 + length] == key_type.encode()


def approver_from_spec(spec: str | Mapping[str, Any], where: str) -> Approver:
    """One entry of `approvers:`: a name, or `{name, key}`."""
    if isinstance(spec, str):
        return Approver(spec)
    key = spec.get("key")
    return Approver(str(spec["name"]),
                    parse_key(str(key), f"{where}: approver {spec['name']!r}")
                    if key is not None else None)


def approvers_from_recorded(recorded: Iterable[str | Mapping[str, Any]]) -> tuple[Approver, ...]:
    """The approvers as RunStarted recorded them (trusted: pt wrote them)."""
    return tuple(approver_from_spec(entry, "recorded run") for entry in recorded)


def load_allowed_signers(path: Path) -> tuple[Approver, ...]:
    """The approvers an allowed_signers file names: one per principal and key. Lines limited
    to other namespaces (`namespaces="git"`) are left out; `cert-authority` lines are refused
    (pt checks plain keys only)."""
    from sshsig.allowed_signers import load_allowed_signers_file  # noqa: PLC0415 - 30 ms

    data = read_bounded(path, MAX_SIGNERS_FILE_BYTES, what="approvers file")
    try:
        entries = list(load_allowed_signers_file(io.StringIO(data.decode("utf-8"))))
    except (ValueError, NotImplementedError, UnicodeDecodeError, IndexError) as exc:
        raise ApproverKeyError(f"{path}: not an allowed_signers file: {exc}") from None
    approvers: list[Approver] = []
    for number, entry in enumerate(entries, 1):
        options = entry.options or {}
        if "cert-authority" in options:
            raise ApproverKeyError(f"{path}: entry {number}: cert-authority keys are not "
                                   "supported; list each approver's own key")
        namespaces = options.get("namespaces")
        if namespaces is not None and NAMESPACE not in namespaces.split(","):
            continue
        key = parse_key(f"{entry.key_type} {entry.base64_key}", f"{path}: entry {number}")
        approvers.extend(Approver(name, key) for name in entry.principals.split(","))
    return tuple(approvers)


def key_holders(approvers: Iterable[Approver]) -> dict[ApproverKey, str]:
    """Each key and the name it signs as (the first name listed for it)."""
    holders: dict[ApproverKey, str] = {}
    for approver in approvers:
        if approver.key is not None:
            holders.setdefault(approver.key, approver.name)
    return holders


def with_approver_keys(document: Mapping[str, Any],
                       base: Path) -> tuple[dict[str, Any], list[str]]:
    """`document` (a schema-valid pipeline) with each level's `approvers_file` read into its
    `approvers` and every key normalised (`type base64`, comment dropped), and the problems
    found: unusable keys or files, `required` above the number of keyed approvers."""
    problems: list[str] = []
    top = _resolved_level(document, base, "top level", problems)
    jobs = {name: _resolved_level(spec, base, f"job '{name}'", problems)
            for name, spec in document["jobs"].items()}
    for name, spec in jobs.items():
        if spec.get("when") == "manual":
            problems.extend(_required_problems(name, spec, top))
    return {**top, "jobs": jobs}, problems


def _resolved_level(level: Mapping[str, Any], base: Path, where: str,
                    problems: list[str]) -> dict[str, Any]:
    resolved = {k: v for k, v in level.items() if k != "approvers_file"}
    if "approvers" not in level and "approvers_file" not in level:
        return resolved
    entries: list[str | dict[str, str]] = []
    for spec in level.get("approvers", []):
        try:
            entries.append(_normalised(approver_from_spec(spec, where)))
        except ApproverKeyError as exc:
            problems.append(str(exc))
    if "approvers_file" in level:
        try:
            signers = load_allowed_signers(base / str(level["approvers_file"]))
        except BadInputError as exc:
            problems.append(f"{where}: approvers_file: {exc}")
        else:
            entries.extend(_normalised(a) for a in signers if _normalised(a) not in entries)
    resolved["approvers"] = entries
    return resolved


def _normalised(approver: Approver) -> str | dict[str, str]:
    return approver.name if approver.key is None else {"name": approver.name,
                                                         "key": approver.key.openssh}


def _required_problems(name: str, spec: Mapping[str, Any],
                       top: Mapping[str, Any]) -> list[str]:
    required = spec.get("required", top.get("required"))
    if required is None:
        return []
    approvers = spec.get("approvers", top.get("approvers", []))
    keys = {entry["key"] for entry in approvers if isinstance(entry, dict)}
    if len(keys) < int(required):
        return [f"job '{name}': required: {required} needs at least {required} approvers with "
                f"distinct keys; the gate lists {len(keys)}"]
    return []
