"""Copy correctness per source/target pair: the target holds exactly the source rows (compared as
sorted tuples), with dates, numerics, booleans, NULLs, empty strings and binary values intact,
upper-case source names folded to lower case; composite keys, `sql:` sources and joins."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pulsaride.migration.migrate import MigrateRequest, migrate
from pulsaride.migration.transform import load_transform
from tests.migration.conftest import (
    Db,
    create_table,
    new_maria_database,
    new_pg_database,
    pt,
    pt_migrate,
    summary,
    write_transform,
)

COLUMNS = [("ID", "int"), ("NAME", "text"), ("PRICE", "num"), ("DAY", "date"), ("AT", "ts"),
           ("ACTIVE", "bool"), ("NOTE", "text"), ("DATA", "blob")]
ROWS: list[tuple[Any, ...]] = [
    (1, "Ada", Decimal("12.50"), date(2024, 2, 29), datetime(2024, 2, 29, 13, 45, 7), True,
     "plain", b"\x00\x01\xff"),
    (2, "Zoë ✓ 漢字", Decimal("-0.01"), date(1900, 1, 1), datetime(1999, 12, 31, 23, 59, 59),
     False, "", b""),
    (3, "", Decimal("99999999.99"), date(2099, 12, 31), datetime(2000, 1, 1, 0, 0, 0), None,
     None, None),
    (4, None, None, None, None, None, "it's \"quoted\"\nand\ttabbed \\ back", b"\\x00"),
    (5, "  padded  ", Decimal("0.00"), date(2024, 1, 1), datetime(2024, 1, 1, 12, 0, 0, 123456),
     True, " ", bytes(range(256))),
]


def _source_values(kind: str, row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row as each source stores it (SQLite: ISO text dates, 0/1 booleans)."""
    if kind != "sqlite":
        return row
    i, name, price, day, at, active, note, data = row
    return (i, name, None if price is None else str(price), day and day.isoformat(),
            at and at.isoformat(" "), None if active is None else int(active), note, data)


