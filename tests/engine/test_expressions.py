"""Field expressions of transform files (pure): the documented functions, arithmetic with NULL
propagation, CASE WHEN, and the parser that never evaluates anything it did not define."""

from __future__ import annotations

import builtins
import contextlib
import os
import re
import textwrap
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pulsaride.migration.expressions import FUNCTIONS, RowError, compile_expression
from pulsaride.migration.grammar import (
    Binary,
    Call,
    Case,
    Column,
    GrammarError,
    InList,
    IsNull,
    Literal,
    Param,
    Unary,
    parse,
)
from pulsaride.migration.transform import TransformError, load_transform
from tests.conftest import run_pt


def ev(expression: str, *values: Any) -> Any:
    """Evaluate `expression` with `values` as ?1, ?2, ..."""
    return compile_expression(expression, max(len(values), 1))(list(values) or [None])


# ---- the documented functions ------------------------------------------------------------------


def test_documented_functions_all_exist() -> None:
    assert set(FUNCTIONS) == {"upper", "lower", "trim", "normalize_text", "coalesce", "nullif",
                              "to_int", "to_long", "to_date", "to_timestamp", "to_boolean",
                              "concat",
                              # the conversions pt scaffold writes (values of MySQL drivers)
                              "zero_date_null", "as_utc", "set_array", "mysql_wkb",
                              "mysql_ewkb", "bits_int", "mysql_time", "json_text"}


@pytest.mark.parametrize(("expression", "values", "expected"), [
    ("upper(?)", ["Straße é"], "STRASSE É"),
    ("lower(?)", ["MiXeD ÉTÉ"], "mixed été"),
    ("trim(?)", ["  \t padded \n "], "padded"),
    ("normalize_text(?)", ["  Ada.LOVELACE@Example.COM "], "ada.lovelace@example.com"),
    ("upper(?)", [None], None),
    ("lower(?)", [None], None),
    ("trim(?)", [None], None),
    ("normalize_text(?)", [None], None),
    ("upper(?)", [42], "42"),  # not text: its text form
    ("concat(?1, '-', ?2)", ["a", "b"], "a-b"),
    ("concat(?1, ?2, ?3)", ["a", None, 3], "a3"),  # NULL is the empty string in concat
    ("concat(?)", [None], ""),
])
def test_text_functions(expression: str, values: list[Any], expected: Any) -> None:
    assert ev(expression, *values) == expected


@pytest.mark.parametrize(("values", "expected"), [
    (["first", "second"], "first"),
    ([None, "second"], "second"),
    (["", "second"], "second"),  # blank is skipped, not only NULL
    (["   ", "\t", "third"], "third"),
    ([None, None], None),
    (["", "  "], None),
    ([0, "x"], 0),  # zero is a value, not blank
    ([False, "x"], False),
])
def test_coalesce_first_value_neither_null_nor_blank(values: list[Any], expected: Any) -> None:
    params = ", ".join(f"?{i + 1}" for i in range(len(values)))
    assert ev(f"coalesce({params})", *values) == expected


def test_coalesce_with_literal_default() -> None:
    assert ev("coalesce(?, 'n/a')", "") == "n/a"
    assert ev("coalesce(?, 0)", None) == 0


@pytest.mark.parametrize(("values", "expected"), [
    (["", ""], None), (["x", ""], "x"), ([None, ""], None), ([5, 5], None), ([5, 6], 5)])
def test_nullif(values: list[Any], expected: Any) -> None:
    assert ev("nullif(?1, ?2)", *values) == expected


@pytest.mark.parametrize("function", ["to_int", "to_long"])
@pytest.mark.parametrize(("value", "expected"), [
    ("42", 42), (" -7 ", -7), ("12.0", 12), (Decimal("3.000"), 3), (9.0, 9), (True, 1),
    (None, None), ("", None), ("  ", None), ("9223372036854775807", 9223372036854775807),
])
def test_to_int_and_to_long(function: str, value: Any, expected: Any) -> None:
    result = ev(f"{function}(?)", value)
    assert result == expected
    assert result is None or type(result) is int


