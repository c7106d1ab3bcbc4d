"""Bad input to `pt pipeline run` and `validate`: clear lines on stderr, exit 2, no traceback.

Each case is checked through both `validate` and `run`; `run` must not create a state folder
or start anything for a file that is not a valid pipeline.
"""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import orjson
import pytest

from tests.conftest import run_pt

# The mission's own sample pipeline (seed/000_61d81531491a3be0.txt), verbatim: its job
# migrate-order-items needs `migrate-products`, which it never defines.
MISSION_SAMPLE = """\
# pulsaride-pipeline.yml
version: "1.0"
stages: [preflight, migrate, validate, cutover]

jobs:
  check-schema:
    stage: preflight
    command: pt preflight customers.yaml --target-url $TGT_URL
    on_failure: abort            # stop everything if schema is incompatible

  migrate-customers:
    stage: migrate
    command: pt migrate run customers.yaml

  migrate-orders:
    stage: migrate
    command: pt migrate run orders.yaml
    needs: [migrate-customers]   # ← table-level ordering

  migrate-order-items:
    stage: migrate
    command: pt migrate run order-items.yaml
    needs: [migrate-orders, migrate-products]

  validate-counts:
    stage: validate
    command: pt validate counts --table customers orders order_items
    needs: [migrate-customers, migrate-orders, migrate-order-items]

  validate-sample:
    stage: validate
    command: pt validate sample --table orders --sample 0.02
    needs: [migrate-orders]

  cutover-gate:
    stage: cutover
    command: pt migrate cutover orders.yaml --verify
    needs: [validate-counts, validate-sample]
    when: manual                 # ← human approval required
    on_failure: abort
"""

BOMB = "\n".join(
    ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"{chr(98 + n)}: &{chr(98 + n)} [" + ", ".join([f"*{chr(97 + n)}"] * 9) + "]"
       for n in range(8)]
    + ["stages: [s]", 'jobs: {x: {stage: s, command: "true"}}', ""])

# (case id, file content, fragments the error lines must contain)
CASES = [
    ("invalid-yaml", "stages: [a\njobs: {\n", ["line 2", "column"]),
    ("tab-indent", "stages: [a]\njobs:\n\tx: {stage: a}\n", ["line 3"]),
    ("duplicate-job", """
        stages: [s]
        jobs:
          x: {stage: s, command: "true"}
          x: {stage: s, command: "false"}
     """, ["duplicate key 'x'", "line 4"]),
    ("duplicate-option", """
        stages: [s]
        jobs:
          x: {stage: s, command: "true", command: "false"}
     """, ["duplicate key 'command'"]),
    ("unknown-job-key", """
        stages: [s]
        jobs:
          x: {stage: s, comand: "true"}
     """, ["job 'x'", "unknown key 'comand'", "did you mean 'command'?"]),
    ("unknown-top-key", """
        stage: [s]
        jobs:
          x: {stage: s, command: "true"}
     """, ["unknown key 'stage'", "did you mean 'stages'?"]),
    ("needs-not-a-list", """
        stages: [s]
        jobs:
          x: {stage: s, command: "true"}
          y: {stage: s, command: "true", needs: x}
     """, ["job 'y'", "needs", "'x' is not of type 'array'"]),
    ("command-not-a-string", """
        stages: [s]
        jobs:
          x: {stage: s, command: 42}
     """, ["job 'x'", "command", "42 is not of type 'string'"]),
    ("retry-not-a-count", """
        stages: [s]
        jobs:
          x: {stage: s, command: "true", retry: two}
     """, ["job 'x'", "retry", "'two' is not valid"]),
    ("when-unknown", """
        stages: [s]
        jobs:
          x: {stage: s, command: "true", when: sometimes}
     """, ["job 'x'", "'sometimes' is not one of 'on_success', 'always', 'manual'"]),
    ("timeout-bad", """
        stages: [s]
        jobs:
          x: {stage: s, command: "true", timeout: soon}
     """, ["job 'x'", "timeout"]),
    ("missing-command", """
        stages: [s]
        jobs:
          x: {stage: s}
     """, ["job 'x'", "'command' is required"]),
    ("missing-jobs", "stages: [s]\n", ["'jobs' is required"]),
    ("unknown-stage", """
        stages: [preflight, migrate]
        jobs:
          x: {stage: migrat, command: "true"}
     """, ["job 'x'", "unknown stage 'migrat'", "did you mean 'migrate'?",
           "stages: preflight, migrate"]),
    ("mission-sample", MISSION_SAMPLE, ["job 'migrate-order-items'", "'migrate-products'",
                                        "not defined"]),
    ("self-need", """
        stages: [s]
        jobs:
          x: {stage: s, command: "true", needs: [x]}
     """, ["job 'x'", "needs itself"]),
    ("cycle", """
        stages: [s]
        jobs:
          a: {stage: s, command: "true", needs: [c]}
          b: {stage: s, command: "true", needs: [a]}
          c: {stage: s, command: "true", needs: [b]}
     """, ["cycle", "→"]),
    ("later-stage-need", """
        stages: [migrate, validate]
        jobs:
          m: {stage: migrate, command: "true", needs: [v]}
          v: {stage: validate, command: "true"}
     """, ["job 'm'", "needs 'v' of the later stage 'validate'"]),
    ("alias-bomb", BOMB, ["aliases"]),
    ("python-tag", """
        stages: [s]
        jobs: !!python/object/apply:os.system ["touch pwned"]
     """, ["python/object"]),
    ("python-object", """
        stages: !!python/object:collections.OrderedDict {}
        jobs: {}
     """, ["python/object"]),
    ("empty-file", "", ["the file is empty"]),
    ("only-comments", "# nothing here\n", ["the file is empty"]),
    ("list-top-level", "- stages\n- jobs\n", ["must be a mapping"]),
    ("scalar-top-level", "hello\n", ["must be a mapping"]),
    ("bad-job-name", """
        stages: [s]
        jobs:
          "../evil": {stage: s, command: "true"}
     """, ["'../evil'", "letters, digits"]),
    ("not-utf8", "stages: [s]\njobs: {x: {stage: s, command: \"echo \xff\"}}\n", ["UTF-8"]),
]


