"""`pt serve`: the live web dashboard."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import click

from pulsaride.engine.layout import DEFAULT_STATE_DIR, StateDir
from pulsaride.engine.loader import load_pipeline_file

GRACEFUL_SHUTDOWN_SECONDS = 2


@click.command("serve")
@click.option("--state-dir", type=click.Path(path_type=Path, file_okay=False),
              envvar="PT_STATE_DIR",
              help="Where runs are kept [default: .pulsaride beside --pipeline, or ./.pulsaride].")
@click.option("--pipeline", "pipeline_file", type=click.Path(path_type=Path, dir_okay=False),
              help="A pipeline file: its runs, its folder's transform files and its variables "
                   "(database URLs) feed the dashboard.")
@click.option("--transforms", "folder", type=click.Path(path_type=Path, file_okay=False),
              help="Folder of the transform files for the health panel [default: the "
                   "pipeline's folder, or .].")
@click.option("--target-url", metavar="URL", help="Target database for the health panel.")
@click.option("--source-url", metavar="URL", help="Source database (for orphan hints).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True)
@click.option("--allow-remote", is_flag=True,
              help="Allow binding to an address other than loopback (anyone who can reach "
                   "it sees the runs).")
def serve_command(state_dir: Path | None, pipeline_file: Path | None, folder: Path | None,
                  target_url: str | None, source_url: str | None, host: str, port: int,
                  allow_remote: bool) -> None:
    """Serve the live dashboard: runs, each run's DAG, the Migration Health panel, and a JSON
    API (/api/runs, /api/runs/ID, /api/health, /api/health/cutover: 200 only when GO)."""
    import uvicorn  # noqa: PLC0415 - only this command needs the web stack

    from pulsaride.web.app import DashboardConfig, create_app  # noqa: PLC0415
    from pulsaride.web.health import HealthSource  # noqa: PLC0415

    if not _loopback(host) and not allow_remote:
        raise click.UsageError(f"{host} is not a loopback address; add --allow-remote to "
                               "serve the dashboard to other machines")
    if pipeline_file is not None:
        for name, value in load_pipeline_file(pipeline_file).pipeline.variables.items():
            os.environ.setdefault(name, value)
    base = pipeline_file.absolute().parent if pipeline_file is not None else Path()
    state = StateDir((state_dir or base / DEFAULT_STATE_DIR).absolute())
    health = HealthSource(transforms=(folder or base).absolute(), target_url=target_url,
                          source_url=source_url, pipeline_file=pipeline_file)
    server: uvicorn.Server | None = None
    app = create_app(DashboardConfig(state=state, health=health, stopping=lambda: bool(
        server is not None and server.should_exit)))
    if not _loopback(host):
        click.echo(f"warning: serving on {host}: anyone who can reach it sees the runs",
                   err=True)
    click.echo(f"pt serve: http://{host}:{port}/ (runs in {state.runs}); Ctrl-C to stop",
               err=True)
    # An open page holds a server-sent event stream; the streams end when the server is
    # asked to stop (stopping= above), and the timeout bounds whatever else is still open.
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS))
    server.run()


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
