"""Planted secrets never reach anything `pt` writes, prints or serves.

Secrets come from the environment (DB_PASSWORD single-line, MY_TOKEN multi-line, SOME_API_KEY,
SPECIAL_PASS with characters URL-encoding changes, the password inside PT_TARGET_URL), from the
pipeline file's `variables:` (pipeline level and job level, secret-looking names, a URL's
password under a plain name, a value declared `{value: ..., secret: true}` under a plain name),
from an approver's `--reason` (issue 12 item 3: a pipeline variable's secret value pasted
there was stored as is, because the masker was built from the recorded, already masked,
definition) and from a job's output (a URL whose password is in no variable). A job prints all
of them, raw, base64-encoded (also inside a longer base64 text) and URL-encoded, on stdout and
stderr, fails, retries, is resumed, passes a gate; the run is sealed at every checkpoint; then
every view and export is produced and every page of `pt serve` fetched. Every file under the
state dir (run file, pipeline copy, logs, seals, lock), every export, every file of the
extracted bundle, every command's stdout and stderr and every page is searched for every secret
value in every form, and every line of the multi-line one.
"""

from __future__ import annotations

import base64
import hashlib
import signal
import socket
import subprocess
import textwrap
import time
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import orjson
import pytest

from pulsaride.engine.masking import Masker
from tests.conftest import PT, run_pt

DB_PASSWORD = "pa55-w0rd-single-line"
MY_TOKEN = "tok-line-one-abc\ntok-line-two-def\ntok-line-three-ghi"
SOME_API_KEY = "api-key-0123456789abcdef"
DEPLOY_SECRET = "pipeline-secret-4242"  # pipeline `variables:`, unquoted in the file
ADMIN_PASS = "admin-pass-xyz-99"  # pipeline `variables:`, quoted in the file
JOB_TOKEN = "job-token-777-qrs"  # a job's own `variables:`
SPECIAL_PASS = "p@ss w/rd:99!&x"  # URL-encoding changes it
ENV_URL_PASSWORD = "URLPW-in-env-5150"  # inside PT_TARGET_URL
FILE_URL_PASSWORD = "PIPEURL-pw-6161"  # inside SOURCE_DSN, a plain name in the file
DECLARED = "declared-secret-7272"  # CUTOVER_WORD: {value: ..., secret: true}
OUTPUT_URL_PASSWORD = "OUTPUT-pw-8383"  # only ever in a job's output
REASON_URL_PASSWORD = "REASONPW-9494"  # only ever in an approver's --reason
ENV = {"DB_PASSWORD": DB_PASSWORD, "MY_TOKEN": MY_TOKEN, "SOME_API_KEY": SOME_API_KEY,
       "SPECIAL_PASS": SPECIAL_PASS,
       "PT_TARGET_URL": f"postgresql://migrator:{ENV_URL_PASSWORD}@db.example/prod"}
VALUES = [DB_PASSWORD, MY_TOKEN, *MY_TOKEN.splitlines(), SOME_API_KEY, DEPLOY_SECRET,
          ADMIN_PASS, JOB_TOKEN, SPECIAL_PASS, ENV_URL_PASSWORD, FILE_URL_PASSWORD, DECLARED,
          OUTPUT_URL_PASSWORD, REASON_URL_PASSWORD]


