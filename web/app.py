"""The dashboard: runs, a run's pipeline DAG, the Migration Health panel, and a JSON API.

Every page is a projection of the run files (and of the target's pt tables for health),
rendered on the server. Pages update themselves: a server-sent event fires when a run file
changes, with a 10-second poll as the fallback, and only the live part of a page is replaced.
A damaged run file shows as such; it never takes the server down.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from pulsaride.engine.errors import PulsarideError, RunIdError
from pulsaride.engine.jsonl_store import log_tail, runs_fingerprint
from pulsaride.engine.layout import StateDir, check_run_id
from pulsaride.engine.run_views import list_runs, read_run
from pulsaride.engine.services import utc_now
from pulsaride.projections.dag_svg import render_dag
from pulsaride.projections.documents import history_rows, run_document

from .health_panel import HealthSource
from .openapi import openapi_document
from .security import Guard, GuardMiddleware

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
STATIC = Path(__file__).with_name("static")
LOG_TAIL_BYTES = 16 * 1024
EVENT_POLL_SECONDS = 0.5
HEARTBEAT_SECONDS = 15.0
GZIP_MINIMUM_BYTES = 2048


@dataclass(frozen=True)
class DashboardConfig:
    """What the dashboard shows."""

    state: StateDir
    health: HealthSource | None = None
    # Who is answered (Host names, token); the default answers loopback names only.
    guard: Guard = field(default_factory=lambda: Guard.for_binding("127.0.0.1", 0))
    # True once the server is asked to stop: open event streams then end, so that Ctrl-C
    # does not wait for every browser tab to close.
    stopping: Callable[[], bool] = field(default=lambda: False)


def create_app(config: DashboardConfig) -> Starlette:
    """The ASGI application (see web/security.py for who it answers)."""
    app = Starlette(routes=[
        Route("/", _page(config, _runs_page)),
        Route("/runs/{run_id}", _page(config, _run_page)),
        Route("/runs/{run_id}/live", _page(config, _run_live)),
        Route("/runs/{run_id}/timeline", _page(config, _run_timeline)),
        Route("/runs/{run_id}/jobs/{job}/log", _page(config, _job_log)),
        Route("/live", _page(config, _runs_live)),
        Route("/events", _events(config)),
        Route("/api/runs", _page(config, _api_runs)),
        Route("/api/runs/{run_id}", _page(config, _api_run)),
        Route("/api/health", _page(config, _api_health)),
        Route("/api/health/cutover", _page(config, _api_cutover)),
        Route("/openapi.json", lambda _r: JSONResponse(openapi_document())),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ], middleware=[
        # Outermost: refusals (foreign Host, no token) get the security headers too.
        Middleware(GuardMiddleware, guard=config.guard),
        # A 1000-job page is about 800 kB of HTML and SVG, 51 kB compressed at level 1: it
        # matters to a viewer on another machine. Event streams are never compressed (the
        # middleware leaves text/event-stream alone).
        Middleware(GZipMiddleware, minimum_size=GZIP_MINIMUM_BYTES, compresslevel=1)])
    app.state.config = config
    return app


def _page(config: DashboardConfig, view: Any) -> Any:
    def endpoint(request: Request) -> Response:
        response: Response = view(config, request)
        return response

    return endpoint


# ---- pages -------------------------------------------------------------------------------------


def _runs_page(config: DashboardConfig, request: Request) -> Response:
    return TEMPLATES.TemplateResponse(request, "runs.html", _runs_context(config))


def _runs_live(config: DashboardConfig, request: Request) -> Response:
    return TEMPLATES.TemplateResponse(request, "runs_live.html", _runs_context(config))


def _runs_context(config: DashboardConfig) -> dict[str, Any]:
    rows = list(reversed(history_rows(list_runs(config.state))))
    return {"rows": rows, "state_dir": str(config.state.runs),
            "health": _health(config)}


def _run_page(config: DashboardConfig, request: Request) -> Response:
    return TEMPLATES.TemplateResponse(request, "run.html", _run_context(config, request))


def _run_live(config: DashboardConfig, request: Request) -> Response:
    return TEMPLATES.TemplateResponse(request, "run_live.html", _run_context(config, request))


def _run_context(config: DashboardConfig, request: Request) -> dict[str, Any]:
    run_id = _run_id(config, request)
    context: dict[str, Any] = {"run_id": run_id, "health": _health(config), "damaged": None}
    try:
        # The timeline (one row per line: thousands on a big run) loads when it is opened.
        document = run_document_of(config.state, run_id)
    except PulsarideError as exc:
        context["damaged"] = str(exc)
        return context
    context.update(document=document, dag=render_dag(document),
                   approve=_approve_command(document, config))
    return context


def _run_timeline(config: DashboardConfig, request: Request) -> Response:
    run_id = _run_id(config, request)
    try:
        document = run_document_of(config.state, run_id, with_timeline=True)
    except PulsarideError as exc:
        raise HTTPException(409, f"run {run_id} cannot be read: {exc}") from None
    return TEMPLATES.TemplateResponse(request, "_timeline.html", {"document": document})


def _approve_command(document: dict[str, Any], config: DashboardConfig) -> str:
    pipeline = document["pipeline"]["path"]
    state = f" --state-dir {config.state.root}" if config.state.root != Path(
        pipeline).parent / ".pulsaride" else ""
    return f"pt pipeline approve {pipeline}{state} --run-id {document['pipeline_run_id']} --job"


def _job_log(config: DashboardConfig, request: Request) -> Response:
    run_id = _run_id(config, request)
    job = request.path_params["job"]
    try:
        document = run_document_of(config.state, run_id)
    except PulsarideError as exc:
        raise HTTPException(409, f"run {run_id} cannot be read: {exc}") from None
    jobs = {j["name"]: j for s in document["stages"] for j in s["jobs"]}
    if job not in jobs:
        raise HTTPException(404, f"run {run_id} has no job {job}")
    tail = log_tail(config.state, jobs[job].get("log"), LOG_TAIL_BYTES)
    return PlainTextResponse(tail or "(no output)")


def run_document_of(state: StateDir, run_id: str, *, with_timeline: bool = False
                  ) -> dict[str, Any]:
    """The status document of one run (plus its timeline when asked)."""
    view = read_run(None, state.root, run_id, with_events=with_timeline)
    return run_document(view, utc_now(), with_timeline=with_timeline)


def _run_id(config: DashboardConfig, request: Request) -> str:
    run_id = request.path_params["run_id"]
    try:
        check_run_id(run_id)
    except RunIdError:
        raise HTTPException(400, "invalid run id") from None
    if not config.state.run_file(run_id).is_file():
        raise HTTPException(404, f"no run {run_id}")
    return str(run_id)


def _health(config: DashboardConfig) -> dict[str, Any] | None:
    if config.health is None:
        return None
    return config.health.document()


# ---- API ---------------------------------------------------------------------------------------


def _api_runs(config: DashboardConfig, _request: Request) -> Response:
    return JSONResponse({"schema": "pulsaride.history/1", "runs": list(reversed(
        history_rows(list_runs(config.state))))})


def _api_run(config: DashboardConfig, request: Request) -> Response:
    run_id = _run_id(config, request)
    try:
        return JSONResponse(run_document_of(config.state, run_id, with_timeline=True))
    except PulsarideError as exc:
        return JSONResponse({"pipeline_run_id": run_id, "damaged": str(exc)}, status_code=409)


def _api_health(config: DashboardConfig, _request: Request) -> Response:
    document = _health(config)
    if document is None:
        return JSONResponse({"verdict": "UNKNOWN", "reasons": [
            "no target database configured (pt serve --target-url or --pipeline)"]},
            status_code=503)
    return JSONResponse(document)


def _api_cutover(config: DashboardConfig, _request: Request) -> Response:
    document = _health(config)
    verdict = document["verdict"] if document else "UNKNOWN"
    reasons = document["reasons"] if document else ["no target database configured"]
    return JSONResponse({"verdict": verdict, "reasons": reasons},
                        status_code=200 if verdict == "GO" else 503)


# ---- live updates ------------------------------------------------------------------------------


def _events(config: DashboardConfig) -> Any:
    async def endpoint(request: Request) -> Response:
        run_id = request.query_params.get("run")
        if run_id is not None:
            try:
                check_run_id(run_id)
            except RunIdError:
                raise HTTPException(400, "invalid run id") from None
        return StreamingResponse(_changes(request, config, run_id),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    return endpoint


async def _changes(request: Request, config: DashboardConfig,
                   run_id: str | None) -> AsyncIterator[str]:
    """An event whenever the watched run file (or any run file) changes, until the client
    goes away or the server stops."""
    state = config.state
    last = runs_fingerprint(state, run_id)
    quiet = 0.0
    yield "retry: 2000\n\n"
    while not config.stopping() and not await request.is_disconnected():
        await asyncio.sleep(EVENT_POLL_SECONDS)
        current = runs_fingerprint(state, run_id)
        if current != last:
            last = current
            quiet = 0.0
            yield f"event: changed\ndata: {current}\n\n"
        else:
            quiet += EVENT_POLL_SECONDS
            if quiet >= HEARTBEAT_SECONDS:
                quiet = 0.0
                yield ": heartbeat\n\n"

