"""`objects-to-review.md` and `.json`: everything the scaffold did not carry over as it is —
views, triggers, routines, indexes and checks it could not write, defaults it dropped,
spatial columns kept as WKB, zero dates, renamed identifiers — so nothing is silently lost.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson

from .scaffold_plan import Plan, ReviewItem

_TITLES = {
    "view": "Views", "trigger": "Triggers", "procedure": "Procedures",
    "function": "Functions", "index": "Indexes", "check": "Check constraints",
    "default": "Defaults", "foreign-key": "Foreign keys", "spatial": "Spatial columns",
    "zero-dates": "Zero dates", "on-update": "ON UPDATE columns", "column": "Columns",
    "table": "Tables", "renamed": "Renamed identifiers",
}


def review_items(plan: Plan) -> list[ReviewItem]:
    """The plan's review items, with the renamed identifiers."""
    renamed = [ReviewItem("renamed", None, r.source, f"{what} {r.source!r} is {r.target!r} in "
                          f"the target: {r.why}") for what, r in plan.renamed]
    return [*plan.review, *renamed]


def counts(items: list[ReviewItem]) -> dict[str, int]:
    """How many items of each kind."""
    return dict(Counter(i.kind for i in items))


def review_json(items: list[ReviewItem]) -> str:
    """objects-to-review.json."""
    document = {"schema": "pulsaride.scaffold-review/1", "counts": counts(items),
                "items": [{"kind": i.kind, "table": i.table, "name": i.name, "what": i.what,
                           "definition": i.definition} for i in items]}
    return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n"


def review_markdown(items: list[ReviewItem], source: str) -> str:
    """objects-to-review.md."""
    lines = [f"# Objects to review ({source})", "",
             "pt scaffold could not carry these over as they are. Decide for each one; the "
             "cutover gate waits for this review.", ""]
    if not items:
        lines.append("Nothing to review.")
    for kind in dict.fromkeys(i.kind for i in items):
        lines += [f"## {_TITLES.get(kind, kind)}", ""]
        for item in (i for i in items if i.kind == kind):
            lines += _item(item)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _item(item: ReviewItem) -> list[str]:
    where = ".".join(_code(p) for p in (item.table, item.name) if p)
    head = f"- {where}: {item.what}" if where else f"- {item.what}"
    if not item.definition:
        return [head]
    fence = "```"
    while fence in item.definition:
        fence += "`"
    return [head, "", f"  {fence}sql", *(f"  {line}" for line in item.definition.splitlines()),
            f"  {fence}", ""]


def _code(text: str) -> str:
    ticks = "`"
    while ticks in text:
        ticks += "`"
    return f"{ticks}{text}{ticks}" if not text.startswith("`") else f"{ticks} {text} {ticks}"


def summary_counts(items: list[ReviewItem]) -> Any:
    """For `pt scaffold`'s summary: 'n views, m triggers, ...'."""
    return ", ".join(f"{n} {_TITLES.get(k, k).lower()}" for k, n in counts(items).items())
