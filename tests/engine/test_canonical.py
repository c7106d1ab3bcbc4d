"""Canonical values (pure): what "the same value" means when a source row meets its target row.

Numbers compare by value, timestamps at the target column's precision (rounded as PostgreSQL
rounds, which tests/migration/test_validate.py checks against the real server), CHAR padding
is not data, '' is NULL only when the transform says so, booleans kept as 0/1 and dates kept as
ISO text (SQLite) equal the typed values of the target.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pulsaride.migration.canonical import (
    ColumnRule,
    canonical,
    canonical_row,
    converter,
    key_text,
    row_converter,
    row_hash,
    rule_for,
    sampled,
)

PLAIN = ColumnRule("x")


def c(value: object, target_type: str = "", empty_is_null: bool = False) -> object:
    return canonical(value, rule_for("x", target_type, empty_is_null))


# ---- numbers by value ------------------------------------------------------------------------


@pytest.mark.parametrize("values", [
    (Decimal("1.5"), Decimal("1.50"), Decimal("1.500"), 1.5, Decimal("15E-1")),
    (2, Decimal("2"), Decimal("2.00"), 2.0, Decimal("0.2E+1")),
    (100, Decimal("1E+2"), Decimal("100.000"), 100.0),
    (0, Decimal("0.00"), Decimal("-0.00"), 0.0, -0.0, Decimal("0E-10")),
    (-12, Decimal("-12.0"), -12.0),
    (10**20, Decimal("1E+20"), 1e20),
])
def test_numbers_compare_by_value(values: tuple[object, ...]) -> None:
    forms = {c(v, "NUMERIC(12,2)") for v in values}
    assert len(forms) == 1, forms


def test_numbers_have_one_plain_spelling() -> None:
    assert c(Decimal("1.50")) == "1.5"
    assert c(Decimal("123.4500")) == "123.45"
    assert c(Decimal("1E+2")) == "100"
    assert c(-0.0) == "0"
    assert c(0.1) == "0.1"  # the float's shortest repr, not 0.1000000000000000055511...
    assert c(12345678901234567890) == "12345678901234567890"


def test_different_numbers_stay_different() -> None:
    assert c(Decimal("1.5")) != c(Decimal("1.51"))
    assert c(Decimal("1.5")) != c(Decimal("15"))
    assert c(0.1) != c(0.10000001)
    assert c(1) != c(-1)


def test_non_finite_numbers_are_kept() -> None:
    assert c(Decimal("NaN")) == "NaN"
    assert c(float("inf")) == "Infinity"
    assert c(float("-inf")) == "-Infinity"
    assert c(float("inf")) != c(float("-inf"))


def test_a_number_and_its_text_are_not_the_same_value() -> None:
    """Text stays text: a target varchar holding '1.50' is not the number 1.5."""
    assert c("1.50") == "1.50"
    assert c("1.50") != c(Decimal("1.5"))


# ---- timestamps at the target precision -----------------------------------------------------


def _at(micro: int, year: int = 2024) -> datetime:
    return datetime(year, 3, 1, 10, 20, 30, micro)


def test_timestamps_are_cut_to_the_target_precision() -> None:
    assert c(_at(123456), "TIMESTAMP(3) WITHOUT TIME ZONE") == "2024-03-01T10:20:30.123000"
    assert c(_at(123456), "TIMESTAMP(3)") == c(_at(123000), "TIMESTAMP(3)")
    assert c(_at(123456), "TIMESTAMP(3)") != c(_at(124000), "TIMESTAMP(3)")
    assert c(_at(123456), "TIMESTAMP WITHOUT TIME ZONE") == "2024-03-01T10:20:30.123456"
    assert c(_at(123456), "TIMESTAMP(6)") == c(_at(123456), "TIMESTAMP")


@pytest.mark.parametrize(("micro", "digits", "expected"), [
    (123499, 3, 123000), (123501, 3, 124000),  # nearest
    (123500, 3, 124000), (124500, 3, 125000),  # halves: away from 2000-01-01 (up after it)
    (499999, 0, 0), (500000, 0, 1_000_000), (999999, 5, 1_000_000),
    (5, 5, 10), (15, 5, 20), (25, 5, 30),
])
def test_timestamps_round_like_postgresql_after_2000(micro: int, digits: int,
                                                      expected: int) -> None:
    want = _at(0) + timedelta(microseconds=expected)
    assert c(_at(micro), f"TIMESTAMP({digits})") == want.isoformat(timespec="microseconds")


@pytest.mark.parametrize(("micro", "digits", "expected"), [
    (123500, 3, 123000), (124500, 3, 124000),  # halves: toward 1999 is away from the epoch
    (123501, 3, 124000), (500000, 0, 0), (500001, 0, 1_000_000),
])
def test_timestamps_round_like_postgresql_before_2000(micro: int, digits: int,
                                                       expected: int) -> None:
    """PostgreSQL rounds the distance from its epoch 2000-01-01 half away from zero, so a
    half before 2000 goes down (checked against the server in test_validate.py)."""
    want = _at(0, 1987) + timedelta(microseconds=expected)
    assert c(_at(micro, 1987), f"TIMESTAMP({digits})") == \
        want.isoformat(timespec="microseconds")


def test_rounding_carries_into_the_next_second_day_and_year() -> None:
    last = datetime(2023, 12, 31, 23, 59, 59, 999_600)
    assert c(last, "TIMESTAMP(3)") == "2024-01-01T00:00:00.000000"
    assert c(last, "TIMESTAMP(0)") == "2024-01-01T00:00:00.000000"


def test_the_very_last_moment_does_not_overflow() -> None:
    assert c(datetime.max, "TIMESTAMP(0)") == "9999-12-31T23:59:59.999999"


def test_mariadb_datetime_precision() -> None:
    assert rule_for("x", "DATETIME", False).fraction_digits == 0
    assert rule_for("x", "DATETIME(3)", False).fraction_digits == 3
    assert c(_at(123456), "DATETIME(3)") == "2024-03-01T10:20:30.123000"


def test_zoned_timestamps_compare_in_utc() -> None:
    paris = timezone(timedelta(hours=1))
    local = datetime(2024, 3, 1, 11, 20, 30, tzinfo=paris)
    utc = datetime(2024, 3, 1, 10, 20, 30, tzinfo=UTC)
    assert c(local, "TIMESTAMP WITH TIME ZONE") == c(utc, "TIMESTAMP WITH TIME ZONE")
    assert c(local, "TIMESTAMPTZ") == "2024-03-01T10:20:30.000000"
    assert c(utc, "TIMESTAMP(0) WITH TIME ZONE") == c(datetime(2024, 3, 1, 10, 20, 30),
                                                      "TIMESTAMP(0)")


def test_iso_text_timestamps_equal_typed_ones() -> None:
    """SQLite keeps timestamps as text; the target column's type says what they are."""
    typed = datetime(2024, 3, 1, 10, 20, 30, 123456)
    for text in ("2024-03-01 10:20:30.123456", "2024-03-01T10:20:30.123456",
                 " 2024-03-01 10:20:30.123456 "):
        assert c(text, "TIMESTAMP WITHOUT TIME ZONE") == c(typed, "TIMESTAMP WITHOUT TIME ZONE")
    assert c("2024-03-01 10:20:30.123456", "TIMESTAMP(3)") == c(typed, "TIMESTAMP(3)")
    assert c("2024-03-01 10:20:30", "TIMESTAMP") == c(datetime(2024, 3, 1, 10, 20, 30),
                                                      "TIMESTAMP")
    assert c("2024-03-01", "TIMESTAMP") == c(datetime(2024, 3, 1), "TIMESTAMP")


