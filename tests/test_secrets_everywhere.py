"""Planted secrets never reach anything `pt` writes or prints.

Secrets come from the environment (DB_PASSWORD single-line, MY_TOKEN multi-line, SOME_API_KEY)
and from the pipeline file's `variables:` (pipeline level and job level, secret-looking names).
A job prints all of them on stdout and stderr, fails, retries, is resumed, passes a gate; then
every view and export is produced. Every file under the state dir, every export, every file of
the extracted bundle and every command's stdout and stderr is searched for every secret value
and every line of the multi-line one.
"""

from __future__ import annotations

import hashlib
import subprocess
import textwrap
from pathlib import Path

import pytest

from pulsaride.engine.masking import Masker
from tests.conftest import PT, run_pt

DB_PASSWORD = "pa55-w0rd-single-line"
MY_TOKEN = "tok-line-one-abc\ntok-line-two-def\ntok-line-three-ghi"
SOME_API_KEY = "api-key-0123456789abcdef"
DEPLOY_SECRET = "pipeline-secret-4242"  # pipeline `variables:`, unquoted in the file
ADMIN_PASS = "admin-pass-xyz-99"  # pipeline `variables:`, quoted in the file
JOB_TOKEN = "job-token-777-qrs"  # a job's own `variables:`
ENV = {"DB_PASSWORD": DB_PASSWORD, "MY_TOKEN": MY_TOKEN, "SOME_API_KEY": SOME_API_KEY}
SECRETS = [DB_PASSWORD, MY_TOKEN, *MY_TOKEN.splitlines(), SOME_API_KEY, DEPLOY_SECRET,
           ADMIN_PASS, JOB_TOKEN]

PIPELINE = f"""\
stages: [leak, cutover]
variables:
  DEPLOY_SECRET: {DEPLOY_SECRET}
  ADMIN_PASS: "{ADMIN_PASS}"
  REGION: eu-west-1
jobs:
  leak:
    stage: leak
    retry: 1
    variables: {{JOB_TOKEN: {JOB_TOKEN}}}
    command: |
      for name in DB_PASSWORD MY_TOKEN SOME_API_KEY DEPLOY_SECRET ADMIN_PASS JOB_TOKEN; do
        eval "value=\\$$name"
        printf '%s' "$value" | sha256sum | cut -c1-64 > "seen-$name.txt"
      done
      echo "db $DB_PASSWORD"
      printf '%s\\n' "$MY_TOKEN"
      echo "api $SOME_API_KEY" >&2
      echo "vars $DEPLOY_SECRET $ADMIN_PASS $JOB_TOKEN"
      printf 'token on stderr: %s\\n' "$MY_TOKEN" >&2
      test -f fixed || {{ echo "failing with $DB_PASSWORD" >&2; exit 7; }}
  gate:
    stage: cutover
    command: 'echo "gate sees $DB_PASSWORD and $SOME_API_KEY"'
    needs: [leak]
    when: manual
"""


def leaks(data: bytes) -> list[str]:
    return [secret for secret in SECRETS if secret.encode() in data]


