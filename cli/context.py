"""What the root group hands every command as click's ctx.obj: the services, built once."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from pulsaride.engine.runner import RunObserver
    from pulsaride.engine.services import Identity, Services


def _tool_bin() -> Path | None:
    """The folder of the running `pt`, put first on the jobs' PATH."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "pt" and argv0.exists():
        return argv0.resolve().parent
    beside_python = Path(sys.executable).parent / "pt"
    return beside_python.parent if beside_python.exists() else None


@dataclass
class Pt:
    """The context object of `pt` (tests pass their own with CliRunner.invoke(obj=...))."""

    # Built on first use: the engine's operations take a quarter of a second to import, which
    # `pt validate` and `pt migrate` (run once per table by a pipeline) do not need.
    base: Services | None = None
    tool_bin: Path | None = field(default_factory=_tool_bin)

    def services(self, *, observer: RunObserver | None = None, identity: Identity | None = None,
                 seal_key: Ed25519PrivateKey | None = None) -> Services:
        """The services, with what one command adds: its observer, identity or seal key."""
        if self.base is None:
            from pulsaride.engine.services import Services  # noqa: PLC0415

            self.base = Services()
        services = self.base
        if observer is not None:
            services = replace(services, observer=observer)
        if identity is not None:
            services = replace(services, identity=identity)
        if seal_key is not None:
            services = replace(services, seal_key=seal_key)
        return services


pass_pt = click.make_pass_decorator(Pt, ensure=True)
"""Pass the context object as the command's first argument (made if no root group ran)."""
