"""Secret masking: values of secret-looking variables never reach what pt writes."""

from __future__ import annotations

import base64
from urllib.parse import quote, quote_plus

import pytest

from pulsaride.engine.masking import (
    MASK,
    YAML_MASK,
    Masker,
    encoded_forms,
    mask_variables,
    secret_values,
)


def test_secret_names_are_recognised_in_any_case() -> None:
    env = {"DB_PASSWORD": "hunter22", "api_token": "tok-123", "MY_KEY": "k-999",
           "client_secret": "shh-abc", "USER": "alice"}
    values = {"hunter22", "tok-123", "k-999", "shh-abc"}
    assert set(secret_values(env)) == set().union(*(encoded_forms(v) for v in values))
    assert "alice" not in secret_values(env)


def test_short_values_are_not_masked() -> None:
    assert secret_values({"PASS": "no"}) == []


def test_longer_secrets_win_over_their_prefixes() -> None:
    masker = Masker(["abcd", "abcdefgh"])
    assert masker.text("x abcdefgh y abcd") == f"x {MASK} y {MASK}"


def test_multi_line_secrets_are_masked_whole_and_per_line() -> None:
    values = secret_values({"PRIVATE_KEY": "-----BEGIN-----\nAAAAsecretline\n-----END-----"})
    masker = Masker(values)
    assert "AAAAsecretline" not in masker.text("line: AAAAsecretline")
    assert masker.data(b"-----BEGIN-----\nAAAAsecretline\n") == f"{MASK}\n{MASK}\n".encode()


def test_documents_and_variables_are_masked() -> None:
    masker = Masker(["topsecret"])
    assert masker.document({"cmd": ["run topsecret"], "n": 1}) == {"cmd": [f"run {MASK}"], "n": 1}
    assert mask_variables({"DB_PASS": "x", "HOST": "h"}) == {"DB_PASS": MASK, "HOST": "h"}


# ---- issue 12 item 3: by value, wherever they arrive, in every form ---------------------------

SPECIAL = "p@ss w/rd:99!&x"


def test_the_password_of_a_url_in_any_variable_is_a_secret() -> None:
    env = {"PT_TARGET_URL": "postgresql://u:S3cr%40t-x@h:5432/db", "HOME": "/root"}
    masker = Masker(secret_values(env))
    masked = masker.text("password S3cr%40t-x, decoded S3cr@t-x")
    assert masked == f"password {MASK}, decoded {MASK}"


def test_a_url_password_is_masked_wherever_it_comes_from() -> None:
    masker = Masker([])
    line = "connect postgresql://joe:never-seen-1@h/db and mysql://a:b@c, ssh://git@host"
    assert masker.text(line) == (f"connect postgresql://joe:{MASK}@h/db and mysql://a:{MASK}@c, "
                                 "ssh://git@host")
    assert masker.data(b"x https://u:pw-here@h/y", YAML_MASK) == b"x https://u:<masked>@h/y"
    assert masker.text("http://[::1]:8765/runs") == "http://[::1]:8765/runs"


def test_declared_secrets_are_secrets_whatever_their_name() -> None:
    masker = Masker(secret_values({"PLAIN": "not-masked-1"}, declared=["declared-word-2"]))
    assert masker.text("not-masked-1 declared-word-2") == f"not-masked-1 {MASK}"


@pytest.mark.parametrize("form", [
    base64.b64encode(SPECIAL.encode()).decode(),
    base64.urlsafe_b64encode(SPECIAL.encode()).decode(),
    quote(SPECIAL, safe=""), quote(SPECIAL), quote_plus(SPECIAL),
    quote(SPECIAL, safe="").lower(),
    '"p@ss w/rd:99!&x"'[1:-1],
])
def test_encoded_forms_of_a_secret_are_masked(form: str) -> None:
    masker = Masker(secret_values({"SPECIAL_PASS": SPECIAL}))
    assert masker.text(f"[{form}]") == f"[{MASK}]"


@pytest.mark.parametrize("before", [b"", b"a", b"ab", b"abc", b"abcd"])
def test_a_secret_inside_a_longer_base64_text_is_masked_at_every_alignment(before: bytes) -> None:
    secret = "s3cret-value-42"
    masker = Masker(secret_values({"DB_PASSWORD": secret}))
    encoded = base64.b64encode(before + secret.encode() + b" and more").decode()
    masked = masker.text(encoded)
    assert MASK in masked
    # What is left cannot give the secret back: at most 2 characters of its encoding remain.
    left = masked.replace(MASK, "")
    assert len(encoded) - len(left) >= len(base64.b64encode(secret.encode())) - 4


def test_safe_cut_never_cuts_a_url_before_its_password_ends() -> None:
    masker = Masker([])
    head = b"x" * 100 + b" postgresql://u:half-of-the-pass"
    assert masker.safe_cut(head) == 101  # hold the URL back until its '@' (or its end) arrives
    whole = head + b"word@h/db more"
    assert masker.safe_cut(whole) == len(whole)
    long = b"y" * 5000 + b"://" + b"z" * 2000
    assert masker.safe_cut(long) == len(long)  # not a URL worth holding back
