"""Bounded input (issue 12, item 5): files pt parses from a user are read up to their limit
and no further, and every duration has an upper bound. Each case is one error line, exit 2,
before any run file exists; a run whose recorded definition holds an out-of-bound value
fails with a clear line instead of crashing on every resume.

Before the fix: `pt pipeline validate /dev/zero` read 756 MB and died with `internal error:
MemoryError`; `expires_in: 99999999999999999h` and `retry: {delay: 1.0e+23}` validated, then
`run` crashed with `OverflowError` and left a run that crashed again on every resume.
"""

from __future__ import annotations

import hashlib
import resource
import subprocess
import textwrap
from pathlib import Path

import orjson
import pytest

from pulsaride.engine.model import RetryPolicy, definition_digest
from pulsaride.schemas import load_schema
from tests.conftest import PT, run_pt

MAX_DURATION_SECONDS = 366 * 24 * 3600  # engine.model.MAX_DURATION_SECONDS
MEMORY = 768 * 1024 * 1024  # address space of one `pt` process (as tests/faults)
ENDLESS = "/dev/zero"
OK = 'stages: [s]\njobs: {a: {stage: s, command: "true"}}\n'


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def pt_bounded(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`pt` under a memory limit and a timeout: an unbounded read fails either way."""
    return subprocess.run([PT, *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          check=False, preexec_fn=_limited)


def one_line(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr[-2000:])
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pt: error: "), result.stderr[:2000]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A pipeline file, a finished run `r` of it and a key pair."""
    (tmp_path / "p.yml").write_text(OK)
    assert run_pt("pipeline", "run", "p.yml", "--run-id", "r", "-q", cwd=tmp_path).returncode == 0
    assert run_pt("pipeline", "keygen", "--out", "key", cwd=tmp_path).returncode == 0
    return tmp_path


ENDLESS_CASES = {
    "validate FILE": ("pipeline", "validate", ENDLESS),
    "run FILE": ("pipeline", "run", ENDLESS, "--state-dir", "fresh-state"),
    "run --seal-key": ("pipeline", "run", "p.yml", "--seal-key", ENDLESS, "--run-id", "new"),
    "seal --key": ("pipeline", "seal", "--state-dir", ".pulsaride", "--run-id", "r",
                   "--key", ENDLESS),
    "verify --pubkey": ("pipeline", "verify", "--state-dir", ".pulsaride", "--run-id", "r",
                        "--pubkey", ENDLESS),
    "serve --pipeline": ("serve", "--pipeline", ENDLESS, "--port", "1"),
}


@pytest.mark.parametrize("args", list(ENDLESS_CASES.values()), ids=list(ENDLESS_CASES))
def test_an_endless_file_is_read_only_up_to_its_limit(folder: Path, args: tuple[str, ...]) -> None:
    before = sorted(p.name for p in (folder / ".pulsaride" / "pipeline-runs").iterdir())
    one_line(pt_bounded(*args, cwd=folder), ENDLESS, "the limit is")
    assert not (folder / "fresh-state").exists()
    assert sorted(p.name for p in (folder / ".pulsaride" / "pipeline-runs").iterdir()) == before


def test_a_large_key_file_is_refused_with_its_limit(folder: Path) -> None:
    big = folder / "big.pem"
    big.write_bytes((folder / "key.pub").read_bytes() + b"#" * (1024 * 1024))
    one_line(run_pt("pipeline", "verify", "--run-id", "r", "--pubkey", str(big), cwd=folder),
             "big.pem", "the limit is 65536")


LIMIT = "366 days"
# (case id, YAML of the jobs, fragments of the one error line)
DURATIONS = [
    ("expires_in-17-digits-hours",
     'g: {stage: s, command: "true", when: manual, expires_in: 99999999999999999h}',
     ["job 'g': expires_in: '99999999999999999h' is longer than the limit of", LIMIT]),
    ("expires_in-367-days", 'g: {stage: s, command: "true", when: manual, expires_in: 8809h}',
     ["job 'g': expires_in", LIMIT]),
    ("expires_in-nan", 'g: {stage: s, command: "true", when: manual, expires_in: .nan}',
     ["job 'g': expires_in: nan is not a number of seconds"]),
    ("retry-delay-1e23", 'a: {stage: s, command: "false", retry: {max: 1, delay: 1.0e+23}}',
     ["job 'a': retry:", "delay (at most 366 days)"]),
    ("retry-delay-hours", 'a: {stage: s, command: "false", retry: {max: 1, delay: 999999999h}}',
     ["job 'a': retry.delay: '999999999h' is longer than the limit of", LIMIT]),
    ("retry-backoff-nan", 'a: {stage: s, command: "false", retry: {max: 1, backoff: .nan}}',
     ["job 'a': retry.backoff: nan is not a number from 1 to 10"]),
    ("timeout-1e23", 'a: {stage: s, command: "true", timeout: 1.0e+23}',
     ["job 'a': timeout:", LIMIT]),
    ("timeout-inf", 'a: {stage: s, command: "true", timeout: .inf}', ["job 'a': timeout:", LIMIT]),
    ("timeout-nan", 'a: {stage: s, command: "true", timeout: .nan}',
     ["job 'a': timeout: nan is not a number of seconds"]),
    ("timeout-huge-digit-string", 'a: {stage: s, command: "true", timeout: ' + "9" * 30 + "s}",
     ["job 'a': timeout: '" + "9" * 30 + "s' is longer than the limit of", LIMIT]),
    ("resources-inf", 'a: {stage: s, command: "true", resources: {cpu: .inf}}',
     ["job 'a': resources.cpu: inf is not a number from 0 to 1e+12"]),
]


@pytest.mark.parametrize(("jobs", "fragments"), [c[1:] for c in DURATIONS],
                         ids=[c[0] for c in DURATIONS])
def test_an_unbounded_duration_is_refused_by_validate_and_run(tmp_path: Path, jobs: str,
                                                              fragments: list[str]) -> None:
    (tmp_path / "p.yml").write_text(f"stages: [s]\njobs:\n  {jobs}\n")
    for command in ("validate", "run"):
        one_line(run_pt("pipeline", command, "p.yml", cwd=tmp_path), *fragments)
    assert not (tmp_path / ".pulsaride").exists(), "a refused file started a run"


def test_the_schema_states_the_bound_the_loader_enforces() -> None:
    duration = load_schema("pipeline")["$defs"]["duration"]
    assert duration["oneOf"][0]["maximum"] == MAX_DURATION_SECONDS
    assert LIMIT in duration["description"]
    job = load_schema("event")["$defs"]["job_definition"]["properties"]
    assert job["timeout"]["maximum"] == job["retry"]["properties"]["delay"]["maximum"] == \
        MAX_DURATION_SECONDS


def test_a_growing_retry_delay_never_passes_the_bound() -> None:
    """`retry: {max: 100, delay: 1s, backoff: 10}` is valid; its 100th delay was 1e99 s,
    which no clock can add (OverflowError in the runner)."""
    policy = RetryPolicy(max=100, delay=1.0, backoff=10.0)
    assert policy.delay_before(3) == 100.0
    assert policy.delay_before(100) == MAX_DURATION_SECONDS
    assert RetryPolicy(max=1, delay=1e300, backoff=10.0).delay_before(1000) == \
        MAX_DURATION_SECONDS


FAILS_THEN_GATE = """\
stages: [s, g]
jobs:
  a: {stage: s, command: "test -f fixed"}
  gate: {stage: g, command: "true", needs: [a], when: manual, expires_in: EXPIRY}
"""


def _rechain(lines: list[bytes]) -> bytes:
    out: list[bytes] = []
    for line in lines:
        record = orjson.loads(line)
        record["prev"] = hashlib.sha256(out[-1]).hexdigest() if out else "0" * 64
        out.append(orjson.dumps(record))
    return b"".join(line + b"\n" for line in out)


def test_a_run_recorded_with_an_unbounded_value_fails_with_a_line_not_a_crash(
        tmp_path: Path) -> None:
    """A run started by a pt without the bounds: its file and its recorded definition hold
    `expires_in: 99999999999999999h`. It used to crash with OverflowError on every resume."""
    path = tmp_path / "p.yml"
    path.write_text(FAILS_THEN_GATE.replace("EXPIRY", "1h"))
    assert run_pt("pipeline", "run", "p.yml", "--run-id", "old", "-q", cwd=tmp_path
                  ).returncode == 1
    huge = FAILS_THEN_GATE.replace("EXPIRY", "99999999999999999h")
    path.write_text(huge)
    run_file = tmp_path / ".pulsaride" / "pipeline-runs" / "old.jsonl"
    lines = run_file.read_bytes().splitlines()
    first = orjson.loads(lines[0])
    recorded = first["pipeline"]
    recorded["definition"]["jobs"]["gate"]["gate"]["expires_in"] = 99999999999999999 * 3600.0
    recorded["definition_sha256"] = definition_digest(recorded["definition"])
    recorded["sha256"] = hashlib.sha256(huge.encode()).hexdigest()
    run_file.write_bytes(_rechain([orjson.dumps(first), *lines[1:]]))
    before = run_file.read_bytes()
    (tmp_path / "fixed").touch()

    for _ in range(2):  # "crashes again on every resume"
        one_line(run_pt("pipeline", "resume", "p.yml", "--run-id", "old", cwd=tmp_path),
                 "job 'gate': expires_in", LIMIT)
        assert run_file.read_bytes() == before, "a refused resume appended to the run"
    status = run_pt("pipeline", "status", "p.yml", "--run-id", "old", cwd=tmp_path)
    one_line(status, "run old: the recorded definition holds job 'gate': expires_in", LIMIT,
             "start a new run")
    verify = run_pt("pipeline", "verify", "--run-id", "old", "--json", cwd=tmp_path)
    assert verify.returncode == 1, verify.stderr
    findings = orjson.loads(verify.stdout)["findings"]
    assert {(f["line"], f["check"]) for f in findings} >= {(1, "pipeline"), (1, "schema")}
    assert any("out of bounds: job 'gate': expires_in" in f["message"] for f in findings)


def test_a_pipeline_file_at_the_limit_still_loads(tmp_path: Path) -> None:
    text = textwrap.dedent(OK) + "#" * (1024 * 1024 - len(OK) - 1) + "\n"
    (tmp_path / "p.yml").write_text(text)
    assert (tmp_path / "p.yml").stat().st_size == 1024 * 1024
    result = run_pt("pipeline", "validate", "p.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