@pytest.fixture(scope="module")
def everything(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Run, fail, retry, resume, approve, resume; then every view and export. Returns every
    output and artifact by a name that says where it came from."""
    folder = tmp_path_factory.mktemp("secrets")
    path = folder / "pulsaride-pipeline.yml"
    path.write_text(PIPELINE)
    outputs: dict[str, bytes] = {}

    def pt(*args: str, expect: int) -> None:
        result = subprocess.run([PT, *args], cwd=folder, env={**_base_env(), **ENV},
                                capture_output=True, check=False, timeout=120)
        name = " ".join(args)
        assert result.returncode == expect, f"{name}: {result.stdout!r} {result.stderr!r}"
        outputs[f"stdout of {name}"] = result.stdout
        outputs[f"stderr of {name}"] = result.stderr

    run = ("--run-id", "sec")
    pt("pipeline", "run", path.name, *run, expect=1)
    (folder / "fixed").touch()
    pt("pipeline", "resume", path.name, *run, "--no-wait", expect=3)
    pt("pipeline", "approve", path.name, *run, "--job", "gate", "--as", "alice", "--reason", "ok",
       expect=0)
    pt("pipeline", "resume", path.name, *run, expect=0)
    for view in (("status", path.name), ("status", path.name, "--json"), ("history", path.name),
                 ("history", path.name, "--json"), ("history",), ("show", *run),
                 ("show", *run, "--json"), ("verify", path.name, *run),
                 ("verify", *run, "--json"), ("export", *run, "--format", "json"),
                 ("export", *run, "--format", "csv")):
        pt("pipeline", *view, expect=0)
    outputs[f"seen {folder}"] = b""
    exports = folder / "exports"
    for fmt, name in (("json", "run.json"), ("csv", "run.csv"), ("bundle", "run.tar.gz")):
        pt("pipeline", "export", *run, "--format", fmt, "-o", str(exports / name), expect=0)
    extracted = folder / "extracted"
    extracted.mkdir()
    subprocess.run(["tar", "xzf", str(exports / "run.tar.gz"), "-C", str(extracted)], check=True)

    for root in (folder / ".pulsaride", exports, extracted):
        files = [p for p in root.rglob("*") if p.is_file()]
        assert files, root
        outputs.update({f"file {p.relative_to(folder)}": p.read_bytes() for p in files})
    return outputs


@pytest.fixture(scope="module")
def seen(everything: dict[str, bytes]) -> str:
    """The digests of the values the job saw (written outside the state dir)."""
    folder = next(Path(name[len("seen "):]) for name in everything if name.startswith("seen "))
    return "".join((folder / f"seen-{name}.txt").read_text() for name in (
        "DB_PASSWORD", "MY_TOKEN", "SOME_API_KEY", "DEPLOY_SECRET", "ADMIN_PASS", "JOB_TOKEN"))


def _base_env() -> dict[str, str]:
    import os  # noqa: PLC0415 - only here: the secrets must not come from the test's own env

    return {k: v for k, v in os.environ.items() if k not in ENV}


def test_the_job_saw_the_real_values(seen: str) -> None:
    """Not vacuous: the job had every secret (it wrote their digests outside the state dir)."""
    values = (DB_PASSWORD, MY_TOKEN, SOME_API_KEY, DEPLOY_SECRET, ADMIN_PASS, JOB_TOKEN)
    assert seen == "".join(hashlib.sha256(value.encode()).hexdigest() + "\n" for value in values)


def test_no_secret_in_any_file_export_bundle_member_or_output(everything: dict[str, bytes]) -> None:
    found = {name: leaks(data) for name, data in everything.items()}
    assert {name: secrets for name, secrets in found.items() if secrets} == {}
    names = list(everything)
    # What was searched: the state dir (run file, logs, pipeline copy, lock), the exports, the
    # extracted bundle, and the output of every command.
    assert any(n.endswith(".pulsaride/pipeline-runs/sec.jsonl") for n in names)
    assert any(n.endswith("sec/pipeline.yml") for n in names)
    assert sum("/logs/leak/attempt-" in n and n.startswith("file .pulsaride") for n in names) == 3
    assert any(n.startswith("file extracted/") and n.endswith("export.json") for n in names)
    assert any(n.startswith("file exports/run.csv") for n in names)
    # 4 commands to run, 11 views, 3 exports to files
    assert sum(n.startswith("stdout of pipeline") for n in names) == 4 + 11 + 3


def test_the_secrets_were_printed_and_masked(everything: dict[str, bytes]) -> None:
    """The job did print them, on stdout and stderr: what is kept shows the mask instead."""
    log = next(data for name, data in everything.items()
               if name.endswith(".pulsaride/pipeline-runs/sec/logs/leak/attempt-1.log")).decode()
    assert log.splitlines() == [
        "db ***", "***", "***", "***", "api ***", "vars *** *** ***",
        "token on stderr: ***", "***", "***", "failing with ***"]
    first_run = everything["stdout of pipeline run pulsaride-pipeline.yml --run-id sec"].decode()
    assert "leak | db ***" in first_run
    copy = next(data for name, data in everything.items() if name.endswith("sec/pipeline.yml"))
    assert textwrap.dedent("""\
        variables:
          DEPLOY_SECRET: <masked>
          ADMIN_PASS: "<masked>"
          REGION: eu-west-1
        """).encode() in copy


def test_the_masked_run_still_verifies(everything: dict[str, bytes]) -> None:
    """Masking the copy of the pipeline file must not break `pt pipeline verify` (it did: the
    copy held `KEY: ***`, which is not valid YAML)."""
    verdict = everything["stdout of pipeline verify pulsaride-pipeline.yml --run-id sec"].decode()
    assert verdict.startswith("run sec: verified: ")
    bundle = next(data for name, data in everything.items()
                  if name.startswith("stderr of pipeline export") and "bundle" in name)
    assert b"verification passed" in bundle


def test_secrets_in_run_output_are_masked_with_run_pt_too(tmp_path: Path) -> None:
    """The same through conftest's run_pt (text mode), for a run that only fails."""
    path = tmp_path / "p.yml"
    path.write_text(PIPELINE)
    result = run_pt("pipeline", "run", path.name, "--run-id", "t", "--json", cwd=tmp_path, env=ENV)
    assert result.returncode == 1
    assert leaks((result.stdout + result.stderr).encode()) == []
    assert "db ***" in result.stderr  # job output goes to stderr with --json


def test_a_secret_in_a_line_longer_than_64_kib_is_not_cut_in_two(tmp_path: Path) -> None:
    """A line longer than the log writer's buffer is written in pieces; a piece used to end in
    the middle of a secret, so both halves (adjacent in the log) passed unmasked."""
    path = tmp_path / "p.yml"
    path.write_text(textwrap.dedent("""\
        stages: [one]
        jobs:
          long:
            stage: one
            command: |
              pad=$(head -c 65530 /dev/zero | tr '\\0' a)
              printf '%s%s' "$pad" "${DB_PASSWORD%???????????}"
              sleep 0.3
              printf '%s\\n' "${DB_PASSWORD#??????????}"
        """))
    result = run_pt("pipeline", "run", path.name, "--run-id", "long", cwd=tmp_path, env=ENV)
    assert result.returncode == 0, result.stderr
    log = (tmp_path / ".pulsaride/pipeline-runs/long/logs/long/attempt-1.log").read_bytes()
    assert leaks(log) == [] and leaks(result.stdout.encode()) == []
    assert log == b"a" * 65530 + b"***\n"


def test_masker_safe_cut_never_cuts_a_secret() -> None:
    masker = Masker(["secret-one", "s2-xy"])
    data = b"x" * 20 + b"secret-one" + b"y" * 3
    for end in range(len(data) + 1):
        cut = masker.safe_cut(data[:end])
        assert 0 <= cut <= end
        head = masker.data(data[:cut])
        assert b"secret" not in head and b"s2-" not in head
        assert masker.data(data[:cut]) + masker.data(data[cut:]) == masker.data(data)
    assert masker.safe_cut(b"x" * 100) == 100 - 9
    assert Masker([]).safe_cut(b"abc") == 3
