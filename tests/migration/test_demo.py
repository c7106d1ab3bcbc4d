"""The demo (README's first command): examples/demo.sh runs end to end into SQLite, and into
PostgreSQL with one variable; the target holds what the source says it should, computed here
independently from the source and the transform files' rules."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.migration.conftest import Db, clean_env

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.sh"
# What the demo's source (examples/demo/make_source.py, default scale) yields, checked below
# against an independent computation from the source. Older sources gave 1979 / 500 / 9872 /
# 29477: then one customer was referred by a DELETED one (an orphan that waited forever).
COUNTS = {"customers": 1980, "products": 500, "orders": 9881, "order_items": 29499}


def expected_keys(source: Path) -> dict[str, set[tuple[int, ...]]]:
    """What each target table should hold, from the source and the demo's rules: customers
    not DELETED whose referrer (recursively) made it; every product; orders of customers who
    made it; items of orders that made it and of products that exist."""
    db = sqlite3.connect(source)
    try:
        referrer = dict(db.execute(
            "SELECT CUSTOMER_ID, REFERRED_BY FROM CUSTOMERS WHERE STATUS != 'DELETED'"))
        customers: set[int] = set()
        while True:
            more = {c for c, r in referrer.items()
                    if c not in customers and (r is None or r in customers)}
            if not more:
                break
            customers |= more
        products = {p for (p,) in db.execute("SELECT PRODUCT_ID FROM PRODUCTS")}
        orders = {o for o, c in db.execute("SELECT ORDER_ID, CUSTOMER_ID FROM ORDERS")
                  if c in customers}
        items = {(o, line) for o, line, p in db.execute(
            "SELECT ORDER_ID, LINE_NO, PRODUCT_ID FROM ORDER_ITEMS")
                 if o in orders and p in products}
    finally:
        db.close()
    return {"customers": {(c,) for c in customers}, "products": {(p,) for p in products},
            "orders": {(o,) for o in orders}, "order_items": items}


KEYS = {"customers": "customer_id", "products": "product_id", "orders": "order_id",
        "order_items": "order_id, line_no"}


def run_demo(work: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    work.mkdir()
    return subprocess.run(["bash", str(DEMO)], env=clean_env({"DEMO_DIR": str(work),
                                                             **(env or {})}),
                          capture_output=True, text=True, timeout=300, check=False)


def check_target(target: Db, source: Path) -> None:
    expected = expected_keys(source)
    assert {table: len(keys) for table, keys in expected.items()} == COUNTS
    for table, keys in expected.items():
        assert set(target.rows(f"SELECT {KEYS[table]} FROM {table}")) == keys, table
    # Items of products that never existed, and orders of customers that are not there, are
    # dropped by rule (on_missing: SKIP) and counted: nothing is dead-lettered (the
    # validations would be INCOMPLETE, ADR 0013) and nothing is left waiting.
    db = sqlite3.connect(source)
    (missing_products,) = db.execute(
        "SELECT count(*) FROM ORDER_ITEMS WHERE PRODUCT_ID NOT IN (SELECT PRODUCT_ID FROM "
        "PRODUCTS)").fetchone()
    db.close()
    assert missing_products > 0
    assert target.count("pulsaride_dlq") == 0
    db = sqlite3.connect(source)
    (orders,) = db.execute("SELECT count(*) FROM ORDERS").fetchone()
    (items,) = db.execute("SELECT count(*) FROM ORDER_ITEMS").fetchone()
    db.close()
    assert target.count("pulsaride_deferred") == 0
    registry = target.rows("SELECT transform, rows_read, rows_written, rows_deferred, "
                           "rows_rejected, rows_skipped FROM pulsaride_run_registry")
    assert registry == [
        ("customers", 1980, 1980, 0, 0, 0),
        ("order-items", items, COUNTS["order_items"], 0, 0, missing_products),
        ("orders", orders, COUNTS["orders"], 0, 0, orders - COUNTS["orders"]),
        ("products", 500, 500, 0, 0, 0)]
    # The gate cut the tables over once every validation passed.
    assert {status for (status,) in target.rows(
        "SELECT status FROM pulsaride_run_registry")} == {"CUT_OVER"}
    # The transform files' expressions: trimmed names, normalised e-mails, '' as NULL,
    # Y/N as booleans, amounts computed.
    assert target.scalar("SELECT count(*) FROM customers WHERE email != lower(trim(email))") == 0
    assert target.scalar("SELECT count(*) FROM customers WHERE phone = ''") == 0
    assert target.scalar("SELECT count(*) FROM products WHERE active = false") == 45
    assert target.scalar("SELECT count(*) FROM order_items WHERE amount != quantity * "
                         "unit_price") == 0


@pytest.mark.slow
def test_the_demo_into_sqlite(tmp_path: Path) -> None:
    work = tmp_path / "demo"
    result = run_demo(work)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "run succeeded" in result.stdout
    assert "verified:" in result.stdout
    target = Db("sqlite", f"sqlite:///{work / 'target.db'}")
    try:
        check_target(target, work / "source.db")
    finally:
        target.dispose()
    assert sorted(p.name for p in (work / ".pulsaride" / "pipeline-runs").glob("*.jsonl")) != []


@pytest.mark.slow
def test_the_demo_into_postgresql_with_one_variable(pg: Db, tmp_path: Path) -> None:
    work = tmp_path / "demo"
    result = run_demo(work, {"PT_TARGET_URL": pg.url})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert not (work / "target.db").exists()
    check_target(pg, work / "source.db")


def test_demo_script_is_executable_and_documented() -> None:
    assert os.access(DEMO, os.X_OK)
    assert "PT_TARGET_URL=postgresql://" in DEMO.read_text()
