"""Secret masking: values of secret-looking variables never reach what pt writes."""

from __future__ import annotations

from pulsaride.engine.masking import MASK, Masker, mask_variables, secret_values


def test_secret_names_are_recognised_in_any_case() -> None:
    env = {"DB_PASSWORD": "hunter22", "api_token": "tok-123", "MY_KEY": "k-999",
           "client_secret": "shh-abc", "USER": "alice"}
    assert set(secret_values(env)) == {"hunter22", "tok-123", "k-999", "shh-abc"}


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
