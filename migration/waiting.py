"""The rows that wait in pulsaride_deferred as a graph: which parked row waits for which, and
the cycles they form (a store row waits for its manager, a staff row that waits for the
store; a row that waits for itself).

A cycle is found among rows, not among table rules: a chain of rows that ends at a parent
missing everywhere (3 waits for 2, 2 for 1, 1 for 99) is no cycle, whatever the rules of its
tables allow. The cycles are then named by their tables, each once.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass

import orjson
from sqlalchemy import Connection, select

from .canonical import key_value_text
from .graphs import strongly_connected
from .tables import DEFERRED
from .writer import loads

# Parked rows read to look for cycles (in id order): enough for any hint, bounded in memory.
PARKED_LIMIT = 200_000

Requirement = tuple[str, str, str]  # (parent table key, key column, normalised value)


@dataclass(frozen=True)
class ParkedRow:
    """One waiting row: its table (TableName.key), what it provides, what it needs."""

    id: str
    table: str
    payload: dict[str, object]
    requirements: tuple[Requirement, ...]


@dataclass(frozen=True)
class Cycle:
    """Tables whose waiting rows wait for each other: `path` starts and ends at one table."""

    path: tuple[str, ...]
    tables: tuple[str, ...]  # every table of the rows' cycles (a path may not pass them all)
    rows: int


class Waiting:
    """The parked rows, and which of them provides which parent key."""

    def __init__(self, rows: Iterable[ParkedRow]) -> None:
        self.rows = list(rows)
        needed = {(parent, key) for row in self.rows for parent, key, _ in row.requirements}
        self.provides: dict[Requirement, list[str]] = defaultdict(list)
        for row in self.rows:
            for parent, key in needed:
                value = row.payload.get(key) if parent == row.table else None
                if value is not None:
                    self.provides[(parent, key, key_value_text(value))].append(row.id)

    @classmethod
    def read(cls, connection: Connection, limit: int = PARKED_LIMIT) -> Waiting:
        """The first `limit` rows of pulsaride_deferred."""
        result = connection.execute(
            select(DEFERRED.c.id, DEFERRED.c.target_table, DEFERRED.c.payload,
                   DEFERRED.c.requirements).order_by(DEFERRED.c.id).limit(limit))
        return cls(ParkedRow(str(id_), table, loads(payload),
                             tuple((str(p), str(k), key_value_text(v))
                                   for p, k, v in orjson.loads(requirements)))
                   for id_, table, payload, requirements in result)

    def parked(self, table: str, key: str, value: object) -> bool:
        """Whether a waiting row of `table` has `key` = `value`."""
        return (table, key, key_value_text(value)) in self.provides

    def cycles(self) -> list[Cycle]:
        """The cycles of waiting rows, named by their tables (one per set of tables)."""
        graph = {row.id: sorted({other for need in row.requirements
                                 for other in self.provides.get(need, ())})
                 for row in self.rows}
        table_of = {row.id: row.table for row in self.rows}
        found: dict[tuple[str, ...], tuple[tuple[str, ...], set[str], int]] = {}
        for component in strongly_connected(graph):
            members = set(component)
            if len(component) == 1 and component[0] not in graph[component[0]]:
                continue  # a row waiting for no waiting row of its own cycle
            edges: dict[str, set[str]] = defaultdict(set)
            for row in component:
                edges[table_of[row]] |= {table_of[o] for o in graph[row] if o in members}
            path = table_cycle(edges)
            _path, tables, rows = found.get(path, (path, set(), 0))
            found[path] = (path, tables | set(edges), rows + len(component))
        return [Cycle(path, tuple(sorted(tables)), rows)
                for path, tables, rows in (found[p] for p in sorted(found))]


def table_cycle(edges: dict[str, set[str]]) -> tuple[str, ...]:
    """A shortest cycle through the first table (in sorted order) of a strongly connected
    table graph, as a path that ends where it starts: (a, b, a), or (a, a) for a table whose
    rows wait for rows of itself."""
    start = min(edges)
    if start in edges[start]:
        return (start, start)
    before: dict[str, str] = {}
    todo = deque([start])
    while todo:
        table = todo.popleft()
        for parent in sorted(edges.get(table, ())):
            if parent == start:
                path = [table]
                while path[-1] != start:
                    path.append(before[path[-1]])
                return (*reversed(path), start)
            if parent not in before:
                before[parent] = table
                todo.append(parent)
    raise ValueError("the table graph has no cycle through its first table")
