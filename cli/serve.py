"""`pt serve`: the live web dashboard."""

from __future__ import annotations

import os
from pathlib import Path

import click

from pulsaride.engine.errors import BadInputError
from pulsaride.engine.inputs import TOKEN_FILE_BYTES, read_bounded
from pulsaride.engine.layout import DEFAULT_STATE_DIR, StateDir
from pulsaride.engine.loader import load_pipeline_file
from pulsaride.web.security import MIN_TOKEN_LENGTH, Guard, is_loopback

from . import options

GRACEFUL_SHUTDOWN_SECONDS = 2


@click.command("serve")
@options.state_dir(
    "Where runs are kept [default: .pulsaride beside --pipeline, or ./.pulsaride].")
@options.pipeline_option("A pipeline file: its runs, its folder's transform files and its "
                         "variables (database URLs) feed the dashboard.")
@options.transforms_folder("Folder of the transform files for the health panel [default: "
                           "the pipeline's folder, or .].", default=None)
@options.target_url("Target database for the health panel.")
@options.source_url("Source database (for orphan hints).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True)
@click.option("--allow-remote", is_flag=True,
              help="Allow binding to an address other than loopback (needs a token; anyone "
                   "who has it sees the runs).")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME[:PORT]",
              help="Also answer requests for this Host name (repeatable); others get 421.")
@click.option("--token-file", type=click.Path(path_type=Path, dir_okay=False),
              help="Require this bearer token (the file's first line) on every request "
                   "[env PT_SERVE_TOKEN holds a token itself]; required beyond loopback.")
def serve_command(state_dir: Path | None, pipeline_file: Path | None, folder: Path | None,
                  target_url: str | None, source_url: str | None, host: str, port: int,
                  allow_remote: bool, allowed_hosts: tuple[str, ...],
                  token_file: Path | None) -> None:
    """Serve the live dashboard: runs, each run's DAG, the Migration Health panel, and a JSON
    API (/api/runs, /api/runs/ID, /api/health, /api/health/cutover: 200 only when GO).

    Only requests for the bound address (or an --allowed-host name) are answered. With a
    token, browsers open any page once with ?token=TOKEN (a session cookie follows) and
    scripts send Authorization: Bearer TOKEN."""
    import uvicorn  # noqa: PLC0415 - only this command needs the web stack

    from pulsaride.web.app import DashboardConfig, create_app  # noqa: PLC0415
    from pulsaride.web.health_panel import HealthSource  # noqa: PLC0415

    if not is_loopback(host) and not allow_remote:
        raise click.UsageError(f"{host} is not a loopback address; add --allow-remote to "
                               "serve the dashboard to other machines")
    token = _token(token_file)
    if not is_loopback(host) and token is None:
        raise BadInputError(f"serving on {host} needs a token: give --token-file FILE or set "
                            "PT_SERVE_TOKEN (e.g. from 'openssl rand -hex 32')")
    if pipeline_file is not None:
        for name, value in load_pipeline_file(pipeline_file).pipeline.variables.items():
            os.environ.setdefault(name, value)
    base = pipeline_file.absolute().parent if pipeline_file is not None else Path()
    state = StateDir((state_dir or base / DEFAULT_STATE_DIR).absolute())
    health = HealthSource(transforms=(folder or base).absolute(), target_url=target_url,
                          source_url=source_url, pipeline_file=pipeline_file)
    server: uvicorn.Server | None = None
    guard = Guard.for_binding(host, port, allowed_hosts, token)
    app = create_app(DashboardConfig(state=state, health=health, guard=guard, stopping=lambda: (
        bool(server is not None and server.should_exit))))
    if not is_loopback(host):
        click.echo(f"warning: serving on {host}: anyone who can reach it and has the token "
                   "sees the runs", err=True)
    needs = "; open it once with ?token=TOKEN" if token is not None else ""
    click.echo(f"pt serve: http://{host}:{port}/ (runs in {state.runs}{needs}); Ctrl-C to stop",
               err=True)
    # An open page holds a server-sent event stream; the streams end when the server is
    # asked to stop (stopping= above), and the timeout bounds whatever else is still open.
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS))
    server.run()


def _token(token_file: Path | None) -> str | None:
    """The bearer token: the first line of --token-file, else PT_SERVE_TOKEN, else None."""
    if token_file is not None:
        lines = read_bounded(token_file, TOKEN_FILE_BYTES, "token file").decode(
            "utf-8", "replace").splitlines()
        token, source = (lines[0].strip() if lines else ""), str(token_file)
    elif os.environ.get("PT_SERVE_TOKEN"):
        token, source = os.environ["PT_SERVE_TOKEN"].strip(), "PT_SERVE_TOKEN"
    else:
        return None
    if len(token) < MIN_TOKEN_LENGTH or not token.isprintable() or " " in token:
        raise BadInputError(f"{source}: the token must be at least {MIN_TOKEN_LENGTH} printable "
                            "characters without spaces (e.g. from 'openssl rand -hex 32')")
    return token
