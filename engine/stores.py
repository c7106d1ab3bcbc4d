"""Picking a run store: the JSONL files of a state dir, or a shared PostgreSQL database."""

from __future__ import annotations

from .errors import BadInputError
from .jsonl_store import JsonlStore
from .layout import StateDir
from .runstore import RunStore

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_shared_store(url: str) -> bool:
    """True if `url` names a shared PostgreSQL store."""
    return url.startswith(POSTGRES_SCHEMES)


def open_store(url: str | None, state: StateDir) -> RunStore:
    """The store `url` names (a postgresql:// URL), else the JSONL files of `state`."""
    if not url:
        return JsonlStore(state)
    if is_shared_store(url):
        from .pgstore import PostgresStore  # noqa: PLC0415 - psycopg only when asked for

        return PostgresStore.connect(url)
    raise BadInputError(f"unsupported store {url!r}: give a postgresql://USER@HOST:PORT/DB URL, "
                        "or nothing for the JSONL files of the state dir")
