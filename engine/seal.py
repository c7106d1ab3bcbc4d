"""Seals: Ed25519 signatures over a run's chain head, kept beside the run file.

A seal says "line `seq` of run `run_id` had the digest `head`". Because every line's `prev`
is the digest of the line before it, the head stands for every line up to `seq`: rewriting any
of them, or cutting the file below `seq`, no longer matches a seal — which the chain alone
cannot show, since whoever rewrites the file can recompute every `prev`. Seals are appended
to `<run-id>.seals.jsonl` (by engine/jsonl_store.py); they are attestations about the run
file, not lines of it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import BadInputError
from .inputs import KEY_FILE_BYTES, read_bounded

ALGORITHM = "ed25519"
_DOMAIN = b"pulsaride-seal/1\n"


@dataclass(frozen=True)
class Seal:
    """One signature over a run's chain head."""

    run_id: str
    seq: int
    head: str
    at: str
    by: str
    key_id: str
    signature: str
    algorithm: str = ALGORITHM

    def message(self) -> bytes:
        """The exact bytes that are signed."""
        return seal_message(self.run_id, self.seq, self.head)


def seal_message(run_id: str, seq: int, head: str) -> bytes:
    """What a seal signs: a domain tag, the run, the line number and its digest."""
    return _DOMAIN + f"{run_id}\n{seq}\n{head}\n".encode()


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short fingerprint of a public key (first 16 hex digits of SHA-256 of its raw bytes)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM file (e.g. `openssl genpkey -algorithm ed25519`)."""
    key = _load(path, private=True)
    if not isinstance(key, Ed25519PrivateKey):
        raise BadInputError(f"{path}: not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file (or the public half of a private key file)."""
    key = _load(path, private=False)
    if isinstance(key, Ed25519PrivateKey):
        return key.public_key()
    if not isinstance(key, Ed25519PublicKey):
        raise BadInputError(f"{path}: not an Ed25519 public key")
    return key


def _load(path: Path, *, private: bool) -> Any:
    data = read_bounded(path, KEY_FILE_BYTES, "key file")
    with contextlib.suppress(ValueError, TypeError, UnsupportedAlgorithm):
        return serialization.load_pem_private_key(data, None)
    if not private:
        with contextlib.suppress(ValueError, TypeError, UnsupportedAlgorithm):
            return serialization.load_pem_public_key(data)
    kind = "private" if private else "public"
    raise BadInputError(f"{path}: not a PEM {kind} key (unencrypted Ed25519 expected)")


def sign(key: Ed25519PrivateKey, *, run_id: str, seq: int, head: str, at: str,
         by: str) -> Seal:
    """A seal of line `seq` (digest `head`) of `run_id`."""
    signature = key.sign(seal_message(run_id, seq, head))
    return Seal(run_id=run_id, seq=seq, head=head, at=at, by=by,
                key_id=key_id(key.public_key()),
                signature=base64.b64encode(signature).decode())


def signature_valid(seal: Seal, public_key: Ed25519PublicKey) -> bool:
    """True if `seal` was signed by the private half of `public_key`."""
    try:
        public_key.verify(base64.b64decode(seal.signature, validate=True), seal.message())
    except (InvalidSignature, ValueError):
        return False
    return True


def check_seal_types(seal: Seal) -> None:
    """TypeError unless every field has its type (the file may have been tampered with)."""
    for name, value in asdict(seal).items():
        if name == "seq":
            if type(value) is not int or value < 1:
                raise TypeError("seq is not a positive integer")
        elif not isinstance(value, str):
            raise TypeError(f"{name} is not a string")
