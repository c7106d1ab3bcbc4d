"""The whole flow on realistic schemas no file of pt describes, as a new user runs it:
`pt scaffold` → `pt pipeline run` (pre-data schema, preflight, copies, post-data, validations,
health) → approve the review and cutover gates → the pipeline succeeds → `pt health` says GO
and agrees with the validations → every table's content equals the source's, by value and
type, under the names the identifier rule gives; no hand edits anywhere.

Sources: the Sakila-like DVD rental (ENUM, SET, YEAR, unsigned keys, zero dates, blobs, a
staff <-> store cycle with a row-level cycle, views, triggers, routines, FULLTEXT, geometry,
JSON), the Chinook-like music store (CamelCase, a self-reference, non-ASCII text, SQLite's
unenforced types) and the hostile names, on SQLite, MariaDB and PostgreSQL.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.migration.conftest import Db, pt
from tests.migration.samples import SampleInfo, contents, dvdrental, musicstore
from tests.migration.samples.flow import column_map, scaffold_and_run, transforms
from tests.migration.samples.hostile import SENTINEL, SENTINEL_ROW, VICTIM, build_hostile

BUILDERS: dict[str, Callable[[Db], SampleInfo]] = {
    "dvdrental": dvdrental.build, "musicstore": musicstore.build, "hostile": build_hostile}
CASES = [
    ("dvdrental", "mariadb", "downcase"), ("dvdrental", "sqlite", "downcase"),
    ("dvdrental", "postgresql", "keep"), ("musicstore", "sqlite", "keep"),
    ("musicstore", "mariadb", "downcase"), ("musicstore", "postgresql", "downcase"),
    ("hostile", "sqlite", "keep"), ("hostile", "mariadb", "downcase"),
    ("hostile", "postgresql", "keep"),
]


def _source(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Db:
    if kind == "sqlite":
        return Db("sqlite", f"sqlite:///{tmp_path / 'source.db'}")
    return request.getfixturevalue("maria" if kind == "mariadb" else "pg2")


def _wkt(rows: list[tuple[Any, ...]], like: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Target rows with WKB points as WKT where the source has WKT: without PostGIS, pt keeps
    a geometry as its WKB (stated in the DDL and the review report)."""
    def point(value: Any, model: Any) -> Any:
        if isinstance(value, bytes) and isinstance(model, str) and model.startswith("POINT"):
            order = "<" if value[0] == 1 else ">"
            kind, x, y = struct.unpack(f"{order}Idd", value[1:21])
            assert kind == 1, kind
            return f"POINT({x!r} {y!r})"
        return value
    return [tuple(point(v, m) for v, m in zip(row, model, strict=True))
            for row, model in zip(rows, like, strict=False)] + rows[len(like):]


@pytest.mark.slow
@pytest.mark.parametrize(("sample", "kind", "identifiers"), CASES)
def test_a_real_schema_goes_from_scaffold_to_a_verified_cutover(
        sample: str, kind: str, identifiers: str, pg: Db, request: pytest.FixtureRequest,
        tmp_path: Path) -> None:
    source = _source(kind, request, tmp_path)
    info = BUILDERS[sample](source)
    folder = tmp_path / "migration"
    scaffold_and_run(folder, source, pg, identifiers)

    health = pt("health", "--require", "GO", "--json", "--target-url", pg.url,
                "--source-url", source.url, cwd=folder)
    assert health.returncode == 0, health.stdout + health.stderr
    verdicts = orjson.loads(health.stdout)
    assert verdicts["verdict"] == "GO"
    copied = transforms(folder)
    migrated = {column_map(t)[0] for t in copied}
    assert migrated == set(info.tables), migrated ^ set(info.tables)
    expected = contents(source, sorted(migrated))
    actual = contents(pg, sorted(column_map(t)[1] for t in copied))
    for document in copied:
        source_table, target_table, _, _ = column_map(document)
        assert _wkt(actual[target_table], expected[source_table]) == expected[source_table], \
            target_table
    assert all(t["verdict"] == "GO" for t in verdicts["tables"])
    if sample == "hostile":  # nothing an injected statement could have dropped is gone
        for db in (source, pg):
            assert contents(db, [SENTINEL, VICTIM]) == {
                SENTINEL: [SENTINEL_ROW], VICTIM: [SENTINEL_ROW]}