@pytest.mark.parametrize("function", ["to_int", "to_long"])
@pytest.mark.parametrize("value", ["1.5", "abc", "12abc", Decimal("0.1"), [1]])
def test_to_int_rejects_what_is_not_a_whole_number(function: str, value: Any) -> None:
    with pytest.raises(RowError):
        ev(f"{function}(?)", value)


@pytest.mark.parametrize(("value", "expected"), [
    ("2024-02-29", date(2024, 2, 29)),
    (" 2024-02-29 ", date(2024, 2, 29)),
    ("2024-02-29 13:45:00", date(2024, 2, 29)),  # the date part of an ISO timestamp
    ("2024-02-29T13:45:00+02:00", date(2024, 2, 29)),
    (date(2020, 1, 2), date(2020, 1, 2)),
    (datetime(2020, 1, 2, 23, 59), date(2020, 1, 2)),
    (None, None), ("", None),
])
def test_to_date(value: Any, expected: Any) -> None:
    result = ev("to_date(?)", value)
    assert result == expected
    assert result is None or type(result) is date


@pytest.mark.parametrize("value", ["2023-02-29", "29/02/2024", "yesterday", "2024-13-01"])
def test_to_date_rejects_non_iso_and_impossible_dates(value: str) -> None:
    with pytest.raises(RowError, match="ISO-8601 date"):
        ev("to_date(?)", value)


@pytest.mark.parametrize(("value", "expected"), [
    ("2024-02-29T13:45:07", datetime(2024, 2, 29, 13, 45, 7)),
    ("2024-02-29 13:45:07.123456", datetime(2024, 2, 29, 13, 45, 7, 123456)),
    ("2024-02-29T13:45:07+02:00",
     datetime(2024, 2, 29, 13, 45, 7, tzinfo=timezone(timedelta(hours=2)))),
    ("2024-02-29T13:45:07Z", datetime(2024, 2, 29, 13, 45, 7, tzinfo=UTC)),
    ("2024-02-29", datetime(2024, 2, 29)),
    (date(2024, 2, 29), datetime(2024, 2, 29)),
    (datetime(2024, 1, 1, 1, 2, 3), datetime(2024, 1, 1, 1, 2, 3)),
    (None, None), (" ", None),
])
def test_to_timestamp_iso_8601(value: Any, expected: Any) -> None:
    result = ev("to_timestamp(?)", value)
    assert result == expected
    if expected is not None:
        assert result.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize("value", ["2024-02-29 25:00", "02/29/2024 10:00", "now"])
def test_to_timestamp_rejects_what_is_not_iso(value: str) -> None:
    with pytest.raises(RowError, match="ISO-8601 timestamp"):
        ev("to_timestamp(?)", value)


@pytest.mark.parametrize(("value", "expected"), [
    ("y", True), ("Y", True), ("yes", True), ("1", True), ("true", True), ("TRUE", True),
    (" t ", True), (1, True), (True, True),
    ("n", False), ("N", False), ("no", False), ("0", False), ("false", False), ("F", False),
    (0, False), (False, False),
    (None, None), ("", None),
])
def test_to_boolean(value: Any, expected: Any) -> None:
    assert ev("to_boolean(?)", value) is expected


@pytest.mark.parametrize("value", ["maybe", "2", "oui", -1])
def test_to_boolean_rejects_other_values(value: Any) -> None:
    with pytest.raises(RowError, match="not a boolean"):
        ev("to_boolean(?)", value)


def test_functions_and_keywords_are_case_insensitive() -> None:
    assert ev("UPPER(?)", "a") == "A"
    assert ev("Case When ? Is Null Then 'none' Else Trim(?) End", None) == "none"


def test_nested_functions() -> None:
    assert ev("upper(coalesce(trim(?1), ?2))", "   ", "fallback") == "FALLBACK"
    assert ev("to_int(nullif(trim(?), ''))", "  ") is None


# ---- arithmetic and NULL propagation -------------------------------------------------------------


