"""Filters are translated to SQL and run by the source: on SQLite, PostgreSQL and MariaDB the same
filter selects exactly the same rows (NULL semantics, ISO date literals, quoting included)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Connection

from pulsaride.migration.source import SourceError, plan_source
from pulsaride.migration.transform import load_transform
from tests.migration.conftest import Db, create_table, pt_migrate, summary, write_transform

ROWS = [
    # ID, NAME,      QTY,  PRICE,  DAY,               AT,                               NOTE
    (1, "apple", 5, 1.5, date(2024, 1, 1), datetime(2024, 1, 1, 9, 0, 0), None),
    (2, "banana", 0, 0.25, date(2024, 2, 15), datetime(2024, 2, 15, 12, 0, 0), ""),
    (3, "cherry", 12, 10.0, date(2023, 12, 31), datetime(2023, 12, 31, 23, 59, 59), "x"),
    (4, "Date", None, 3.0, date(2024, 3, 1), None, None),
    (5, "elder", 7, 2.5, None, datetime(2024, 1, 1, 12, 0, 0), "y"),
    (6, "o'neil", 3, 99.99, date(2024, 1, 1), datetime(2024, 6, 30, 0, 0, 1), "it's"),
]

FILTERS = [
    ("QTY = 5", [1]),
    ("QTY != 5", [2, 3, 5, 6]),  # NULL is neither equal nor unequal
    ("QTY <> 5", [2, 3, 5, 6]),
    ("QTY < 5", [2, 6]),
    ("QTY <= 5", [1, 2, 6]),
    ("QTY > 5", [3, 5]),
    ("QTY >= 12", [3]),
    ("NAME IN ('apple', 'cherry', 'nothing')", [1, 3]),
    ("NAME NOT IN ('apple', 'cherry')", [2, 4, 5, 6]),
    ("QTY NOT IN (0, 5)", [3, 5, 6]),  # NULL NOT IN (...) is not true
    ("NOTE IS NULL", [1, 4]),
    ("NOTE IS NOT NULL", [2, 3, 5, 6]),  # '' is a value, not NULL
    ("NOTE = ''", [2]),
    ("QTY IS NULL OR QTY > 10", [3, 4]),
    ("QTY > 1 AND QTY < 10", [1, 5, 6]),
    ("(QTY > 1 AND QTY < 10) OR NAME = 'banana'", [1, 2, 5, 6]),
    ("QTY > 1 AND (QTY < 10 OR NAME = 'banana')", [1, 5, 6]),
    ("NOT QTY = 5", [2, 3, 5, 6]),
    ("NOT (NAME = 'apple' OR NAME = 'banana')", [3, 4, 5, 6]),
    ("NAME = 'o''neil'", [6]),
    ("NOTE = 'it''s'", [6]),
    ("DAY = '2024-01-01'", [1, 6]),
    ("DAY >= '2024-01-01'", [1, 2, 4, 6]),
    ("DAY < '2024-01-01'", [3]),
    ("DAY > '2024-01-01' AND DAY <= '2024-03-01'", [2, 4]),
    ("DAY IS NULL", [5]),
    ("AT >= '2024-01-01T12:00:00'", [2, 5, 6]),
    ("AT < '2024-01-01 12:00:00'", [1, 3]),
    ("PRICE >= 2.5", [3, 4, 5, 6]),
    ("PRICE < 1", [2]),
    ("QTY * 2 > 10", [3, 5]),
    ("QTY + 1 = 6", [1]),
    ("upper(NAME) = 'DATE'", [4]),
    ("lower(NAME) IN ('date', 'elder')", [4, 5]),
    ("trim(NAME) = 'apple'", [1]),
    ("coalesce(NOTE, 'none') = 'none'", [1, 4]),
    ("nullif(QTY, 0) IS NULL", [2, 4]),
    ("i.QTY = 7", [5]),  # alias-qualified
    ("qty = 7 AND name = 'elder'", [5]),  # column names match case-insensitively
    ("TRUE", [1, 2, 3, 4, 5, 6]),
    ("QTY = 5 AND FALSE", []),
]


def _source(db: Db) -> None:
    create_table(db, "ITEMS", [("ID", "int"), ("NAME", "text"), ("QTY", "int"),
                               ("PRICE", "num"), ("DAY", "date"), ("AT", "ts"),
                               ("NOTE", "text")], primary_key=["ID"])
    if db.kind == "sqlite":
        # As SQLAlchemy and most tools store them in SQLite: ISO text.
        rows = [(i, n, q, p, d.isoformat() if d else None,
                 a.isoformat(" ") if a else None, note) for i, n, q, p, d, a, note in ROWS]
    else:
        rows = ROWS
    db.insert("ITEMS", rows)


def _selected(connection: Connection, transform_path: Path) -> list[int]:
    plan = plan_source(connection, load_transform(transform_path))
    rows = connection.execute(plan.batch(None, 100)).all()
    counted = connection.execute(plan.count()).scalar_one()
    ids = [int(r[plan.key_positions[0]]) for r in rows]
    assert counted == len(ids)
    return ids


@pytest.mark.parametrize("any_db", ["sqlite", "postgresql", "mariadb"], indirect=True)
def test_every_filter_selects_exactly_the_expected_rows(any_db: Db, tmp_path: Path) -> None:
    _source(any_db)
    wrong = {}
    with any_db.engine.connect() as connection:
        for index, (condition, expected) in enumerate(FILTERS):
            path = write_transform(tmp_path, {
                "name": "items", "sources": [{"name": "items", "table": "ITEMS", "alias": "i"}],
                "filter": condition}, name=f"f{index}.yaml")
            got = _selected(connection, path)
            if got != expected:
                wrong[condition] = (got, expected)
    assert wrong == {}, f"{any_db.kind}: (selected, expected) per filter: {wrong}"


@pytest.mark.parametrize("any_db", ["sqlite", "postgresql"], indirect=True)
def test_a_filter_value_is_a_bound_parameter_not_sql(any_db: Db, tmp_path: Path) -> None:
    _source(any_db)
    path = write_transform(tmp_path, {
        "name": "items", "sources": [{"name": "items", "table": "ITEMS", "alias": "i"}],
        "filter": "NAME = 'x'' OR ''1''=''1'"})
    with any_db.engine.connect() as connection:
        assert _selected(connection, path) == []
    assert any_db.count('"ITEMS"') == len(ROWS)


def test_unknown_columns_and_functions_in_a_filter_are_source_errors(
        sqlite_db: Callable[[str], Db], tmp_path: Path) -> None:
    db = sqlite_db("source")
    _source(db)
    for condition, message in (
            ("COLOUR = 'red'", "source column i.COLOUR does not exist (columns of i: ID, NAME"),
            ("to_int(QTY) = 1", "function to_int() cannot be used in a filter"),
            ("? = 1", "a filter names columns; ? is only for field expressions")):
        path = write_transform(tmp_path, {
            "name": "items", "sources": [{"name": "items", "table": "ITEMS", "alias": "i"}],
            "filter": condition})
        with pytest.raises(SourceError) as raised, db.engine.connect() as connection:
            plan_source(connection, load_transform(path))
        assert message in str(raised.value)


def test_pt_migrate_run_copies_only_the_filtered_rows_from_mariadb(maria: Db, pg: Db,
                                                                   tmp_path: Path) -> None:
    _source(maria)
    create_table(pg, "items", [("id", "int"), ("name", "text"), ("qty", "int")],
                 primary_key=["id"])
    path = write_transform(tmp_path, {
        "name": "items", "sources": [{"name": "items", "table": "ITEMS", "alias": "i"}],
        "fields": [{"name": "id", "source": "i.ID"}, {"name": "name", "source": "i.NAME"},
                   {"name": "qty", "source": "i.QTY"}],
        "filter": "(QTY > 1 AND QTY < 10) OR DAY < '2024-01-01'", "target_table": "items"})
    result = summary(pt_migrate(path, maria, pg, "--json"))
    assert (result["rows_read"], result["rows_written"]) == (4, 4)
    assert pg.rows("SELECT id, name, qty FROM items") == [
        (1, "apple", 5), (3, "cherry", 12), (5, "elder", 7), (6, "o'neil", 3)]
