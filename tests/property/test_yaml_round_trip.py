"""What pt writes as YAML (scaffolded transform files, pipelines) reads back exactly: a name
holding NEL (U+0085) once came back as a space, so the copy looked for a column that does not
exist."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pulsaride.engine.yamlsafe import dump_yaml, load_yaml

from .strategies import examples

# Any text: every code point but surrogates (which UTF-8 cannot hold).
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
DOCUMENTS: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12)


@settings(max_examples=examples(300))
@given(DOCUMENTS)
def test_what_pt_writes_reads_back_equal(document: Any) -> None:
    assert load_yaml(dump_yaml(document).encode(), "t.yaml") == document


def test_line_breaks_yaml_folds_are_written_escaped() -> None:
    names = ["\x85", "a\x85b", "\u2028", "\u2029 x", "tab\tcr\r"]
    text = dump_yaml({"fields": names})
    assert "\x85" not in text
    assert load_yaml(text.encode(), "t.yaml") == {"fields": names}
