"""Keeping secrets out of everything `pt` writes: secret values become ***, by value.

What is secret (`secret_values`), always from the live values (the environment `pt` runs in
and the pipeline file as loaded, never a recorded copy, whose values are already masked):
- the value of a variable whose name contains PASS, SECRET, TOKEN or KEY (any case);
- the value of a variable declared `{value: ..., secret: true}` in the pipeline file;
- the password of every URL in any variable's value (`postgresql://u:PASSWORD@h/db`).
Each is masked in the forms a job may print it in, as hosted CI runners do: as is, base64
(standard and URL-safe, at each of the three byte alignments inside a longer base64 text),
percent-encoded (URL-encoded), and JSON- or YAML-escaped. Besides, `Masker` masks the password
of any URL it sees (`scheme://user:PASSWORD@`), whether or not it came from a variable.

Values shorter than MIN_SECRET_LENGTH are not masked: masking "1" or "no" would garble output
without protecting anything. Multi-line values are masked whole and line by line, because
output is processed a line at a time.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit, urlunsplit

import orjson

SECRET_NAME = re.compile(r"PASS|SECRET|TOKEN|KEY", re.IGNORECASE)
MIN_SECRET_LENGTH = 4
MIN_ENCODED_LENGTH = 8
"""A base64 fragment (a secret inside a longer base64 text) is masked only from this length:
shorter fragments of short secrets would match ordinary base64 data by chance."""
MASK = "***"
YAML_MASK = "<masked>"
"""The mask in copies of pipeline files: `***` would be a YAML alias there (`KEY: ***` does not
parse), and a copy must still parse for `pt pipeline verify` to compare it with the run."""

# scheme://user:PASSWORD@ — the password ends at the first character a URL cannot hold there.
_URL_PASSWORD = r"(?P<keep>[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#@:]*:)(?P<password>[^\s/?#@]+)(?=@)"
_URL_PASSWORD_TEXT = re.compile(_URL_PASSWORD)
_URL_PASSWORD_BYTES = re.compile(_URL_PASSWORD.encode())
_URL_WINDOW = 1024  # a URL cut by a long line's flush is looked for this far back


def is_secret_name(name: str) -> bool:
    """True if a variable called `name` holds a secret."""
    return SECRET_NAME.search(name) is not None


def secret_values(*environments: Mapping[str, str], declared: Iterable[str] = ()) -> list[str]:
    """Every string to mask, longest first: the values of secret-looking names, the
    `declared` secret values, the passwords of URLs in any value, each in every form."""
    values: set[str] = set()
    for env in environments:
        for name, value in env.items():
            if is_secret_name(name):
                values.update(_pieces(value))
            values.update(piece for password in url_passwords(value)
                          for piece in _pieces(password))
    for value in declared:
        values.update(_pieces(value))
    forms = {form for value in values for form in encoded_forms(value)}
    return sorted(forms, key=len, reverse=True)


def url_passwords(text: str) -> Iterator[str]:
    """The password of every `scheme://user:password@` URL in `text`, as written and
    percent-decoded."""
    for match in _URL_PASSWORD_TEXT.finditer(text):
        password = match["password"]
        yield password
        if unquote(password) != password:
            yield unquote(password)


def encoded_forms(value: str) -> set[str]:
    """`value` and the forms a job may print it in (see the module docstring)."""
    forms = {value, quote(value, safe=""), quote(value), quote_plus(value),
             orjson.dumps(value).decode()[1:-1], value.replace("'", "''")}
    forms |= {re.sub(r"%[0-9A-F]{2}", lambda m: m[0].lower(), form) for form in set(forms)}
    forms |= {form for form in _base64_forms(value.encode()) if len(form) >= MIN_ENCODED_LENGTH}
    standard = base64.b64encode(value.encode()).decode()
    forms |= {standard, standard.replace("+", "-").replace("/", "_")}
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def _base64_forms(data: bytes) -> Iterator[str]:
    """The part of base64 text that is the same wherever `data` sits in a longer text: at
    each of the three alignments, without the characters that depend on the bytes around."""
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + data).decode().rstrip("=")
        skip = (8 * shift + 5) // 6  # characters holding bits of the bytes before
        end = len(encoded) - (1 if (shift + len(data)) % 3 else 0)  # ... and after
        core = encoded[skip:end]
        yield core
        yield core.replace("+", "-").replace("/", "_")


def _pieces(value: str) -> Iterable[str]:
    candidates = [value, *value.splitlines()]
    return (piece for piece in (c.strip("\r") for c in candidates)
            if len(piece) >= MIN_SECRET_LENGTH)


class Masker:
    """Replaces every occurrence of the given secret values, and every URL's password, by MASK."""

    def __init__(self, secrets: Iterable[str]) -> None:
        ordered = sorted(set(secrets), key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        self._bytes_pattern = (
            re.compile(b"|".join(re.escape(s.encode()) for s in ordered)) if ordered else None
        )
        self._longest = max((len(s.encode()) for s in ordered), default=0)

    def text(self, value: str) -> str:
        """`value` with secrets masked."""
        masked = self._pattern.sub(MASK, value) if self._pattern else value
        if "://" not in masked:
            return masked
        return _URL_PASSWORD_TEXT.sub(lambda m: m["keep"] + MASK, masked)

    def data(self, value: bytes, mask: str = MASK) -> bytes:
        """`value` (bytes) with secrets masked (replaced by `mask`)."""
        replacement = mask.encode()
        masked = self._bytes_pattern.sub(replacement, value) if self._bytes_pattern else value
        if b"://" not in masked:
            return masked
        return _URL_PASSWORD_BYTES.sub(lambda m: m["keep"] + replacement, masked)

    def safe_cut(self, value: bytes) -> int:
        """How much of `value`, the start of a line still arriving, can be masked and written
        now: no secret may be cut in two (each half would pass unmasked), nor a URL before its
        password ends. Holds back the last (longest secret - 1) bytes, and never cuts inside a
        secret or a URL's credentials."""
        cut = len(value)
        if self._bytes_pattern is not None:
            cut = max(0, len(value) - (self._longest - 1))
            for match in self._bytes_pattern.finditer(value):
                if match.start() >= cut:
                    break
                if match.end() > cut:
                    cut = match.end()
                    break
        return _before_open_url(value, cut)

    def document(self, value: Any) -> Any:
        """A copy of a JSON-like document with secrets masked in every string."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k): self.document(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.document(v) for v in value]
        return value


def _before_open_url(value: bytes, cut: int) -> int:
    """`cut`, or the start of a URL that begins less than _URL_WINDOW bytes before it and
    whose credentials have not ended by then (its password may be still to come)."""
    scheme = value.rfind(b"://", max(0, cut - _URL_WINDOW), cut)
    if scheme < 0:
        return cut
    token = max(value.rfind(space, 0, scheme) for space in (b" ", b"\t", b"\r")) + 1
    rest = value[scheme:cut]
    if cut - token > _URL_WINDOW or any(c in rest for c in (b" ", b"\t", b"\r", b"@")):
        return cut  # too long to be a URL worth holding back, or it ended, or its password did
    return token


def mask_variables(variables: Mapping[str, str],
                   secret_names: Iterable[str] = ()) -> dict[str, str]:
    """Variables with the values of secret-looking or declared-secret names replaced by MASK."""
    declared = set(secret_names)
    return {k: (MASK if is_secret_name(k) or k in declared else v) for k, v in variables.items()}


def safe_url(url: str) -> str:
    """`url` without its password, fit for messages and for the record."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