@pytest.mark.parametrize(("expression", "values", "expected"), [
    ("?1 + ?2", [2, 3], 5),
    ("?1 - ?2", [2, 3], -1),
    ("?1 * ?2", [Decimal("2.50"), 3], Decimal("7.50")),
    ("?1 * ?2", ["4", "2.5"], Decimal("10.0")),  # numeric text is a number
    ("?1 / ?2", [Decimal("10"), Decimal("4")], Decimal("2.5")),
    ("-?", [5], -5),
    ("- - ?", [5], 5),
    ("1 + 2 * 3", [None], 7),  # precedence
    ("(1 + 2) * 3", [None], 9),
    ("10 - 2 - 3", [None], 5),  # left associative
    ("?1 * 1.5", [2], Decimal("3.0")),
    ("?1 + ?2", [Decimal("0.1"), 0.2], Decimal("0.3")),  # float joins Decimal exactly
    ("?1 + ?2", [True, 1], 2),
])
def test_arithmetic(expression: str, values: list[Any], expected: Any) -> None:
    assert ev(expression, *values) == expected


@pytest.mark.parametrize("expression", ["?1 + ?2", "?1 - ?2", "?1 * ?2", "?1 / ?2", "-?1 + ?2",
                                        "(?1 + 1) * (?2 - 1)", "to_int(?1) + ?2"])
@pytest.mark.parametrize("values", [[None, 1], [1, None], [None, None]])
def test_null_propagates_through_arithmetic(expression: str, values: list[Any]) -> None:
    assert ev(expression, *values) is None


@pytest.mark.parametrize(("expression", "values", "message"), [
    ("?1 / ?2", [1, 0], "ZeroDivisionError"),
    ("?1 + 1", ["ten"], "not a number"),
    ("?1 * 2", [[1]], "not a number"),
])
def test_arithmetic_errors_are_row_errors(expression: str, values: list[Any],
                                          message: str) -> None:
    with pytest.raises(RowError, match=message):
        ev(expression, *values)


@pytest.mark.parametrize(("expression", "values", "expected"), [
    ("?1 = ?2", [1, 1], True), ("?1 != ?2", [1, 1], False), ("?1 <> ?2", [1, 2], True),
    ("?1 < ?2", [1, 2], True), ("?1 <= ?2", [2, 2], True), ("?1 > ?2", [1, 2], False),
    ("?1 >= ?2", [3, 2], True),
    ("?1 = ?2", [None, None], False),  # NULL is not equal to anything, not even NULL
    ("?1 != ?2", [None, 1], False),
    ("?1 IS NULL", [None, 1], True), ("?1 IS NOT NULL", [None, 1], False),
    ("?1 IN (1, 2, 3)", [2, 0], True), ("?1 NOT IN (1, 2, 3)", [2, 0], False),
    ("?1 IN (1, 2)", [None, 0], False), ("?1 NOT IN (1, 2)", [None, 0], False),
    ("?1 > 0 AND ?2 > 0", [1, 1], True), ("?1 > 0 AND ?2 > 0", [1, -1], False),
    ("?1 > 0 OR ?2 > 0", [-1, 1], True), ("NOT ?1 > 0", [-1, 0], True),
    ("?1 = 1.0", [1, 0], True), ("?1 = ?2", [Decimal("2.50"), 2.5], True),
])
def test_comparisons_and_logic(expression: str, values: list[Any], expected: bool) -> None:
    assert ev(expression, *values) is expected


# ---- CASE WHEN ---------------------------------------------------------------------------------

CASE = "CASE WHEN ? > 100 THEN 'big' WHEN ? > 10 THEN 'mid' ELSE 'small' END"


@pytest.mark.parametrize(("value", "expected"), [
    (500, "big"), (101, "big"), (100, "mid"), (11, "mid"), (10, "small"), (-3, "small"),
    (None, "small"),  # a comparison with NULL is not true: falls to ELSE
])
def test_case_when_picks_the_first_true_branch(value: Any, expected: str) -> None:
    assert ev(CASE, value) == expected


def test_case_without_else_is_null() -> None:
    assert ev("CASE WHEN ? = 'A' THEN 1 END", "B") is None
    assert ev("CASE WHEN ? = 'A' THEN 1 END", "A") == 1


