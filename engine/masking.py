"""Keeping secrets out of everything `pt` writes: values of secret-looking variables become ***.

A variable is secret-looking when its name contains PASS, SECRET, TOKEN or KEY (any case).
Values shorter than MIN_SECRET_LENGTH are not masked: masking "1" or "no" would garble output
without protecting anything. Multi-line values are masked whole and line by line, because
output is processed a line at a time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

SECRET_NAME = re.compile(r"PASS|SECRET|TOKEN|KEY", re.IGNORECASE)
MIN_SECRET_LENGTH = 4
MASK = "***"
YAML_MASK = "<masked>"
"""The mask in copies of pipeline files: `***` would be a YAML alias there (`KEY: ***` does not
parse), and a copy must still parse for `pt pipeline verify` to compare it with the run."""


def is_secret_name(name: str) -> bool:
    """True if a variable called `name` holds a secret."""
    return SECRET_NAME.search(name) is not None


def secret_values(*environments: Mapping[str, str]) -> list[str]:
    """The values to mask, taken from secret-looking names of the given environments."""
    values: set[str] = set()
    for env in environments:
        for name, value in env.items():
            if is_secret_name(name):
                values.update(_pieces(value))
    return sorted(values, key=len, reverse=True)


def _pieces(value: str) -> Iterable[str]:
    candidates = [value, *value.splitlines()]
    return (piece for piece in (c.strip("\r") for c in candidates)
            if len(piece) >= MIN_SECRET_LENGTH)


class Masker:
    """Replaces every occurrence of the given secret values by MASK."""

    def __init__(self, secrets: Iterable[str]) -> None:
        ordered = sorted(set(secrets), key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        self._bytes_pattern = (
            re.compile(b"|".join(re.escape(s.encode()) for s in ordered)) if ordered else None
        )
        self._longest = max((len(s.encode()) for s in ordered), default=0)

    def text(self, value: str) -> str:
        """`value` with secrets masked."""
        return self._pattern.sub(MASK, value) if self._pattern else value

    def data(self, value: bytes, mask: str = MASK) -> bytes:
        """`value` (bytes) with secrets masked (replaced by `mask`)."""
        return self._bytes_pattern.sub(mask.encode(), value) if self._bytes_pattern else value

    def safe_cut(self, value: bytes) -> int:
        """How much of `value`, the start of a line still arriving, can be masked and written
        now: no secret may be cut in two (each half would pass unmasked). Holds back the last
        (longest secret - 1) bytes, and never cuts inside a secret."""
        if self._bytes_pattern is None:
            return len(value)
        cut = max(0, len(value) - (self._longest - 1))
        for match in self._bytes_pattern.finditer(value):
            if match.start() >= cut:
                break
            if match.end() > cut:
                return match.end()
        return cut

    def document(self, value: Any) -> Any:
        """A copy of a JSON-like document with secrets masked in every string."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k): self.document(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.document(v) for v in value]
        return value


def mask_variables(variables: Mapping[str, str]) -> dict[str, str]:
    """Variables with the values of secret-looking names replaced by MASK."""
    return {k: (MASK if is_secret_name(k) else v) for k, v in variables.items()}
