"""Build the demo's source database: a small shop kept Oracle-style in SQLite.

Upper-case names, NUMBER/VARCHAR2/DATE/CHAR types, a self-referencing table (customers who
referred other customers, often customers with a higher id), foreign keys between every
table, and a few orphan rows (orders of customers deleted long ago, items of products that
never existed) — the problems a real migration meets. Deterministic: the same file every time.

    python make_source.py source.db [--scale N]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
from datetime import date, timedelta
from pathlib import Path

SCHEMA = """
CREATE TABLE CUSTOMERS (
    CUSTOMER_ID  NUMBER(10)    PRIMARY KEY,
    NAME         VARCHAR2(100) NOT NULL,
    EMAIL        VARCHAR2(200),
    PHONE        VARCHAR2(30),
    MOBILE       VARCHAR2(30),
    CREATED_ON   DATE          NOT NULL,
    STATUS       VARCHAR2(10)  NOT NULL,
    REFERRED_BY  NUMBER(10)    REFERENCES CUSTOMERS (CUSTOMER_ID)
);
CREATE TABLE PRODUCTS (
    PRODUCT_ID   NUMBER(10)    PRIMARY KEY,
    SKU          VARCHAR2(20)  NOT NULL,
    NAME         VARCHAR2(100) NOT NULL,
    PRICE        NUMBER(10,2)  NOT NULL,
    ACTIVE       CHAR(1)       NOT NULL
);
CREATE TABLE ORDERS (
    ORDER_ID     NUMBER(12)    PRIMARY KEY,
    CUSTOMER_ID  NUMBER(10)    NOT NULL REFERENCES CUSTOMERS (CUSTOMER_ID),
    ORDER_DATE   DATE          NOT NULL,
    STATUS       VARCHAR2(12)  NOT NULL,
    TOTAL        NUMBER(12,2)  NOT NULL
);
CREATE TABLE ORDER_ITEMS (
    ORDER_ID     NUMBER(12)    NOT NULL REFERENCES ORDERS (ORDER_ID),
    LINE_NO      NUMBER(4)     NOT NULL,
    PRODUCT_ID   NUMBER(10)    NOT NULL REFERENCES PRODUCTS (PRODUCT_ID),
    QUANTITY     NUMBER(6)     NOT NULL,
    UNIT_PRICE   NUMBER(10,2)  NOT NULL,
    PRIMARY KEY (ORDER_ID, LINE_NO)
);
"""

FIRST = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Ken", "Dennis", "Margaret", "Linus",
         "Radia", "Frances", "John", "Tim", "Guido", "Anita", "Niklaus"]
LAST = ["Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Thompson", "Ritchie",
        "Hamilton", "Torvalds", "Perlman", "Allen", "Backus", "Berners-Lee", "Rossum"]
STATUSES = ["NEW", "PAID", "SHIPPED", "DELIVERED", "CANCELLED"]


def build(path: Path, scale: int) -> dict[str, int]:
    """Write the database; return the row count of each table."""
    rng = random.Random(20261126)
    path.unlink(missing_ok=True)
    db = sqlite3.connect(path)
    db.executescript(SCHEMA)
    customers = _customers(rng, 200 * scale)
    products = _products(rng, 50 * scale)
    orders = _orders(rng, 1000 * scale, len(customers))
    known = {c[0] for c in customers if c[6] != "DELETED"}  # orphan orders have no items
    items = _items(rng, [o for o in orders if o[1] in known], len(products))
    db.executemany("INSERT INTO CUSTOMERS VALUES (?,?,?,?,?,?,?,?)", customers)
    db.executemany("INSERT INTO PRODUCTS VALUES (?,?,?,?,?)", products)
    db.executemany("INSERT INTO ORDERS VALUES (?,?,?,?,?)", orders)
    db.executemany("INSERT INTO ORDER_ITEMS VALUES (?,?,?,?,?)", items)
    db.commit()
    db.close()
    return {"CUSTOMERS": len(customers), "PRODUCTS": len(products), "ORDERS": len(orders),
            "ORDER_ITEMS": len(items)}


def _customers(rng: random.Random, count: int) -> list[tuple[object, ...]]:
    rows = []
    start = date(2019, 1, 1)
    for cid in range(1, count + 1):
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        email = f"  {name.replace(' ', '.').upper()}{cid}@Example.COM " if cid % 7 else None
        phone = f"+44 20 7946 {cid:04d}" if cid % 3 else ""  # '' as Oracle would never store
        mobile = f"+44 7700 9{cid:05d}" if cid % 2 else None
        # Referrers are never deleted customers; many have a higher id (copied later).
        referred = None
        if cid % 5 == 0:
            referred = rng.randint(1, count)
            while referred % 97 == 0 or referred == cid:
                referred = rng.randint(1, count)
        created = start + timedelta(days=rng.randint(0, 1800))
        status = "DELETED" if cid % 97 == 0 else "ACTIVE"
        rows.append((cid, name, email, phone, mobile, created.isoformat(), status, referred))
    return rows


def _products(rng: random.Random, count: int) -> list[tuple[object, ...]]:
    return [(pid, f"SKU-{pid:05d}", f"Widget {pid}", round(rng.uniform(1, 500), 2),
             "Y" if pid % 11 else "N") for pid in range(1, count + 1)]


def _orders(rng: random.Random, count: int, customers: int) -> list[tuple[object, ...]]:
    rows = []
    for oid in range(1, count + 1):
        # A few orders belong to customers deleted from the source long ago: orphans (and
        # of customers marked DELETED, which the customers transform leaves out).
        customer = customers + oid if oid % 250 == 0 else rng.randint(1, customers)
        day = date(2022, 1, 1) + timedelta(days=rng.randint(0, 1000))
        rows.append((100000 + oid, customer, day.isoformat(), rng.choice(STATUSES),
                     round(rng.uniform(5, 2000), 2)))
    return rows


def _items(rng: random.Random, orders: list[tuple[object, ...]],
           products: int) -> list[tuple[object, ...]]:
    rows = []
    for order in orders:
        for line in range(1, rng.randint(1, 5) + 1):
            product = products + 1 if rng.random() < 0.002 else rng.randint(1, products)
            rows.append((order[0], line, product, rng.randint(1, 9),
                         round(rng.uniform(1, 500), 2)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--scale", type=int, default=10, help="size factor (default 10)")
    args = parser.parse_args()
    counts = build(args.path, args.scale)
    print(f"{args.path}: " + ", ".join(f"{n} {t}" for t, n in counts.items()))


if __name__ == "__main__":
    main()