def test_text_that_is_no_timestamp_stays_text() -> None:
    assert c("not a moment", "TIMESTAMP") == "not a moment"
    assert c("2024-13-45", "DATE") == "2024-13-45"


# ---- dates, times, bytes ---------------------------------------------------------------------


def test_iso_text_dates_equal_typed_dates() -> None:
    assert c("2024-02-29", "DATE") == c(date(2024, 2, 29), "DATE") == "2024-02-29"
    assert c("2024-02-29", "DATE") != c(date(2024, 3, 1), "DATE")


def test_times_and_bytes() -> None:
    assert c(time(10, 20, 30)) == "10:20:30"
    assert c(b"\x00\x01\xff") == c(bytearray(b"\x00\x01\xff")) == c(memoryview(b"\x00\x01\xff"))
    assert c(b"\x00\x01\xff") == "0001ff"
    assert c(b"") == ""


# ---- CHAR padding ----------------------------------------------------------------------------


@pytest.mark.parametrize("spelled", ["CHAR(5)", "char(5)", "CHARACTER(5)", "NCHAR(5)",
                                     "BPCHAR", " CHAR(5)"])
def test_char_padding_is_not_data(spelled: str) -> None:
    assert rule_for("x", spelled, False).padded
    assert c("ab   ", spelled) == c("ab", spelled) == "ab"
    assert c("  ab", spelled) == "  ab"  # leading blanks are data


