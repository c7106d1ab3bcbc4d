"""A damaged state dir never takes `pt serve` down, and the server serves nothing but runs.

- A run file damaged in the middle, one with a torn tail, one garbled from its first line and
  an empty one: each shows as such on its page (in a real browser), the runs page still lists
  every run, and the API answers 409 for what cannot be replayed.
- A run damaged while its page is open: the page says so by itself.
- Any damage at all (hypothesis: garbage lines, truncations, and well-formed lines with odd
  values and a recomputed hash chain) gives an answer, never a server error.
- Unknown ids are 404; path-like ids (encoded slashes, dot segments, very long ids) are
  refused and reach no file outside the runs folder.
- Binding a non-loopback address needs --allow-remote (exit 2 without it; a warning with it).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from playwright.sync_api import Page, expect

from tests.web.conftest import (
    RunsWorld,
    Server,
    pt,
    run_pipeline,
    screenshot,
)

TORN = b'{"seq":9,"event":"JobStar'
UNTOUCHED = ("mid-1", "torn-1", "garbled-1", "empty-1", "ok-1")
SECRET = "top secret: not a run"


@dataclass(frozen=True)
class Damaged:
    server: Server
    state: Path
    world: RunsWorld
    before: dict[str, bytes]  # the damaged files as the fixture left them

    @property
    def runs(self) -> Path:
        return self.state / "pipeline-runs"

    def run_file(self, run_id: str) -> Path:
        return self.runs / f"{run_id}.jsonl"


def damage_line(path: Path, index: int, replacement: bytes) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    lines[index] = replacement + b"\n"
    path.write_bytes(b"".join(lines))


@pytest.fixture(scope="module")
def damaged(serve: Any, runs_world: RunsWorld,
            tmp_path_factory: pytest.TempPathFactory) -> Damaged:
    state = runs_world.copy(tmp_path_factory.mktemp("robust") / "state")
    build = runs_world.pipelines["build"]
    for run_id in ("mid-1", "torn-1", "victim-1", "fuzz-1"):
        run_pipeline(build, state, run_id, user="mallory", code=0)
    runs = state / "pipeline-runs"
    damage_line(runs / "mid-1.jsonl", 3, b'{"seq":4,"event":"JobSucc#garbage#')
    with (runs / "torn-1.jsonl").open("ab") as handle:
        handle.write(TORN)
    good = (runs / "ok-1.jsonl").read_bytes()
    (runs / "garbled-1.jsonl").write_bytes(b"\x00\xff garbage\n" + good.split(b"\n", 1)[1])
    (runs / "empty-1.jsonl").write_bytes(b"")
    # Things a path-like id would reach if it were not refused.
    (state / "outside.jsonl").write_text(SECRET)
    (runs / "a").mkdir()
    (runs / "a" / "b.jsonl").write_bytes(good)
    server: Server = serve("--state-dir", state)
    before = {name: (runs / f"{name}.jsonl").read_bytes() for name in UNTOUCHED}
    return Damaged(server, state, runs_world, before)


# ---- damaged files, in the browser -------------------------------------------------------------


def test_the_runs_page_lists_every_run_and_marks_the_damaged_ones(damaged: Damaged,
                                                                  page: Page) -> None:
    files = sorted(p.stem for p in damaged.runs.glob("*.jsonl") if p.is_file())
    page.goto(damaged.server.url + "/")
    expect(page.locator("#runs tr[data-run]")).to_have_count(len(files))
    outcomes = dict(page.eval_on_selector_all(
        "#runs tr[data-run]", "rows => rows.map(r => [r.dataset.run, r.dataset.outcome])"))
    assert sorted(outcomes) == files
    assert {run for run, outcome in outcomes.items() if outcome == "damaged"} == {
        "mid-1", "garbled-1", "empty-1"}
    assert outcomes["torn-1"] == "succeeded"  # a torn tail is set aside, not fatal
    mid = page.locator('#runs tr[data-run="mid-1"] .damaged')
    expect(mid).to_contain_text("line 4")
    expect(page.locator('#runs tr[data-run="empty-1"] .damaged')).to_contain_text(
        "no complete line")
    screenshot(page, "runs-damaged")


def test_a_run_damaged_in_the_middle_says_so_on_its_page(damaged: Damaged, page: Page) -> None:
    page.goto(damaged.server.url + "/runs/mid-1")
    notice = page.locator("#damaged")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("line 4")
    expect(notice).to_contain_text("damaged line")
    expect(notice).to_contain_text("pt pipeline verify")
    assert page.locator("svg.dag").count() == 0
    screenshot(page, "run-damaged")
    response = damaged.server.get("/api/runs/mid-1")
    assert response.status_code == 409
    assert "line 4" in response.json()["damaged"]
    assert damaged.server.get("/runs/mid-1/jobs/compile/log").status_code == 409
    assert damaged.server.get("/runs/mid-1/timeline").status_code == 409


def test_a_torn_tail_says_so_and_the_run_still_shows(damaged: Damaged, page: Page) -> None:
    page.goto(damaged.server.url + "/runs/torn-1")
    expect(page.locator("#run-state")).to_have_text("succeeded")
    notice = page.locator("#live div.damaged")
    expect(notice).to_contain_text(f"{len(TORN)} bytes after the last whole line")
    expect(notice).to_contain_text("torn write")
    assert page.locator("svg.dag g.job").count() == 3
    assert page.locator('svg.dag g.job[data-status="DONE"]').count() == 3
    screenshot(page, "run-torn")
    document = damaged.server.json("/api/runs/torn-1")
    assert document["torn_tail_bytes"] == len(TORN)
    assert document["state"] == "succeeded"


@pytest.mark.parametrize(("run_id", "problem"), [("garbled-1", "line 1: damaged line"),
                                                 ("empty-1", "holds no complete line")])
def test_a_run_file_unreadable_from_its_first_line_says_so(damaged: Damaged, page: Page,
                                                           run_id: str, problem: str) -> None:
    page.goto(damaged.server.url + f"/runs/{run_id}")
    expect(page.locator("#damaged")).to_contain_text(problem)
    response = damaged.server.get(f"/api/runs/{run_id}")
    assert response.status_code == 409
    assert problem in response.json()["damaged"]


def test_a_run_damaged_while_its_page_is_open_says_so_by_itself(damaged: Damaged,
                                                                page: Page) -> None:
    page.goto(damaged.server.url + "/runs/victim-1")
    expect(page.locator("#run-state")).to_have_text("succeeded")
    page.evaluate("window.__marker = 'before the damage'")
    damage_line(damaged.run_file("victim-1"), 2, b"not json at all")
    expect(page.locator("#damaged")).to_contain_text("line 3")
    assert page.evaluate("window.__marker") == "before the damage"
    assert damaged.server.alive()


# ---- any damage: an answer, never a server error -----------------------------------------------


def rechain(lines: list[bytes]) -> list[bytes]:
    """Recompute every `prev` so that only the edited values are wrong, not the chain."""
    out, prev = [], "0" * 64
    for line in lines:
        record = orjson.loads(line)
        record["prev"] = prev
        encoded = orjson.dumps(record)
        out.append(encoded)
        prev = hashlib.sha256(encoded).hexdigest()
    return out


INTEGERS = st.integers(min_value=-(2**63), max_value=2**63 - 1)  # what JSON lines hold
ODD_VALUES = st.one_of(
    st.none(), st.booleans(), INTEGERS, st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(["", "../../etc/passwd", "DONE", "2026-13-45T99:99:99Z", "ok-1", "\x00",
                     "<script>alert(1)</script>", "compile", "nope", "9999-12-31T23:59:59Z",
                     "../outside.jsonl", "../../outside.jsonl", "/etc/passwd"]),
    st.lists(INTEGERS, max_size=3), st.dictionaries(st.text(max_size=5), INTEGERS, max_size=2))


@st.composite
def damage(draw: st.DrawFn, good: bytes) -> bytes:
    """The bytes of a damaged copy of the run file `good`."""
    lines = good.split(b"\n")[:-1]
    kind = draw(st.sampled_from(["garbage", "truncate", "insert", "field"]))
    if kind == "garbage":
        index = draw(st.integers(0, len(lines) - 1))
        lines[index] = draw(st.binary(max_size=80)).replace(b"\n", b"")
        return b"\n".join(lines) + b"\n"
    if kind == "truncate":
        return good[:draw(st.integers(0, len(good) - 1))]
    if kind == "insert":
        at = draw(st.integers(0, len(good)))
        return good[:at] + draw(st.binary(min_size=1, max_size=40)) + good[at:]
    index = draw(st.integers(0, len(lines) - 1))
    record = orjson.loads(lines[index])
    field = draw(st.sampled_from(sorted(k for k in record if k != "prev")))
    record[field] = draw(ODD_VALUES)
    lines[index] = orjson.dumps(record)
    return b"\n".join(rechain(lines)) + b"\n"


def test_no_damage_makes_a_server_error(damaged: Damaged) -> None:
    target = damaged.run_file("fuzz-1")
    good = target.read_bytes()
    server = damaged.server

    @settings(max_examples=60, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=damage(good))
    def check(data: bytes) -> None:
        target.write_bytes(data)
        for path in ("/", "/api/runs", "/runs/fuzz-1", "/runs/fuzz-1/live", "/api/runs/fuzz-1",
                     "/runs/fuzz-1/timeline", "/runs/fuzz-1/jobs/compile/log"):
            response = server.get(path)
            assert response.status_code in (200, 404, 409), (path, response.status_code,
                                                             response.text[:300], data)
            assert SECRET not in response.text
            assert "root:" not in response.text

    try:
        check()
    finally:
        target.write_bytes(good)
    assert server.alive()
    assert "Traceback" not in server.output()


# ---- ids -------------------------------------------------------------------------------------


def test_an_unknown_run_id_is_a_404(damaged: Damaged) -> None:
    for path in ("/runs/never-was", "/api/runs/never-was", "/runs/never-was/live",
                 "/runs/never-was/timeline", "/runs/never-was/jobs/compile/log"):
        response = damaged.server.get(path)
        assert response.status_code == 404, path
    assert damaged.server.get("/api/runs/never-was").text == "no run never-was"


PATH_LIKE = [
    "/runs/..%2Foutside", "/api/runs/..%2Foutside", "/runs/..%2foutside/live",
    "/runs/a%2Fb", "/api/runs/a%2Fb", "/runs/a%2fb/live",
    "/runs/%2e%2e%2foutside", "/runs/%2E%2E", "/runs/..", "/runs/.",
    "/api/runs/..%2F..%2F..%2Fetc%2Fpasswd", "/runs/%2Fetc%2Fpasswd", "/api/runs/%2Fetc%2Fpasswd",
    "/runs/..%5Coutside", "/runs/.hidden", "/runs/ok-1%00", "/api/runs/ok-1%00.jsonl",
    "/runs/ok-1%2F..%2F..%2Foutside",
    "/runs/" + "a" * 65, "/api/runs/" + "b" * 300, "/runs/" + "c" * 8000,
    "/runs/ok-1/jobs/..%2F..%2F..%2Foutside.jsonl/log",
    "/runs/ok-1/jobs/%2E%2E/log",
    "/events?run=..%2Foutside", "/events?run=a%2Fb", "/events?run=" + "d" * 300,
]


@pytest.mark.parametrize("target", PATH_LIKE, ids=lambda t: t[:48])
def test_a_path_like_id_is_refused(damaged: Damaged, target: str) -> None:
    status, body = damaged.server.raw(target)
    assert status in (400, 404, 414), (target, status, body[:200])
    assert SECRET.encode() not in body
    assert b"root:" not in body  # /etc/passwd


def test_pages_are_compressed_and_event_streams_are_not(damaged: Damaged) -> None:
    server = damaged.server
    page = server.client.get("/", headers={"Accept-Encoding": "gzip"})
    assert page.status_code == 200
    assert page.headers.get("content-encoding") == "gzip"
    assert "<html" in page.text  # decoded by the client
    with server.client.stream("GET", "/events", headers={"Accept-Encoding": "gzip"}) as events:
        assert events.headers["content-type"].startswith("text/event-stream")
        assert "content-encoding" not in events.headers


def test_the_server_outlives_all_of_it(damaged: Damaged) -> None:
    for target in PATH_LIKE:
        damaged.server.raw(target)
    assert damaged.server.alive()
    assert damaged.server.json("/api/runs/ok-1")["state"] == "succeeded"


# ---- binding -----------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10"])
def test_a_non_loopback_host_needs_allow_remote(host: str, tmp_path: Path) -> None:
    result = pt("serve", "--host", host, "--port", "9", "--state-dir", tmp_path, cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert f"{host} is not a loopback address" in result.stderr
    assert "--allow-remote" in result.stderr
    assert "Traceback" not in result.stderr


def test_allow_remote_serves_with_a_warning(serve: Any, damaged: Damaged,
                                           tmp_path: Path) -> None:
    token = "remote-token-0123456789abcdef"
    (tmp_path / "token").write_text(token)
    server: Server = serve("--host", "0.0.0.0", "--allow-remote", "--state-dir", damaged.state,
                           "--token-file", tmp_path / "token", token=token)
    assert server.json("/api/runs/ok-1")["state"] == "succeeded"
    assert "warning: serving on 0.0.0.0" in server.output()
    assert "anyone who can reach it and has the token sees the runs" in server.output()
    server.stop()


def test_ctrl_c_stops_the_server_even_with_a_page_open(serve: Any, damaged: Damaged,
                                                       page: Page) -> None:
    server: Server = serve("--state-dir", damaged.state)
    page.goto(server.url + "/runs/ok-1")  # holds a server-sent event stream open
    expect(page.locator("#run-state")).to_have_text("succeeded")
    server.stop()  # Ctrl-C; fails unless the process ends within STOP_TIMEOUT
    assert "Traceback" not in server.output()
    assert "ERROR" not in server.output()


def test_serving_never_repairs_or_rewrites_a_run_file(damaged: Damaged) -> None:
    for path in PATH_LIKE[:3]:
        damaged.server.raw(path)
    for run_id in UNTOUCHED:
        damaged.server.get(f"/runs/{run_id}")
    assert {name: damaged.run_file(name).read_bytes() for name in UNTOUCHED} == damaged.before
    assert damaged.run_file("torn-1").read_bytes().endswith(TORN)
    assert (damaged.state / "outside.jsonl").read_text() == SECRET