def test_case_values_are_expressions() -> None:
    expression = "CASE WHEN ?1 IS NULL THEN upper(?2) ELSE ?1 * 2 END"
    assert ev(expression, None, "x") == "X"
    assert ev(expression, 4, "x") == 8


def test_case_only_evaluates_the_chosen_branch() -> None:
    # The ELSE would divide by zero; it is not evaluated when a WHEN matches.
    assert ev("CASE WHEN ?1 = 0 THEN 0 ELSE 1 / ?1 END", 0) == 0


def test_string_literals_escape_quotes() -> None:
    assert ev("concat(?, '''s')", "Ada") == "Ada's"
    assert ev("'a''b'", None) == "a'b"


def test_literals() -> None:
    assert ev("NULL", None) is None
    assert ev("TRUE", None) is True
    assert ev("false", None) is False
    assert ev("0.50", None) == Decimal("0.50")
    assert ev("42", None) == 42


# ---- bad expressions: clear errors -------------------------------------------------------------


@pytest.mark.parametrize(("expression", "params", "message"), [
    ("upper(", 1, "expected a value, found the end"),
    ("upper(?", 1, "expected ')'"),
    ("? +", 1, "expected a value"),
    ("? ? ?", 1, "unexpected text after the expression"),
    ("frobnicate(?)", 1, "unknown function frobnicate()"),
    ("nullif(?)", 1, "nullif() takes 2 argument(s), not 1"),
    ("upper(?1, ?1)", 1, "upper() takes 1 argument(s), not 2"),
    ("?2", 1, "?2 refers to source value 2, but the field has 1 source value"),
    ("?0", 1, "?0 refers to source value 0"),
    ("NAME", 1, "refers to its source values with ? or ?N, not by name (NAME)"),
    ("c.NAME", 1, "not by name (c.NAME)"),
    ("CASE ? END", 1, "expected WHEN after CASE"),
    ("CASE WHEN ? THEN 1", 1, "expected 'END'"),
    ("? NOT 3", 1, "expected IN after NOT"),
    ("'unterminated", 1, "unexpected \"'\" at position 1"),
    ("? ; DROP TABLE x", 1, "unexpected ';' at position 3"),
    ("", 1, "expected a value, found the end"),
])
def test_bad_expressions_are_grammar_errors_that_say_where(expression: str, params: int,
                                                           message: str) -> None:
    with pytest.raises(GrammarError) as raised:
        compile_expression(expression, params)
    assert message in str(raised.value)


HOSTILE = [
    "__import__('os').system('id')",
    "eval('1')",
    "exec('import os')",
    "open('/etc/passwd').read()",
    "?.__class__",
    "().__class__.__bases__[0].__subclasses__()",
    "lambda: 1",
    "[x for x in ()]",
    "{'a': 1}",
    "f'{1}'",
    "`id`",
    "$(id)",
    "? or __import__('os')",
    "upper(?).__len__()",
    "globals()",
    "getattr(?, 'x')",
]


@pytest.mark.parametrize("expression", HOSTILE)
def test_hostile_expressions_are_parse_errors_and_never_run(
        expression: str, monkeypatch: pytest.MonkeyPatch) -> None:
    called: list[str] = []
    for name in ("__import__", "eval", "exec", "open", "compile", "getattr"):
        real = getattr(builtins, name)

        def spy(*args: Any, _name: str = name, _real: Any = real, **kwargs: Any) -> Any:
            called.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(builtins, name, spy)
    monkeypatch.setattr(os, "system", lambda *_a: called.append("system") or 0)
    try:
        with pytest.raises(GrammarError):
            compile_expression(expression, 1)
    finally:
        monkeypatch.undo()
    # Only the parser's own imports may have run; nothing named in the expression did.
    assert "system" not in called
    assert "eval" not in called
    assert "exec" not in called


def test_no_eval_anywhere_in_the_expression_code() -> None:
    root = Path(__file__).resolve().parents[2] / "migration"
    forbidden = re.compile(r"(?<![\w.])(eval|exec|compile|__import__)\(")
    for name in ("grammar.py", "expressions.py", "filters.py", "transform.py"):
        assert forbidden.search((root / name).read_text()) is None, name


