"""The dashboard's JSON API over real HTTP, against `pt serve` processes.

- The API says what the CLI says: /api/runs is `pt pipeline history --json` (newest first),
  /api/runs/{id} is `pt pipeline status --json` plus the timeline of `pt pipeline show --json`,
  /api/health is `pt health --json`.
- /api/health/cutover answers 200 only on GO, 503 otherwise, so that `curl -f` (run here as a
  real process) gates a CI step on it.
- Every response conforms to /openapi.json: schemathesis generates requests from the document
  and checks status codes, content types and bodies; the real runs are checked explicitly.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from pulsaride.web.openapi import openapi_document
from tests.web.conftest import HealthWorld, RunsWorld, Server, pt

CURL = shutil.which("curl")


@pytest.fixture(scope="module")
def state(runs_world: RunsWorld, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return runs_world.copy(tmp_path_factory.mktemp("api") / "state")


@pytest.fixture(scope="module")
def nogo(serve: Any, state: Path, health_world: HealthWorld) -> Server:
    """The server of the module: the runs, and a target whose verdict is NO-GO."""
    server: Server = serve("--state-dir", state,
                           *health_world.serve_args(health_world.all_transforms))
    return server


def pt_json(*args: str | Path, cwd: Path) -> Any:
    result = pt(*args, cwd=cwd)
    assert result.stdout, (args, result.returncode, result.stderr)
    return orjson.loads(result.stdout)


# ---- the API says what the CLI says ------------------------------------------------------------


def test_api_runs_is_the_history_newest_first(nogo: Server, state: Path,
                                              runs_world: RunsWorld) -> None:
    history = pt_json("pipeline", "history", "--state-dir", state, "--json",
                      cwd=runs_world.folder)
    document = nogo.json("/api/runs")
    assert document["schema"] == history["schema"] == "pulsaride.history/1"
    assert document["runs"] == list(reversed(history["runs"]))
    assert {r["pipeline_run_id"]: (r["outcome"], r["started_by"]) for r in document["runs"]} \
        == {run_id: (outcome, user) for run_id, (_, user, outcome) in runs_world.runs.items()}


@pytest.mark.parametrize("run_id", ["ok-1", "broken-1", "gate-1"])
def test_api_run_is_the_status_document_and_the_timeline(nogo: Server, state: Path,
                                                         runs_world: RunsWorld,
                                                         run_id: str) -> None:
    pipeline = runs_world.pipelines[runs_world.runs[run_id][0]]
    status = pt_json("pipeline", "status", pipeline, "--state-dir", state, "--run-id", run_id,
                     "--json", cwd=runs_world.folder)
    shown = pt_json("pipeline", "show", pipeline, "--state-dir", state, "--run-id", run_id,
                    "--json", cwd=runs_world.folder)
    document = nogo.json(f"/api/runs/{run_id}")
    timeline = document.pop("timeline")
    assert document == status
    assert timeline == shown["entries"]
    assert document["state"] == runs_world.runs[run_id][2]


def test_api_health_is_pt_health(nogo: Server, health_world: HealthWorld) -> None:
    _code, truth = health_world.health(health_world.all_transforms)
    assert nogo.json("/api/health") == truth


def test_an_unknown_run_is_a_404(nogo: Server) -> None:
    for path in ("/api/runs/no-such-run", "/runs/no-such-run", "/runs/no-such-run/live",
                 "/runs/ok-1/jobs/no-such-job/log", "/runs/no-such-run/jobs/compile/log"):
        assert nogo.get(path).status_code == 404, path


# ---- the cutover gate --------------------------------------------------------------------------


def curl_f(url: str) -> subprocess.CompletedProcess[str]:
    """`curl -f URL`, as a CI step would gate on it."""
    assert CURL is not None, "curl is needed (the cutover gate is meant for curl -f)"
    return subprocess.run([CURL, "-sS", "-f", url], capture_output=True, text=True,
                          timeout=60, check=False)


def test_cutover_answers_503_when_the_verdict_is_no_go(nogo: Server) -> None:
    response = nogo.get("/api/health/cutover")
    assert response.status_code == 503
    assert response.json()["verdict"] == "NO-GO"
    assert "children: NO-GO" in response.json()["reasons"]
    gate = curl_f(nogo.url + "/api/health/cutover")
    assert gate.returncode == 22, (gate.returncode, gate.stderr)  # curl: HTTP error >= 400
    assert "503" in gate.stderr


def test_cutover_answers_200_when_the_verdict_is_go(serve: Any, state: Path,
                                                   health_world: HealthWorld) -> None:
    code, truth = health_world.health(health_world.go_transforms)
    assert (code, truth["verdict"]) == (0, "GO")
    server: Server = serve("--state-dir", state,
                           *health_world.serve_args(health_world.go_transforms))
    response = server.get("/api/health/cutover")
    assert response.status_code == 200
    assert response.json() == {"verdict": "GO", "reasons": []}
    assert server.json("/api/health") == truth
    gate = curl_f(server.url + "/api/health/cutover")
    assert gate.returncode == 0, gate.stderr
    assert orjson.loads(gate.stdout)["verdict"] == "GO"


def test_cutover_answers_503_on_caution_and_without_a_target(
        serve: Any, state: Path, health_world: HealthWorld, tmp_path: Path) -> None:
    caution: Server = serve("--state-dir", state,
                            *health_world.serve_args(health_world.caution_transforms))
    response = caution.get("/api/health/cutover")
    assert (response.status_code, response.json()["verdict"]) == (503, "CAUTION")
    assert curl_f(caution.url + "/api/health/cutover").returncode == 22

    (tmp_path / "empty").mkdir()
    blind: Server = serve("--state-dir", state, "--transforms", tmp_path / "empty",
                          cwd=tmp_path)
    response = blind.get("/api/health/cutover")
    assert response.status_code == 503
    assert response.json()["verdict"] != "GO"
    assert any("target" in reason for reason in response.json()["reasons"])
    assert curl_f(blind.url + "/api/health/cutover").returncode == 22
    assert blind.get("/api/runs").status_code == 200  # the rest of the dashboard still works


# ---- conformance to the OpenAPI document -------------------------------------------------------


@pytest.fixture(scope="module")
def api_schema(nogo: Server) -> Any:
    return schemathesis.openapi.from_url(nogo.url + "/openapi.json")


def test_the_openapi_document_describes_every_api_route(nogo: Server) -> None:
    document = nogo.json("/openapi.json")
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {"/api/runs", "/api/runs/{run_id}", "/api/health",
                                      "/api/health/cutover"}
    for path, item in document["paths"].items():
        assert set(item) == {"get"}, path
        assert "200" in item["get"]["responses"], path


@pytest.mark.parametrize("run_id", ["ok-1", "broken-1", "gate-1"])
def test_real_runs_conform_to_the_openapi_document(api_schema: Any, nogo: Server,
                                                   run_id: str) -> None:
    case = api_schema["/api/runs/{run_id}"]["GET"].Case(path_parameters={"run_id": run_id})
    response = case.call(base_url=nogo.url)
    assert response.status_code == 200
    case.validate_response(response)


# The document the server serves is the one built here (checked above); generating the tests
# from it at import time avoids schemathesis' lazy fixture loader, which pytest 9 breaks.
schema = schemathesis.openapi.from_dict(openapi_document())


def test_the_served_document_is_the_one_the_tests_are_generated_from(nogo: Server) -> None:
    assert nogo.json("/openapi.json") == openapi_document()


@schema.parametrize()
@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_generated_requests_conform_to_the_openapi_document(case: Any, nogo: Server) -> None:
    # 503 is the documented answer of the health endpoints when the verdict is not GO: not
    # a server error here.
    excluded = [not_a_server_error] if case.path.startswith("/api/health") else []
    case.call_and_validate(base_url=nogo.url, excluded_checks=excluded)
