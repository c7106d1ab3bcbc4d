"""The pipeline DAG as an SVG picture: stages as columns, jobs as boxes coloured by status,
`needs` as arrows. Pure: from a status document to SVG text (escaped; no scripts)."""

from __future__ import annotations

from graphlib import TopologicalSorter
from html import escape
from typing import Any

BOX_W, BOX_H = 170, 34
GAP_X, GAP_Y, LANE = 70, 14, 26
TOP, LEFT = 40, 20
COLOURS = {
    "DONE": "#2e7d32", "FAILED": "#c62828", "RUNNING": "#1565c0", "PENDING": "#9e9e9e",
    "WAITING": "#ef6c00", "APPROVED": "#6a1b9a", "RETRYING": "#f9a825", "SKIPPED": "#757575",
    "CANCELLED": "#4e342e", "INTERRUPTED": "#ad1457",
}


def render_dag(document: dict[str, Any]) -> str:
    """SVG of the run's stages and jobs (a status document from projections.status)."""
    places = _layout(document)
    width = max((x + BOX_W for x, _ in places.values()), default=LEFT) + LEFT
    height = max((y + BOX_H for _, y in places.values()), default=TOP) + LEFT
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="dag" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="pipeline DAG">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
        'fill="#607d8b"/></marker></defs>',
    ]
    parts += _stage_titles(document, places)
    parts += _arrows(document, places)
    parts += _boxes(document, places)
    parts.append("</svg>")
    return "\n".join(parts)


def _layout(document: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """Top-left corner of every job box: stage columns, widened where jobs of one stage
    need each other (a sub-column per depth), rows in file order."""
    places: dict[str, tuple[int, int]] = {}
    x = LEFT
    for stage in document["stages"]:
        names = {job["name"] for job in stage["jobs"]}
        depth = _depths(stage["jobs"], names)
        rows: dict[int, int] = {}
        for job in stage["jobs"]:
            column = depth[job["name"]]
            row = rows.get(column, 0)
            rows[column] = row + 1
            places[job["name"]] = (x + column * (BOX_W + LANE), TOP + row * (BOX_H + GAP_Y))
        columns = max(depth.values(), default=0) + 1
        x += columns * BOX_W + (columns - 1) * LANE + GAP_X
    return places


def _depths(jobs: list[dict[str, Any]], names: set[str]) -> dict[str, int]:
    """How many same-stage needs deep each job is (0: none in its stage)."""
    graph = {job["name"]: [n for n in job["needs"] if n in names] for job in jobs}
    depth: dict[str, int] = {}
    for name in TopologicalSorter(graph).static_order():
        depth[name] = 1 + max((depth[n] for n in graph.get(name, ())), default=-1)
    return depth


def _stage_titles(document: dict[str, Any], places: dict[str, tuple[int, int]]) -> list[str]:
    titles = []
    for stage in document["stages"]:
        xs = [places[j["name"]][0] for j in stage["jobs"]]
        x = min(xs, default=LEFT)
        titles.append(f'<text class="stage" x="{x}" y="{TOP - 14}" font-size="14" '
                      f'font-weight="bold" fill="#37474f">{escape(stage["name"])}</text>')
    return titles


def _arrows(document: dict[str, Any], places: dict[str, tuple[int, int]]) -> list[str]:
    arrows = []
    for stage in document["stages"]:
        for job in stage["jobs"]:
            x2, y2 = places[job["name"]]
            for need in job["needs"]:
                if need not in places:
                    continue
                x1, y1 = places[need]
                start, end = (x1 + BOX_W, y1 + BOX_H // 2), (x2, y2 + BOX_H // 2)
                middle = (start[0] + end[0]) // 2
                arrows.append(
                    f'<path class="need" d="M {start[0]} {start[1]} C {middle} {start[1]}, '
                    f'{middle} {end[1]}, {end[0]} {end[1]}" fill="none" stroke="#607d8b" '
                    f'stroke-width="1.3" marker-end="url(#arrow)"/>')
    return arrows


def _boxes(document: dict[str, Any], places: dict[str, tuple[int, int]]) -> list[str]:
    boxes = []
    for stage in document["stages"]:
        for job in stage["jobs"]:
            x, y = places[job["name"]]
            status = job["status"]
            colour = COLOURS.get(status, "#9e9e9e")
            gate = ' stroke="#ff9800" stroke-width="4"' if status == "WAITING" else \
                ' stroke="#263238" stroke-width="1"'
            label = escape(job["name"] if len(job["name"]) <= 20 else job["name"][:19] + "…")
            boxes.append(
                f'<g class="job status-{status.lower()}" data-job="{escape(job["name"])}" '
                f'data-status="{status}"><title>{escape(job["name"])}: {status}</title>'
                f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6" '
                f'fill="{colour}"{gate}/>'
                f'<text x="{x + 8}" y="{y + 15}" font-size="12" fill="white">{label}</text>'
                f'<text x="{x + 8}" y="{y + 28}" font-size="10" fill="white">{status}</text>'
                f"</g>")
    return boxes