def test_too_long_and_too_deep_expressions_are_refused() -> None:
    with pytest.raises(GrammarError, match="longer than"):
        parse("1 + " * 5000 + "1")
    with pytest.raises(GrammarError, match="nested too deeply"):
        parse("(" * 500 + "1" + ")" * 500)
    with pytest.raises(GrammarError, match="nested too deeply"):
        parse("upper(" * 500 + "?" + ")" * 500)
    for prefix in ("-", "NOT ", "CASE WHEN 1 THEN "):
        with pytest.raises(GrammarError, match="nested too deeply"):
            parse(prefix * 300 + "1" + " END" * (300 if "CASE" in prefix else 0))
    # Long operator chains parse in a loop but make deep trees: refused too, never a
    # RecursionError in compiling them (or in SQLAlchemy, for filters).
    for operator in (" + ", " - ", " * ", " / ", " AND ", " OR "):
        with pytest.raises(GrammarError, match="nested too deeply"):
            compile_expression(operator.join(["?"] * 1000), 1)
    # What people write stays well inside the limits.
    assert ev(" + ".join(["?"] * 60), 1) == 60
    assert ev("upper(" * 20 + "?" + ")" * 20, "a") == "A"


# ---- the AST -----------------------------------------------------------------------------------


def test_parse_builds_the_documented_tree() -> None:
    assert parse("a.B = 'x' AND NOT c IS NULL OR d IN (1, 2)") == Binary(
        "OR",
        Binary("AND", Binary("=", Column("a", "B"), Literal("x")),
               Unary("NOT", IsNull(Column(None, "c"), negated=False))),
        InList(Column(None, "d"), (Literal(1), Literal(2)), negated=False))
    assert parse("coalesce(?1, ?2)") == Call("coalesce", (Param(1), Param(2)))
    assert parse("CASE WHEN ? THEN 1 END") == Case(((Param(1), Literal(1)),), None)
    assert parse('"Mixed Case" <> 1') == Binary("!=", Column(None, "Mixed Case"), Literal(1))


# ---- property: the parser only ever raises GrammarError ----------------------------------------

_PIECES = st.sampled_from([
    "(", ")", ",", ".", "?", "?2", "'", "''", "'x'", "1", "1.5", ".5", "-", "+", "*", "/", "=",
    "!=", "<>", "<", "<=", ">", ">=", " ", "AND", "OR", "NOT", "IS", "NULL", "IN", "TRUE",
    "CASE", "WHEN", "THEN", "ELSE", "END", "upper", "coalesce", "a", "b.c", '"q"', '"',
    "__import__", "$", "#", ";", "\\", "\n", "é", "\x00",
])


# Deep or long input: a piece repeated up to thousands of times, between two short texts.
_REPEATED = st.builds(lambda head, piece, times, tail: head + piece * times + tail,
                      st.lists(_PIECES, max_size=3).map(" ".join), _PIECES,
                      st.integers(min_value=0, max_value=3000),
                      st.lists(_PIECES, max_size=3).map(" ".join))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=60), st.lists(_PIECES, max_size=25).map(" ".join),
                 st.lists(_PIECES, max_size=25).map("".join), _REPEATED))
def test_parse_of_any_text_returns_a_tree_or_raises_grammar_error(text: str) -> None:
    with contextlib.suppress(GrammarError):
        parse(text)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.lists(_PIECES, max_size=20).map(" ".join), _REPEATED),
       st.integers(min_value=0, max_value=3))
def test_compile_expression_only_raises_grammar_error(text: str, params: int) -> None:
    with contextlib.suppress(GrammarError):
        compile_expression(text, params)


# ---- through the transform file and the CLI ----------------------------------------------------


