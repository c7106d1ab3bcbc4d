"""Loading pipeline files: strict YAML, schema, semantic checks, every problem at once."""

from __future__ import annotations

import pytest

from pulsaride.engine.errors import PipelineDefinitionError
from pulsaride.engine.loader import parse_pipeline
from pulsaride.engine.model import OnFailure, When
from pulsaride.engine.yamlsafe import MAX_FILE_BYTES, YamlError, load_yaml


def problems(text: str) -> list[str]:
    with pytest.raises(PipelineDefinitionError) as caught:
        parse_pipeline(text.encode(), "p.yml")
    return caught.value.problems


def test_defaults_and_options_are_normalised() -> None:
    pipeline = parse_pipeline(b"""
version: "1.0"
stages: [s]
variables: {A: 1, B: true}
jobs:
  j: {stage: s, command: "true", retry: {max: 2, delay: 1m, backoff: 2}, timeout: 500ms}
  k: {stage: s, command: "true", needs: [j], when: manual, on_failure: abort, retry: 1}
""", "p.yml")
    j, k = pipeline.jobs["j"], pipeline.jobs["k"]
    assert (j.when, j.on_failure, j.timeout) == (When.ON_SUCCESS, OnFailure.CONTINUE, 0.5)
    assert (j.retry.max, j.retry.delay, j.retry.delay_before(2)) == (2, 60.0, 120.0)
    assert (k.when, k.on_failure, k.retry.max, k.needs) == (When.MANUAL, OnFailure.ABORT, 1, ("j",))
    assert pipeline.variables == {"A": "1", "B": "true"}


def test_every_semantic_problem_is_reported_with_its_job() -> None:
    found = problems("""
stages: [a, b]
jobs:
  x: {stage: c, command: "true"}
  y: {stage: a, command: "true", needs: [y, nope, z]}
  z: {stage: b, command: "true"}
""")
    assert found == [
        "job 'x': unknown stage 'c' (stages: a, b)",
        "job 'y': needs itself",
        "job 'y': needs 'nope', which is not defined",
        "job 'y': needs 'z' of the later stage 'b' (stage 'a' runs first)",
    ]


def test_a_cycle_is_reported_with_its_path() -> None:
    found = problems("""
stages: [a]
jobs:
  p: {stage: a, command: "true", needs: [r]}
  q: {stage: a, command: "true", needs: [p]}
  r: {stage: a, command: "true", needs: [q]}
""")
    assert len(found) == 1
    assert found[0].startswith("needs form a cycle: ")
    path = found[0].removeprefix("needs form a cycle: ").split(" → ")
    assert path[0] == path[-1] and set(path) == {"p", "q", "r"}


def test_schema_problems_name_the_key_and_suggest() -> None:
    found = problems("""
stages: [a]
jobs:
  j: {stage: a, command: "true", neds: [x], retry: lots, when: sometimes}
""")
    assert any("unknown key 'neds' (did you mean 'needs'?)" in p for p in found)
    assert any(p.startswith("job 'j': retry: 'lots' is not valid") for p in found)
    assert any("'sometimes' is not one of 'on_success', 'always', 'manual'" in p for p in found)


def test_top_level_must_be_a_mapping() -> None:
    assert problems("- a\n- b\n") == [
        "the file must be a mapping with the keys 'stages' and 'jobs'"]


def test_missing_required_keys() -> None:
    found = problems("stages: [a]\njobs:\n  j: {stage: a}\n")
    assert found == ["job 'j': 'command' is required"]


def test_job_names_must_be_file_name_safe() -> None:
    found = problems('stages: [a]\njobs:\n  "../evil": {stage: a, command: "true"}\n')
    assert any("may use only letters, digits" in p for p in found)


@pytest.mark.parametrize(("text", "message"), [
    (b"a: 1\na: 2\n", "found duplicate key 'a'"),
    (b"a: &x [*x]\n", "refers to itself"),
    (b"!!python/object/apply:os.system [id]\n", "could not determine a constructor"),
    (b"a: [1, 2\n", "line 2"),
    (b"\xff\xfe", "not UTF-8"),
    (b"[" * 2000 + b"]" * 2000, "nesting"),
])
def test_bad_yaml_is_one_clear_error(text: bytes, message: str) -> None:
    with pytest.raises(YamlError, match=message):
        load_yaml(text, "p.yml")


def test_alias_bomb_is_refused() -> None:
    lines = ["l0: &l0 [a, a, a, a, a, a, a, a, a, a]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 9)]
    with pytest.raises(YamlError, match="expands to more than"):
        load_yaml("\n".join(lines).encode(), "p.yml")


def test_oversized_file_is_refused() -> None:
    with pytest.raises(YamlError, match="the limit is"):
        load_yaml(b"#" * (MAX_FILE_BYTES + 1), "p.yml")


def test_shared_aliases_and_merge_keys_are_allowed() -> None:
    data = load_yaml(b"base: &b {stage: a}\njob: {<<: *b, command: x}\n", "p.yml")
    assert data["job"] == {"stage": "a", "command": "x"}