def _forms(value: str) -> list[str]:
    """The value, URL-encoded, and base64-encoded on its own and inside a longer base64 text
    at each alignment (without the edge characters that depend on the bytes around)."""
    data = value.encode()
    forms = [value, quote(value, safe=""), quote_plus(value), base64.b64encode(data).decode()]
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + data).decode().rstrip("=")
        forms.append(encoded[-(-8 * shift // 6):-1])
    return sorted({form for form in forms if len(form) >= 8})


SECRETS = sorted({form for value in VALUES for form in _forms(value)})

PIPELINE = f"""\
stages: [leak, cutover]
variables:
  DEPLOY_SECRET: {DEPLOY_SECRET}
  ADMIN_PASS: "{ADMIN_PASS}"
  REGION: eu-west-1
  SOURCE_DSN: "mysql://reader:{FILE_URL_PASSWORD}@src.example/shop"
  CUTOVER_WORD: {{value: "{DECLARED}", secret: true}}
jobs:
  leak:
    stage: leak
    retry: 1
    variables: {{JOB_TOKEN: {JOB_TOKEN}}}
    command: |
      for name in DB_PASSWORD MY_TOKEN SOME_API_KEY DEPLOY_SECRET ADMIN_PASS JOB_TOKEN \\
                  CUTOVER_WORD; do
        eval "value=\\$$name"
        printf '%s' "$value" | sha256sum | cut -c1-64 > "seen-$name.txt"
      done
      echo "db $DB_PASSWORD"
      printf '%s\\n' "$MY_TOKEN"
      echo "api $SOME_API_KEY" >&2
      echo "vars $DEPLOY_SECRET $ADMIN_PASS $JOB_TOKEN"
      printf 'token on stderr: %s\\n' "$MY_TOKEN" >&2
      echo "urls $PT_TARGET_URL $SOURCE_DSN postgresql://joe:$(printf 'OUT%s' 'PUT-pw-8383')@h/db"
      echo "declared $CUTOVER_WORD special $SPECIAL_PASS"
      printf '%s' "$DB_PASSWORD" | base64
      printf 'ab%s' "$SOME_API_KEY" | base64 -w0; echo
      printf 'x%s' "$CUTOVER_WORD" | base64 -w0; echo
      python3 -c 'import os, urllib.parse as u; s = os.environ["SPECIAL_PASS"]
      print(u.quote(s, safe=""), u.quote_plus(s))'
      test -f fixed || {{ echo "failing with $DB_PASSWORD" >&2; exit 7; }}
  gate:
    stage: cutover
    command: 'echo "gate sees $DB_PASSWORD and $SOME_API_KEY"'
    needs: [leak]
    when: manual
"""


REASON = (f"pw is {DEPLOY_SECRET}, word {DECLARED}, url postgresql://x:{REASON_URL_PASSWORD}@h, "
          f"b64 {base64.b64encode(ADMIN_PASS.encode()).decode()}")
"""The approver pastes secrets of the pipeline file's variables into --reason."""


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
    sealed = ("--seal-key", str(folder / "key"))
    pt("pipeline", "keygen", "--out", str(folder / "key"), expect=0)
    pt("pipeline", "run", path.name, *run, *sealed, expect=1)
    (folder / "fixed").touch()
    pt("pipeline", "resume", path.name, *run, "--no-wait", *sealed, expect=3)
    pt("pipeline", "approve", path.name, *run, "--job", "gate", "--as", "alice", "--reason",
       REASON, *sealed, expect=0)
    pt("pipeline", "resume", path.name, *run, *sealed, expect=0)
    for view in (("status", path.name), ("status", path.name, "--json"), ("history", path.name),
                 ("history", path.name, "--json"), ("history",), ("show", *run),
                 ("show", *run, "--json"), ("verify", path.name, *run),
                 ("verify", *run, "--json"), ("export", *run, "--format", "json"),
                 ("export", *run, "--format", "csv")):
        pt("pipeline", *view, expect=0)
    outputs[f"seen {folder}"] = b""
    exports = folder / "exports"
    for fmt, name in (("json", "run.json"), ("csv", "run.csv"), ("bundle", "run.tar.gz")):
        keyed = ("--key", str(folder / "key")) if fmt == "bundle" else ()
        pt("pipeline", "export", *run, "--format", fmt, "-o", str(exports / name), *keyed,
           expect=0)
    pt("pipeline", "attest", *run, "--key", str(folder / "key"), "-o",
       str(exports / "run.intoto.jsonl"), expect=0)
    extracted = folder / "extracted"
    extracted.mkdir()
    subprocess.run(["tar", "xzf", str(exports / "run.tar.gz"), "-C", str(extracted)], check=True)

    for root in (folder / ".pulsaride", exports, extracted):
        files = [p for p in root.rglob("*") if p.is_file()]
        assert files, root
        outputs.update({f"file {p.relative_to(folder)}": p.read_bytes() for p in files})
    outputs.update(_served_pages(folder))
    return outputs


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


PAGES = ["/", "/live", "/runs/sec", "/runs/sec/live", "/runs/sec/timeline",
         "/runs/sec/jobs/leak/log", "/runs/sec/jobs/gate/log", "/api/runs", "/api/runs/sec",
         "/api/health", "/api/health/cutover", "/openapi.json"]


def _served_pages(folder: Path) -> dict[str, bytes]:
    """Every page `pt serve` shows of the run (and the scripts and styles it loads)."""
    port = _free_port()
    server = subprocess.Popen([PT, "serve", "--state-dir", ".pulsaride", "--port", str(port)],
                              cwd=folder, env={**_base_env(), **ENV}, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    pages: dict[str, bytes] = {}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    client.get("/openapi.json")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline and server.poll() is None, "no pt serve"
                    time.sleep(0.1)
            for page in PAGES:
                response = client.get(page)
                assert response.status_code in (200, 503), (page, response.status_code)
                pages[f"page {page}"] = response.content
            assets = {part.split('"')[0] for page in ("/", "/runs/sec") for part in
                      pages[f"page {page}"].decode().split('src="')[1:] +
                      pages[f"page {page}"].decode().split('href="')[1:]
                      if part.startswith("/static/")}
            for asset in sorted(assets):
                pages[f"page {asset}"] = client.get(asset).content
    finally:
        server.send_signal(signal.SIGINT)
        output = server.communicate(timeout=20)[0]
    pages["output of pt serve"] = output
    return pages


@pytest.fixture(scope="module")
def seen(everything: dict[str, bytes]) -> str:
    """The digests of the values the job saw (written outside the state dir)."""
    folder = next(Path(name[len("seen "):]) for name in everything if name.startswith("seen "))
    return "".join((folder / f"seen-{name}.txt").read_text() for name in (
        "DB_PASSWORD", "MY_TOKEN", "SOME_API_KEY", "DEPLOY_SECRET", "ADMIN_PASS", "JOB_TOKEN",
        "CUTOVER_WORD"))


def _base_env() -> dict[str, str]:
    import os  # noqa: PLC0415 - only here: the secrets must not come from the test's own env

    return {k: v for k, v in os.environ.items() if k not in ENV}


def test_the_job_saw_the_real_values(seen: str) -> None:
    """Not vacuous: the job had every secret (it wrote their digests outside the state dir)."""
    values = (DB_PASSWORD, MY_TOKEN, SOME_API_KEY, DEPLOY_SECRET, ADMIN_PASS, JOB_TOKEN, DECLARED)
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
    assert any(n.endswith(".pulsaride/pipeline-runs/sec.seals.jsonl") for n in names)
    assert {f"page {page}" for page in PAGES} <= set(names)
    assert {"page /static/dashboard.js", "page /static/dashboard.css"} <= set(names)
    assert any(n.startswith("file exports/run.intoto.jsonl") for n in names)
    assert any(n.startswith("file extracted/") and n.endswith("attestation.intoto.jsonl")
               for n in names)
    # keygen and 4 commands to run, 11 views, 3 exports and 1 attestation to files
    assert sum(n.startswith("stdout of pipeline") for n in names) == 5 + 11 + 3 + 1


def test_secrets_arriving_by_reason_url_and_declaration_are_recorded_masked(
        everything: dict[str, bytes]) -> None:
    """Issue 12 item 3: the approver's --reason, a URL's password under a plain name and a
    declared secret are masked in the run file and the pipeline copy; the copy still parses."""
    lines = [orjson.loads(line) for line in everything[
        "file .pulsaride/pipeline-runs/sec.jsonl"].splitlines()]
    (approved,) = [r for r in lines if r["event"] == "JobApproved"]
    assert approved["reason"] == "pw is ***, word ***, url postgresql://x:***@h, b64 ***"
    variables = lines[0]["pipeline"]["definition"]["variables"]
    assert variables["CUTOVER_WORD"] == "***"
    assert variables["SOURCE_DSN"] == "mysql://reader:***@src.example/shop"
    copy = next(data for name, data in everything.items() if name.endswith("sec/pipeline.yml"))
    assert b'SOURCE_DSN: "mysql://reader:<masked>@src.example/shop"' in copy
    assert b'CUTOVER_WORD: {value: "<masked>", secret: true}' in copy


def test_the_secrets_were_printed_and_masked(everything: dict[str, bytes]) -> None:
    """The job did print them, on stdout and stderr: what is kept shows the mask instead."""
    log = next(data for name, data in everything.items()
               if name.endswith(".pulsaride/pipeline-runs/sec/logs/leak/attempt-1.log")).decode()
    assert log.splitlines() == [
        "db ***", "***", "***", "***", "api ***", "vars *** *** ***",
        "token on stderr: ***", "***", "***",
        "urls postgresql://migrator:***@db.example/prod mysql://reader:***@src.example/shop "
        "postgresql://joe:***@h/db",
        "declared *** special ***",
        "***",  # base64 of DB_PASSWORD
        "YWJ***Y=",  # base64 of 'ab' + SOME_API_KEY: its ends depend on the bytes around
        "eG***",  # base64 of 'x' + CUTOVER_WORD (declared secret)
        "*** ***",  # SPECIAL_PASS URL-encoded twice
        "failing with ***"]
    first_run = next(data for name, data in everything.items()
                     if name.startswith("stdout of pipeline run ")).decode()
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


def test_a_pipeline_secret_pasted_into_an_approval_reason_is_masked(tmp_path: Path) -> None:
    """The issue's reproduction, alone: `approve --reason "pw is <a pipeline variable's
    secret value>"` stored the value (the masker came from the recorded, masked, definition),
    and `show`, `export` and the dashboard's JSON repeated it."""
    path = tmp_path / "p.yml"
    path.write_text(textwrap.dedent(f"""\
        stages: [s]
        variables: {{DEPLOY_SECRET: {DEPLOY_SECRET}}}
        jobs: {{gate: {{stage: s, command: "true", when: manual}}}}
        """))
    assert run_pt("pipeline", "run", path.name, "--run-id", "r", "--no-wait", cwd=tmp_path
                  ).returncode == 3
    approved = run_pt("pipeline", "approve", path.name, "--run-id", "r", "--job", "gate",
                      "--reason", f"pw is {DEPLOY_SECRET}", "--json", cwd=tmp_path)
    assert approved.returncode == 0, approved.stderr
    shown = [approved.stdout]
    for view in (("show", "--run-id", "r", "--json"), ("export", "--run-id", "r", "--format",
                                                        "json")):
        shown.append(run_pt("pipeline", *view, cwd=tmp_path).stdout)
    run_file = (tmp_path / ".pulsaride/pipeline-runs/r.jsonl").read_bytes()
    assert leaks(run_file) == [] and leaks("".join(shown).encode()) == []
    assert b'"reason":"pw is ***"' in run_file