def _normal(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row as comparable values, whatever the database handed back."""
    i, name, price, day, at, active, note, data = row
    return (int(i), name,
            None if price is None else Decimal(str(price)).quantize(Decimal("0.01")),
            date.fromisoformat(day) if isinstance(day, str) else day,
            datetime.fromisoformat(at) if isinstance(at, str) else at,
            None if active is None else bool(active), note,
            None if data is None else bytes(data))


def _make_source(db: Db) -> None:
    create_table(db, "ITEMS", COLUMNS, primary_key=["ID"])
    db.insert("ITEMS", [_source_values(db.kind, row) for row in ROWS])


def _make_target(db: Db) -> None:
    create_table(db, "items", [(c.lower(), t) for c, t in COLUMNS], primary_key=["id"])


@pytest.fixture
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Db, Db]]:
    """(source, target) of the kinds named by the test's parameter 'sqlite->postgresql'."""
    made, drops = [], []
    for index, kind in enumerate(request.param.split("->")):
        if kind == "sqlite":
            made.append(Db("sqlite", f"sqlite:///{tmp_path / f'db{index}.db'}"))
        else:
            db, drop = new_pg_database() if kind == "postgresql" else new_maria_database()
            made.append(db)
            drops.append(drop)
    try:
        yield made[0], made[1]
    finally:
        for db in made:
            db.dispose()
        for drop in drops:
            drop()


PAIRS = ["sqlite->sqlite", "sqlite->postgresql", "postgresql->postgresql",
         "mariadb->postgresql", "mariadb->sqlite"]


@pytest.mark.parametrize("databases", PAIRS, indirect=True)
def test_copy_keeps_every_value_and_folds_names(databases: tuple[Db, Db],
                                                tmp_path: Path) -> None:
    source, target = databases
    _make_source(source)
    _make_target(target)
    # No fields: every column, names folded (ITEMS.NAME -> items.name).
    path = write_transform(tmp_path, {"name": "items",
                                      "sources": [{"name": "items", "table": "ITEMS"}]})
    result = summary(pt_migrate(path, source, target, "--json", "--batch-size", "2"))
    assert (result["rows_read"], result["rows_written"], result["rows_rejected"]) == (5, 5, 0)
    got = [_normal(r) for r in target.rows("SELECT * FROM items")]
    assert got == [_normal(r) for r in ROWS]
    assert target.rows("SELECT id FROM items WHERE note = ''") == [(2,)]  # kept, not NULL
    assert target.rows("SELECT id FROM items WHERE name IS NULL") == [(4,)]
    if target.kind == "postgresql":
        # The target's own types: what a reader of the target gets back.
        first = target.rows("SELECT * FROM items WHERE id = 1")[0]
        assert [type(v) for v in first] == [int, str, Decimal, date, datetime, bool, str, bytes]
        assert first == ROWS[0]
    else:
        stored = target.rows("SELECT typeof(day), day, typeof(data), typeof(price) FROM items "
                             "WHERE id = 1")
        assert stored == [("text", "2024-02-29", "blob", "real")]


@pytest.mark.parametrize("databases", ["sqlite->postgresql", "mariadb->sqlite"], indirect=True)
def test_empty_string_as_null(databases: tuple[Db, Db], tmp_path: Path) -> None:
    source, target = databases
    _make_source(source)
    _make_target(target)
    path = write_transform(tmp_path, {"name": "items",
                                      "sources": [{"name": "items", "table": "ITEMS"}],
                                      "options": {"empty_string_as_null": True}})
    summary(pt_migrate(path, source, target, "--json"))
    # '' became NULL (as Oracle stores it); ' ' and every other value stayed.
    assert target.rows("SELECT id FROM items WHERE name IS NULL") == [(3,), (4,)]
    assert target.rows("SELECT id FROM items WHERE note IS NULL") == [(2,), (3,)]
    assert target.rows("SELECT note FROM items WHERE id = 5") == [(" ",)]
    assert target.count("items") == 5


# ---- composite keys, sql sources, joins (in-process: the same code, faster) ----------------------

LINES = [(order, line, (order * 10 + line) % 7) for order in (1, 2, 3, 10, 11)
         for line in range(1, 6) if (order, line) != (2, 3)]


@pytest.mark.parametrize("databases", ["sqlite->sqlite", "postgresql->postgresql",
                                       "mariadb->postgresql"], indirect=True)
def test_composite_keys_page_across_batches(databases: tuple[Db, Db], tmp_path: Path) -> None:
    source, target = databases
    create_table(source, "LINES", [("ORDER_ID", "int"), ("LINE_NO", "int"), ("QTY", "int")],
                 primary_key=["ORDER_ID", "LINE_NO"])
    source.insert("LINES", LINES)
    create_table(target, "lines", [("order_id", "int"), ("line_no", "int"), ("qty", "int")],
                 primary_key=["order_id", "line_no"])
    path = write_transform(tmp_path, {"name": "lines",
                                      "sources": [{"name": "lines", "table": "LINES"}]})
    # Batches of 3 cut through orders: (1,1..3) (1,4..5 2,1) ... the key is a pair.
    progress = migrate(MigrateRequest(load_transform(path), source.url, target.url,
                                      batch_size=3))
    assert (progress.read, progress.written) == (len(LINES), len(LINES))
    assert target.rows("SELECT * FROM lines") == sorted(LINES)
    entry = target.registry("lines")
    assert entry is not None
    assert entry["checkpoint"] == "[11,5]"


def test_a_sql_source(sqlite_db: Callable[[str], Db], pg: Db, tmp_path: Path) -> None:
    source = sqlite_db("source")
    _make_source(source)
    create_table(pg, "priced", [("id", "int"), ("label", "text"), ("price", "num")],
                 primary_key=["id"])
    path = write_transform(tmp_path, {
        "name": "priced",
        "sources": [{"name": "q", "alias": "q", "sql":
                     "SELECT ID AS ITEM_ID, upper(NAME) AS LABEL, PRICE FROM ITEMS "
                     "WHERE PRICE IS NOT NULL"}],
        "fields": [{"name": "id", "source": "q.ITEM_ID"},
                   {"name": "label", "source": "q.LABEL"},
                   {"name": "price", "source": "q.PRICE"}],
        "source_key": ["q.ITEM_ID"], "target_table": "priced"})
    progress = migrate(MigrateRequest(load_transform(path), source.url, pg.url, batch_size=2))
    assert progress.read == 4
    assert pg.rows("SELECT * FROM priced") == [
        (1, "ADA", Decimal("12.50")), (2, "ZOë ✓ 漢字", Decimal("-0.01")),
        (3, "", Decimal("99999999.99")), (5, "  PADDED  ", Decimal("0.00"))]
    entry = pg.registry("priced")
    assert entry is not None
    assert entry["source"] == f"{source.url} (q query)"


@pytest.mark.parametrize("databases", ["sqlite->postgresql", "mariadb->sqlite"], indirect=True)
def test_a_join_of_two_source_tables(databases: tuple[Db, Db], tmp_path: Path) -> None:
    source, target = databases
    create_table(source, "CUSTOMERS", [("CUSTOMER_ID", "int"), ("NAME", "text")],
                 primary_key=["CUSTOMER_ID"])
    create_table(source, "ORDERS", [("ORDER_ID", "int"), ("CUSTOMER_ID", "int"),
                                    ("TOTAL", "num")], primary_key=["ORDER_ID"])
    source.insert("CUSTOMERS", [(1, "Ada"), (2, "Grace")])
    source.insert("ORDERS", [(10, 1, 5.5), (11, 2, 7.25), (12, 1, 1.0), (13, 3, 9.0)])
    create_table(target, "order_summary", [("order_id", "int"), ("customer", "text"),
                                           ("total", "num")], primary_key=["order_id"])
    path = write_transform(tmp_path, {
        "name": "order-summary",
        "sources": [{"name": "orders", "table": "ORDERS", "alias": "o"},
                    {"name": "customers", "table": "CUSTOMERS", "alias": "c"}],
        "joins": [{"from": "o", "to": "c", "on": "o.CUSTOMER_ID = c.CUSTOMER_ID",
                   "type": "LEFT"}],
        "fields": [{"name": "order_id", "source": "o.ORDER_ID"},
                   {"name": "customer", "source": ["c.NAME", "o.CUSTOMER_ID"],
                    "expression": "coalesce(upper(?1), concat('unknown #', ?2))"},
                   {"name": "total", "source": "o.TOTAL"}],
        "target_table": "order_summary"})
    progress = migrate(MigrateRequest(load_transform(path), source.url, target.url,
                                      batch_size=3))
    assert progress.read == 4
    got = [(o, c, Decimal(str(t))) for o, c, t in target.rows("SELECT * FROM order_summary")]
    assert got == [(10, "ADA", Decimal("5.5")), (11, "GRACE", Decimal("7.25")),
                   (12, "ADA", Decimal("1")), (13, "unknown #3", Decimal("9"))]


def test_the_json_document_null_stays_apart_from_sql_null(pg: Db, pg2: Db,
                                                          tmp_path: Path) -> None:
    # psycopg decodes the jsonb document null to None, the same as SQL NULL: the copy and the
    # checks read JSON as text, so neither turns one into the other.
    pg.execute("CREATE TABLE docs (id integer PRIMARY KEY, body jsonb)",
               "INSERT INTO docs VALUES (1, 'null'), (2, NULL), (3, '{\"a\": [1, null]}')")
    pg2.execute("CREATE TABLE docs (id integer PRIMARY KEY, body jsonb)")
    path = write_transform(tmp_path, {"name": "docs", "sources": [{"name": "d", "table": "docs"}],
                                      "options": {"identifiers": "keep"}})
    summary(pt_migrate(path, pg, pg2, "--json"))
    assert pg2.rows("SELECT id, body IS NULL, body::text FROM docs") == [
        (1, False, "null"), (2, True, None), (3, False, '{"a": [1, null]}')]
    pg2.execute("UPDATE docs SET body = NULL WHERE id = 1")
    result = pt("validate", "hash", "--table", "docs", "--source-url", pg.url, "--target-url",
                pg2.url, cwd=tmp_path)
    assert result.returncode == 1, result.stdout  # the lost document is found
    assert "key ['1']: value body: source 'null', target None" in result.stdout
