"""The foreign-key graph of the scaffolded tables: which tables form cycles, which edges close
them, and an order with parents first.

An edge is child -> parent. In the PostgreSQL flavour no foreign key exists during the copy
(post-data adds them), so only edges outside cycles order the copies (`needs:`). In the
SQLite flavour foreign keys are inline and checked row by row: the edges that close a cycle
(found by a depth-first walk, self-references included) are left out of the DDL, and every
other edge orders the copies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Edge = tuple[str, str]  # (child, parent)


@dataclass(frozen=True)
class Graph:
    """Tables (by target name, in a stable order) and their foreign-key edges."""

    tables: tuple[str, ...]
    edges: tuple[Edge, ...]

    def parents(self, child: str) -> list[str]:
        """The tables `child` refers to, in order, each once."""
        return list(dict.fromkeys(p for c, p in self.edges if c == child))


def cycles(graph: Graph) -> list[list[str]]:
    """Groups of tables that refer to each other in a circle (a table referring to itself
    is a group of one), by Tarjan's strongly connected components."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for parent in graph.parents(node):
            if parent not in index:
                visit(parent)
                low[node] = min(low[node], low[parent])
            elif parent in stack:
                low[node] = min(low[node], index[parent])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or (node, node) in graph.edges:
                found.append(sorted(group, key=graph.tables.index))

    for table in graph.tables:
        if table not in index:
            visit(table)
    return sorted(found, key=lambda g: graph.tables.index(g[0]))


def in_cycle(graph: Graph, groups: Sequence[Sequence[str]]) -> set[Edge]:
    """Edges between two tables of one cycle (self-references included)."""
    member = {table: number for number, group in enumerate(groups) for table in group}
    return {(c, p) for c, p in graph.edges if c in member and member.get(p) == member[c]}


def closing_edges(graph: Graph) -> set[Edge]:
    """Edges whose removal leaves no cycle: those leading back to a table still being
    walked, in a depth-first walk in table order."""
    state: dict[str, str] = {}  # "walking" | "done"
    closing: set[Edge] = set()

    def walk(node: str) -> None:
        state[node] = "walking"
        for parent in graph.parents(node):
            if state.get(parent) == "walking":
                closing.add((node, parent))
            elif parent not in state:
                walk(parent)
        state[node] = "done"

    for table in graph.tables:
        if table not in state:
            walk(table)
    return closing


def parents_first(graph: Graph, ignored: set[Edge]) -> list[str]:
    """The tables ordered so every parent (over edges not `ignored`) comes first."""
    placed: dict[str, None] = {}

    def place(node: str, visiting: set[str]) -> None:
        if node in placed or node in visiting:
            return
        visiting.add(node)
        for parent in graph.parents(node):
            if (node, parent) not in ignored:
                place(parent, visiting)
        placed[node] = None

    for table in graph.tables:
        place(table, set())
    return list(placed)