@pytest.mark.parametrize("spelled", ["VARCHAR(5)", "CHARACTER VARYING(5)", "NVARCHAR(5)",
                                     "TEXT", ""])
def test_trailing_blanks_of_varying_text_are_data(spelled: str) -> None:
    assert not rule_for("x", spelled, False).padded
    assert c("ab ", spelled) != c("ab", spelled)


# ---- '' and NULL -----------------------------------------------------------------------------


def test_empty_string_is_not_null_by_default() -> None:
    assert c("") == ""
    assert c(None) is None
    assert c("") != c(None)


def test_empty_string_is_null_when_the_transform_says_so() -> None:
    assert c("", "VARCHAR(10)", empty_is_null=True) is None
    assert c("", "CHAR(3)", empty_is_null=True) is None
    assert c("   ", "CHAR(3)", empty_is_null=True) is None  # padding of nothing
    assert c(" ", "VARCHAR(3)", empty_is_null=True) == " "  # a blank is not empty


# ---- booleans --------------------------------------------------------------------------------


@pytest.mark.parametrize("spelled", ["BOOLEAN", "boolean", "BOOL"])
def test_booleans_kept_as_0_or_1_equal_true_and_false(spelled: str) -> None:
    assert c(1, spelled) == c(True, spelled) is True
    assert c(0, spelled) == c(False, spelled) is False
    assert c(Decimal(1), spelled) is True
    assert c(2, spelled) == "2"  # not a boolean: left as a number, so it will differ


def test_without_a_boolean_column_numbers_stay_numbers() -> None:
    assert c(1, "INTEGER") == "1"
    assert c(True, "INTEGER") is True
    assert c(1, "INTEGER") != c(True, "INTEGER")


# ---- rows, hashes, sampling -----------------------------------------------------------------


def test_rows_hash_by_value_and_position() -> None:
    rules = [rule_for("id", "INTEGER", False), rule_for("n", "NUMERIC(10,2)", False),
             rule_for("t", "TIMESTAMP(3)", False), rule_for("s", "CHAR(4)", False)]
    a = canonical_row([1, Decimal("1.50"), "2024-03-01 10:20:30.1234", "ab  "], rules)
    b = canonical_row([Decimal("1"), 1.5, datetime(2024, 3, 1, 10, 20, 30, 123000), "ab"],
                      rules)
    assert a == b
    assert row_hash(a) == row_hash(b)
    assert row_hash(a) != row_hash([a[1], a[0], a[2], a[3]])  # position matters
    assert row_hash(["1", None]) != row_hash(["1", ""])
    assert 0 <= row_hash(a) < 2**64


def test_canonical_row_needs_one_rule_per_value() -> None:
    with pytest.raises(ValueError, match=r"shorter|longer"):
        canonical_row([1, 2], [PLAIN])


def test_key_text_is_stable_json() -> None:
    assert key_text(["1", "a"]) == '["1","a"]'
    assert key_text([None]) == "[null]"


def test_sampling_is_deterministic_and_depends_on_the_seed() -> None:
    keys = [[str(i)] for i in range(20_000)]
    first = [k for k in keys if sampled(k, 0.05, seed=7)]
    again = [k for k in keys if sampled(k, 0.05, seed=7)]
    other = [k for k in keys if sampled(k, 0.05, seed=8)]
    assert first == again
    assert first != other
    assert 800 <= len(first) <= 1200 and 800 <= len(other) <= 1200  # about 1,000
    overlap = len({tuple(k) for k in first} & {tuple(k) for k in other})
    assert overlap < 150  # independent choices overlap in about 5% of 1,000