def write_case(folder: Path, content: str) -> Path:
    path = folder / "pulsaride-pipeline.yml"
    text = textwrap.dedent(content).lstrip("\n") if content.startswith("\n") else content
    path.write_bytes(text.encode("latin-1") if "\xff" in text else text.encode())
    return path


def assert_clean_failure(result: subprocess.CompletedProcess[str], fragments: list[str]) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert 1 <= len(lines) <= 5, result.stderr
    assert all(line.startswith("pt: error: ") for line in lines), result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)


# `run` reads files through the same loader as `validate`: one case per layer is enough there.
RUN_TOO = {"invalid-yaml", "duplicate-job", "alias-bomb", "python-tag", "unknown-job-key",
           "mission-sample", "cycle", "empty-file", "list-top-level"}


@pytest.mark.parametrize(
    ("command", "content", "fragments"),
    [("validate", *c[1:]) for c in CASES] + [("run", *c[1:]) for c in CASES if c[0] in RUN_TOO],
    ids=[f"validate-{c[0]}" for c in CASES] + [f"run-{c[0]}" for c in CASES if c[0] in RUN_TOO])
def test_bad_pipeline_file(tmp_path: Path, command: str, content: str,
                           fragments: list[str]) -> None:
    path = write_case(tmp_path, content)
    result = run_pt("pipeline", command, path.name, cwd=tmp_path)
    assert_clean_failure(result, fragments)
    assert result.stderr.startswith(f"pt: error: {path.name}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # nothing run or created


def test_the_cycle_message_shows_the_path(tmp_path: Path) -> None:
    path = write_case(tmp_path, {c[0]: c[1] for c in CASES}["cycle"])
    result = run_pt("pipeline", "validate", path.name, cwd=tmp_path)
    # a needs c, c needs b, b needs a.
    assert "needs form a cycle: a → c → b → a" in result.stderr


@pytest.mark.parametrize("command", ["validate", "run", "status", "resume"])
def test_missing_file(tmp_path: Path, command: str) -> None:
    result = run_pt("pipeline", command, "nope.yml", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert "nope.yml" in result.stderr


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_directory(tmp_path: Path, command: str) -> None:
    (tmp_path / "folder.yml").mkdir()
    result = run_pt("pipeline", command, "folder.yml", cwd=tmp_path)
    assert_clean_failure(result, ["folder.yml: is a directory"])


def test_validate_lists_every_problem_at_once(tmp_path: Path) -> None:
    path = write_case(tmp_path, """
        stages: [preflight, migrate]
        jobs:
          a: {stage: preflight, comand: "true"}
          b: {stage: migrate, command: "true", retry: -1}
          c: {stage: migrate, command: "true", when: later}
    """)
    result = run_pt("pipeline", "validate", path.name, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert any("job 'a'" in ln and "unknown key 'comand'" in ln for ln in lines), lines
    assert any("job 'a'" in ln and "'command' is required" in ln for ln in lines), lines
    assert any("job 'b'" in ln and "retry" in ln for ln in lines), lines
    assert any("job 'c'" in ln and "'later'" in ln for ln in lines), lines


def test_validate_lists_every_semantic_problem_at_once(tmp_path: Path) -> None:
    path = write_case(tmp_path, """
        stages: [preflight, migrate]
        jobs:
          a: {stage: prefligth, command: "true"}
          b: {stage: migrate, command: "true", needs: [b, ghost]}
          c: {stage: preflight, command: "true", needs: [b]}
          d: {stage: migrate, command: "true", needs: [e]}
          e: {stage: migrate, command: "true", needs: [d]}
    """)
    result = run_pt("pipeline", "validate", path.name, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    expected = [
        "job 'a': unknown stage 'prefligth' (did you mean 'preflight'?)",
        "job 'b': needs itself",
        "job 'b': needs 'ghost', which is not defined",
        "job 'c': needs 'b' of the later stage 'migrate'",
        "needs form a cycle: ",
    ]
    assert len(lines) == len(expected), lines
    for line, fragment in zip(lines, expected, strict=True):
        assert fragment in line
    assert lines[-1].endswith(("d → e → d", "e → d → e"))


def test_validate_accepts_a_good_file_and_runs_nothing(tmp_path: Path) -> None:
    fixed = MISSION_SAMPLE.replace("needs: [migrate-orders, migrate-products]",
                                   "needs: [migrate-orders]")
    path = write_case(tmp_path, fixed)
    result = run_pt("pipeline", "validate", path.name, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{path.name}: valid: 4 stages, 7 jobs, 1 manual gate"
    assert result.stderr == ""
    as_json = run_pt("pipeline", "validate", path.name, "--json", cwd=tmp_path)
    assert as_json.returncode == 0
    document = orjson.loads(as_json.stdout)
    assert document["valid"] is True
    assert document["stages"] == ["preflight", "migrate", "validate", "cutover"]
    assert document["manual_jobs"] == ["cutover-gate"]
    assert len(document["sha256"]) == 64
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_every_documented_option_is_accepted(tmp_path: Path) -> None:
    path = write_case(tmp_path, """
        version: "1.0"
        stages: [s]
        variables: {A: "1", B: 2, C: true}
        jobs:
          x:
            stage: s
            command: "true"
            description: does nothing
            needs: []
            when: on_success
            on_failure: continue
            retry: {max: 2, delay: 1s, backoff: 2}
            timeout: 5m
            variables: {D: four}
          y: {stage: s, command: "true", needs: [x], when: always, on_failure: abort,
              retry: 1, timeout: 30}
    """)
    result = run_pt("pipeline", "validate", path.name, cwd=tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("args", "fragment"), [
    (["--parallelism", "0"], "--parallelism"),
    (["--parallelism", "many"], "--parallelism"),
    (["--bogus"], "--bogus"),
])
def test_bad_options_are_usage_errors(tmp_path: Path, args: list[str], fragment: str) -> None:
    path = write_case(tmp_path, 'stages: [s]\njobs:\n  x: {stage: s, command: "true"}\n')
    result = run_pt("pipeline", "run", path.name, *args, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert fragment in result.stderr
    assert not (tmp_path / ".pulsaride").exists()