def _transform_with(tmp_path: Path, expression: str) -> Path:
    path = tmp_path / "t.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: people
        sources: [{{name: people, table: PEOPLE, alias: p}}]
        fields:
          - {{name: id, source: p.ID}}
          - {{name: full_name, source: [p.FIRST, p.LAST], expression: "{expression}"}}
        """))
    return path


def test_a_bad_expression_names_the_field_in_load_transform(tmp_path: Path) -> None:
    path = _transform_with(tmp_path, "concat(?1, ' ', ?3)")
    with pytest.raises(TransformError) as raised:
        load_transform(path)
    text = str(raised.value)
    assert "fields[1] 'full_name'" in text
    assert "concat(?1, ' ', ?3)" in text
    assert "?3 refers to source value 3, but the field has 2 source values" in text
    assert isinstance(raised.value, GrammarError | TransformError)


def test_a_hostile_expression_is_refused_by_pt_migrate_run_with_exit_2(tmp_path: Path) -> None:
    path = _transform_with(tmp_path, "__import__('os').system('touch pwned')")
    result = run_pt("migrate", "run", str(path), "--source-url", "sqlite:///nowhere.db",
                    "--target-url", "sqlite:///nowhere-either.db", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "fields[1] 'full_name': bad expression" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "pwned").exists()
    assert not (tmp_path / "nowhere.db").exists()  # refused before connecting anywhere


# ---- conversions written by pt scaffold ----------------------------------------------------


def test_zero_dates_become_null_and_are_counted() -> None:
    from pulsaride.migration.expressions import CONVERSIONS  # noqa: PLC0415

    before = CONVERSIONS["zero_date_null"]
    assert ev("zero_date_null(?)", "0000-00-00") is None
    assert ev("zero_date_null(?)", "0000-00-00 00:00:00") is None
    assert ev("zero_date_null(?)", "2024-02-30") is None  # ALLOW_INVALID_DATES
    assert ev("zero_date_null(?)", date(2024, 2, 29)) == date(2024, 2, 29)
    assert ev("zero_date_null(?)", "2024-02-29") == date(2024, 2, 29)
    assert ev("zero_date_null(?)", "2024-02-29 10:11:12") == datetime(2024, 2, 29, 10, 11, 12)
    assert ev("zero_date_null(?)", None) is None
    assert CONVERSIONS["zero_date_null"] - before == 3


def test_as_utc_gives_naive_moments_their_zone() -> None:
    assert ev("as_utc(?)", datetime(2024, 1, 1, 7)) == datetime(2024, 1, 1, 7, tzinfo=UTC)
    moment = datetime(2024, 1, 1, 7, tzinfo=timezone(timedelta(hours=2)))
    assert ev("as_utc(?)", moment) is moment
    assert ev("as_utc(zero_date_null(?))", "0000-00-00 00:00:00") is None


@pytest.mark.parametrize(("value", "members"), [
    ("a,b", ["a", "b"]), ("", []), ("x", ["x"]), (None, None), ({"b", "a"}, ["a", "b"]),
    (b"p q,r", ["p q", "r"])])
def test_set_array(value: Any, members: list[str] | None) -> None:
    assert ev("set_array(?)", value) == members


def test_mysql_geometry_to_wkb_and_ewkb() -> None:
    # POINT(1 2) with SRID 4326 as MariaDB stores it: SRID (LE) then WKB.
    wkb = bytes.fromhex("0101000000000000000000f03f0000000000000040")
    stored = (4326).to_bytes(4, "little") + wkb
    assert ev("mysql_wkb(?)", stored) == wkb
    assert ev("mysql_ewkb(?)", stored) == \
        "0101000020e6100000000000000000f03f0000000000000040"
    assert ev("mysql_wkb(?)", None) is None
    with pytest.raises(RowError):
        ev("mysql_wkb(?)", b"\x00")


def test_bits_time_and_json_text() -> None:
    assert ev("bits_int(?)", b"\x01") == 1
    assert ev("bits_int(?)", b"\x01\x00") == 256
    assert ev("mysql_time(?)", timedelta(hours=13, minutes=5, seconds=1)).isoformat() == \
        "13:05:01"
    with pytest.raises(RowError, match="not a time of day"):
        ev("mysql_time(?)", timedelta(hours=30))
    assert ev("json_text(?)", {"a": [1, None]}) == '{"a":[1,null]}'
    assert ev("json_text(?)", '{"a":1}') == '{"a":1}'
