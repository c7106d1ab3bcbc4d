"""What changed between two pipeline definitions (shown when a resume meets an edited file)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def definition_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Human-readable differences, one per line, empty when the definitions are equal."""
    changes = []
    if old.get("stages") != new.get("stages"):
        changes.append(f"stages: {old.get('stages')} → {new.get('stages')}")
    if old.get("variables") != new.get("variables"):
        changes.append("pipeline variables changed")
    old_jobs: Mapping[str, Any] = old.get("jobs", {})
    new_jobs: Mapping[str, Any] = new.get("jobs", {})
    for name in new_jobs.keys() - old_jobs.keys():
        changes.append(f"job '{name}' added")
    for name in old_jobs.keys() - new_jobs.keys():
        changes.append(f"job '{name}' removed")
    for name in old_jobs.keys() & new_jobs.keys():
        keys = sorted(k for k in old_jobs[name].keys() | new_jobs[name].keys()
                      if old_jobs[name].get(k) != new_jobs[name].get(k))
        if keys:
            changes.append(f"job '{name}': {', '.join(keys)} changed")
    return sorted(changes) if changes else ["file content changed (same definition)"]
