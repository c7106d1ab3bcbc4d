"""Signing a run's in-toto Statement in a DSSE envelope, the format in-toto, sigstore and SLSA
verifiers read (payloadType `application/vnd.in-toto+json`).

The envelope is made by `securesystemslib.dsse` (the in-toto project's own implementation of
DSSE's pre-authentication encoding) with an Ed25519 key: pt's seal key (PEM, `pt pipeline
keygen`) or an unencrypted OpenSSH ed25519 key. One envelope is one JSON line, so a file of them
is the `.intoto.jsonl` that in-toto tooling expects (ADR 0019).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .errors import BadInputError
from .inputs import KEY_FILE_BYTES, read_bounded

PAYLOAD_TYPE = "application/vnd.in-toto+json"


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM (PKCS#8) or OpenSSH private key file."""
    data = read_bounded(path, KEY_FILE_BYTES, "key file")
    try:
        if b"OPENSSH PRIVATE KEY" in data:
            key: object = serialization.load_ssh_private_key(data, password=None)
        else:
            key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise BadInputError(f"{path}: not a usable private key (an Ed25519 key without "
                            f"passphrase, PEM or OpenSSH): {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BadInputError(f"{path}: not an Ed25519 private key")
    return key


def envelope(statement: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """The DSSE envelope of `statement` signed by `key` (keyid: securesystemslib's, the
    SHA-256 of the public key's canonical form)."""
    from securesystemslib.dsse import Envelope  # noqa: PLC0415 - only `attest` needs it

    # The package re-exports CryptoSigner without __all__, which mypy's strict mode flags.
    from securesystemslib.signer import CryptoSigner  # type: ignore[attr-defined]  # noqa: PLC0415

    payload = orjson.dumps(statement, option=orjson.OPT_SORT_KEYS)
    signed = Envelope(payload=payload, payload_type=PAYLOAD_TYPE, signatures={})
    signed.sign(CryptoSigner(key))
    result: dict[str, Any] = signed.to_dict()
    return result


def envelope_line(statement: dict[str, Any], key: Ed25519PrivateKey) -> bytes:
    """The envelope as one line of an `.intoto.jsonl` file (with its newline)."""
    return orjson.dumps(envelope(statement, key), option=orjson.OPT_APPEND_NEWLINE)
