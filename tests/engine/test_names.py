"""How source names become target names (migration/names.py): the rule, the 63-byte cut on a
character boundary, de-duplication, PostgreSQL quoting and literals for generated files, keys
of pt's own tables, file stems."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pulsaride.migration.names import (
    IdentifierRule,
    TableName,
    file_stem,
    literal,
    one_line,
    quote,
    target_names,
    truncate,
)

NAMES = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1,
                max_size=80)


def test_downcase_and_keep() -> None:
    assert target_names(["GenreId", "Name"], IdentifierRule.DOWNCASE)[0] == ["genreid", "name"]
    assert target_names(["GenreId", "Name"], IdentifierRule.KEEP)[0] == ["GenreId", "Name"]
    assert target_names(["ORDERS", "Genre"], IdentifierRule.FOLD_UPPER)[0] == ["orders", "Genre"]


def test_names_equal_after_folding_are_told_apart_and_reported() -> None:
    names, renamed = target_names(["Genre", "genre", "GENRE"], IdentifierRule.DOWNCASE)
    assert names == ["genre_2", "genre", "genre_3"]  # the name the rule keeps keeps it
    assert [(r.source, r.target) for r in renamed] == [("Genre", "genre_2"),
                                                       ("GENRE", "genre_3")]


def test_long_names_are_cut_at_63_bytes_on_a_character_boundary() -> None:
    assert truncate("é" * 40) == "é" * 31  # 62 bytes: the 32nd would need bytes 63 and 64
    names, renamed = target_names(["n" * 63 + "a", "n" * 63 + "b"], IdentifierRule.KEEP)
    assert names == ["n" * 63, "n" * 61 + "_2"]
    assert [r.why for r in renamed] == ["longer than PostgreSQL's 63 bytes",
                                        f"{'n' * 63!r} is taken by {'n' * 63 + 'a'!r}"]


@given(st.lists(NAMES, min_size=1, max_size=12), st.sampled_from(list(IdentifierRule)))
def test_target_names_are_unique_and_fit_postgresql(names: list[str],
                                                    rule: IdentifierRule) -> None:
    made, _ = target_names(names, rule)
    assert len(made) == len(names)
    assert len(set(made)) == len(made)
    assert all(0 < len(n.encode()) <= 63 for n in made if n)


def test_quote_and_literal_keep_percent_signs() -> None:
    # The default PostgreSQL dialect renders for the pyformat paramstyle and doubles '%':
    # a generated DDL file would create a column "value %%s".
    assert quote("value %s") == '"value %s"'
    assert quote("genre") == "genre"
    assert quote('a"b') == '"a""b"'
    assert literal("100% it's") == "'100% it''s'"
    assert TableName("x%y", "s p").quoted == '"s p"."x%y"'


@given(NAMES, st.none() | NAMES)
def test_table_keys_round_trip(name: str, schema: str | None) -> None:
    table = TableName(name, schema)
    assert TableName.from_key(table.key()) == table
    if schema is None and not name.startswith("["):
        assert table.key() == name  # as before for plain names


def test_file_stems_are_safe_and_distinct() -> None:
    stem = file_stem("v (id int); DROP TABLE victim")
    assert stem.startswith("v_id_int_DROP_TABLE_victim-")
    assert file_stem("genre") == "genre"
    assert file_stem("genre", taken=["genre"]) == "genre-2"
    assert file_stem("日本") != file_stem("中国")


def test_comment_lines_cannot_be_broken_out_of() -> None:
    assert one_line("a\nDROP TABLE x;\r\u2028b") == "a DROP TABLE x;  b"