def test_sampling_fractions_nest_and_bound() -> None:
    keys = [[str(i)] for i in range(5_000)]
    small = {tuple(k) for k in keys if sampled(k, 0.02, seed=1)}
    large = {tuple(k) for k in keys if sampled(k, 0.2, seed=1)}
    assert small < large  # a larger fraction of the same seed adds keys, never swaps them
    assert all(sampled(k, 1.0, seed=1) for k in keys)
    assert not any(sampled(k, 0.0, seed=1) for k in keys)


def test_sampling_sees_canonical_keys_so_both_sides_agree() -> None:
    """The same key read from different databases (int, Decimal, float, text date) is the
    same canonical key, so both sides choose it or neither does."""
    int_rule, date_rule = rule_for("id", "BIGINT", False), rule_for("d", "DATE", False)
    for i in range(2_000):
        day = date(2020, 1, 1) + timedelta(days=i)
        source = canonical_row([i, day.isoformat()], [int_rule, date_rule])
        target = canonical_row([Decimal(i), day], [int_rule, date_rule])
        assert source == target
        assert sampled(source, 0.1, 3) == sampled(target, 0.1, 3)


def test_decimals_keep_every_digit() -> None:
    """No rounding to a 28-digit context: NUMBER(38,10) values differing in the last digit
    differ."""
    a, b = Decimal("1234567890123456789012345678.91"), Decimal("1234567890123456789012345678.92")
    assert c(a) == "1234567890123456789012345678.91"
    assert c(a) != c(b)
    assert c(Decimal("1.5E-7")) == "0.00000015"
    assert c(Decimal("12345678901234567890123456789012345678")) == \
        "12345678901234567890123456789012345678"


# ---- the fast converters give canonical()'s answers ----------------------------------------

_RULES = st.builds(
    ColumnRule, name=st.just("x"), fraction_digits=st.integers(0, 6), padded=st.booleans(),
    empty_is_null=st.booleans(), kind=st.sampled_from(["", "boolean", "date", "timestamp"]))
_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**20), 10**20), st.sampled_from([0, 1]),
    st.floats(allow_nan=True, allow_infinity=True), st.decimals(allow_nan=False),
    st.decimals(places=3, allow_nan=False), st.sampled_from([Decimal(0), Decimal(1)]),
    st.text(max_size=6), st.sampled_from(["", " ", "  ", "x  ", "2024-02-29",
                                          "2024-02-29 10:20:30.123456", "1999-12-31 23:59:59.5"]),
    st.datetimes(), st.datetimes(timezones=st.just(UTC)), st.dates(), st.times(),
    st.binary(max_size=4), st.builds(bytearray, st.binary(max_size=4)))


@settings(max_examples=300, deadline=None)
@given(rule=_RULES, values=st.lists(_VALUES, max_size=6))
def test_converter_gives_the_answers_of_canonical(rule: ColumnRule, values: list[object]) -> None:
    convert = converter(rule)
    for value in values:  # one converter for many values: its per-type cache is exercised
        assert convert(value) == canonical(value, rule)
    rows = row_converter([rule] * len(values) + [PLAIN])
    for _ in range(2):  # the second time from the per-column caches
        assert rows([*values, "a"]) == canonical_row([*values, "a"], [rule] * len(values) +
                                                     [PLAIN])
    rows = row_converter([rule, PLAIN])
    with pytest.raises(ValueError, match="a row of 1 values for 2 column rules"):
        rows(["only one"])


def test_json_documents_compare_by_content_whether_text_or_parsed() -> None:
    rule = rule_for("doc", "JSONB", False)
    text = '{"b": [1, 2.5, "x"],  "a": {"z": null}}'
    parsed = {"a": {"z": None}, "b": [1, 2.5, "x"]}
    assert canonical(text, rule) == canonical(parsed, rule) == \
        '{"a":{"z":null},"b":[1,2.5,"x"]}'
    assert row_converter([rule])([text]) == row_converter([rule])([parsed])
    assert canonical("not json", rule) == '"not json"'  # a JSON string, decoded already


def test_array_values_are_canonical_element_by_element() -> None:
    rule = rule_for("tags", "TEXT[]", False)
    assert canonical(["a", "b"], rule) == ["a", "b"]
    assert canonical([Decimal("1.50"), 2], rule_for("n", "NUMERIC[]", False)) == ["1.5", "2"]
    assert row_converter([rule])([("a", "b")]) == [["a", "b"]]
