"""The one time format of run files: RFC 3339, UTC, microseconds, `Z`."""

from __future__ import annotations

from datetime import UTC, datetime


def format_time(moment: datetime) -> str:
    """`moment` as written in run files, e.g. 2026-04-07T14:00:00.000000Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """Inverse of `format_time` (accepts any ISO 8601 time with an offset)."""
    return datetime.fromisoformat(text)
