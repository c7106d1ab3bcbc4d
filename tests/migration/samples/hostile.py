"""Table and column names that break naive tools, and tables built under those names.

`HOSTILE_NAMES` is the curated list: quotes of every dialect, statement separators and comment
starters, spaces (inside, leading, trailing), leading digits, non-ASCII and emoji, reserved
words, placeholder syntax of every driver (`%s`, `%(name)s`, `{}`, `$1`, `?`, `:name`),
injection attempts, a 63-byte name, longer ones (64 bytes, 64 bytes in 32 characters, 70
bytes, and two 64-byte names equal in their first 63 bytes) and pairs equal after lower-casing
(`Genre` / `genre`). `hostile_names()` adds deterministic combinations,
`hostile_name_strategy()` is the hypothesis version.

`build_hostile(db, names)` creates one table per name that the dialect can hold under exactly
that name (`unfit` says why not: MariaDB takes at most 64 characters, no trailing space and no
characters outside the BMP; PostgreSQL truncates names longer than 63 bytes; SQLite reserves
`sqlite_*` and, like MariaDB columns, folds ASCII case), plus the sentinel tables `pt_sentinel`
and `victim`, which the injection names try to drop: they still exist, with their row, when no
injected statement ran. All DDL and DML go through SQLAlchemy Core (MetaData / Table /
insert), so the dialect quotes and escapes every name.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    Table,
    Text,
    text,
)

from tests.migration.conftest import Db
from tests.migration.samples.info import SampleInfo, Trait

SENTINEL = "pt_sentinel"
VICTIM = "victim"
SENTINEL_ROW = (1, "alive")

NAME_63 = "n63_" + "x" * 59  # exactly PostgreSQL's limit
NAME_64 = "n64_" + "x" * 60  # MariaDB's limit, one byte over PostgreSQL's
NAME_64_BYTES_32_CHARS = "é" * 32  # fits MariaDB (characters), not PostgreSQL (bytes)
NAME_64_A = "n64_" + "y" * 59 + "a"  # these two differ only in byte 64: both fit MariaDB
NAME_64_B = "n64_" + "y" * 59 + "b"  # and SQLite, and are one name once PostgreSQL truncates
NAME_70 = "n70_" + "z" * 66  # over every limit but SQLite's

HOSTILE_NAMES: tuple[str, ...] = (
    'double"quote', "single'quote", "back`tick", "semi;colon", "dash--comment",
    "slash/*comment*/", "with space", " leading space", "trailing space ", "1leading_digit",
    "123", "back\\slash", "new\nline", "tab\tname", "nel\x85line", "line\u2028sep",
    "dot.name", "café", "日本", "日本語の表",
    "emoji😀", "select", "order", "user", "table", "%s", "%(name)s", "{}", "{0}", "$1", "?",
    ":name", "v (id int); DROP TABLE victim; CREATE TABLE w",
    f'x"; DROP TABLE {SENTINEL}; --', f"x`; DROP TABLE {SENTINEL}; --",
    f"x'); DROP TABLE {SENTINEL}; --", "Genre", "genre", "CamelCase", "sqlite_shadow",
    NAME_63, NAME_64, NAME_64_BYTES_32_CHARS, NAME_64_A, NAME_64_B, NAME_70,
)

# Pieces hostile_names() and the strategy combine.
FRAGMENTS: tuple[str, ...] = ('"', "'", "`", ";", "--", "/*", "*/", " ", "%s", "{}", "$1", "?",
                              ":p", "\\", "é", "日本", "😀", "select", "DROP TABLE x", "1",
                              "Name", "name", "\t", ".")

# The columns every hostile table has besides its key (which is named like the table).
EXTRA_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("user", Text()), ("Value %s", Numeric(10, 2)), ('a"b`c', LargeBinary()),
    ("when ?", DateTime()))
ROWS: tuple[tuple[int, tuple[Any, ...]], ...] = (  # key, then the EXTRA_COLUMNS' values
    (1, (None, Decimal("1.50"), b"\x00\x01\xff", datetime(2020, 1, 1, 12, 30))),
    (2, ("it's \"quoted\" `x` ; -- /* */ %s $1", Decimal("-0.01"), b"", None)),
    (3, (None, None, None, datetime(1999, 12, 31, 23, 59, 59))),
)


def hostile_names(extra: int = 0, seed: int = 0) -> list[str]:
    """HOSTILE_NAMES plus `extra` deterministic combinations of FRAGMENTS (seeded)."""
    rng = random.Random(seed)
    names = list(HOSTILE_NAMES)
    while len(names) < len(HOSTILE_NAMES) + extra:
        name = "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 4)))
        if name not in names:
            names.append(name)
    return names


def hostile_name_strategy(kind: str | None = None) -> st.SearchStrategy[str]:
    """Hypothesis strategy of hostile names (only ones `kind` can hold, when given)."""
    strategy = st.one_of(
        st.sampled_from(HOSTILE_NAMES),
        st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=5).map("".join),
        st.text(st.characters(codec="utf-8", exclude_characters="\x00"),
                min_size=1, max_size=70))
    if kind is None:
        return strategy
    return strategy.filter(lambda name: unfit(kind, name) is None)


def unfit(kind: str, name: str) -> str | None:
    """Why `kind` cannot hold a table or column named exactly `name` (None: it can)."""
    if not name or "\x00" in name:
        return "empty or contains NUL"
    if kind == "postgresql" and len(name.encode()) > 63:
        return "longer than 63 bytes: PostgreSQL truncates it"
    if kind == "mariadb":
        if len(name) > 64:
            return "longer than 64 characters"
        if name.endswith(" "):
            return "ends with a space"
        if any(ord(c) > 0xFFFF for c in name):
            return "characters outside the BMP (identifiers are utf8mb3)"
    if kind == "sqlite" and name.lower().startswith("sqlite_"):
        return "sqlite_ names are reserved"
    return None


def ascii_fold(name: str) -> str:
    """SQLite's identifier comparison: case-insensitive for ASCII letters only."""
    return "".join(c.lower() if c.isascii() else c for c in name)


def _table_fold(db: Db) -> Any:
    """How the dialect compares table names (MariaDB: per lower_case_table_names)."""
    if db.kind == "sqlite":
        return ascii_fold
    if db.kind == "mariadb":
        with db.engine.connect() as connection:
            if int(connection.execute(text("SELECT @@lower_case_table_names")).scalar_one()):
                return str.lower
    return lambda name: name


def choose(db: Db, names: Iterable[str]) -> tuple[list[str], dict[str, str]]:
    """The names `db` can hold, in order, and the others with the reason."""
    fold = _table_fold(db)
    chosen: list[str] = []
    skipped: dict[str, str] = {}
    seen: dict[str, str] = {fold(SENTINEL): SENTINEL, fold(VICTIM): VICTIM}
    for name in names:
        reason = unfit(db.kind, name)
        if reason is None and fold(name) in seen:
            reason = f"same table as {seen[fold(name)]!r} on {db.kind}"
        if reason is None:
            seen[fold(name)] = name
            chosen.append(name)
        else:
            skipped[name] = reason
    return chosen, skipped


def hostile_table(metadata: MetaData, name: str) -> Table:
    """Table `name`: an integer key named `name`, and the EXTRA_COLUMNS that do not clash
    with it (column names are case-insensitive on MariaDB and SQLite)."""
    extras = [Column(c, t) for c, t in EXTRA_COLUMNS if c.casefold() != name.casefold()]
    return Table(name, metadata, Column(name, Integer, primary_key=True, autoincrement=False),
                 *extras)


def build_hostile(db: Db, names: Sequence[str] = HOSTILE_NAMES) -> SampleInfo:
    """Create a table per name `db` can hold (3 rows each) and the sentinel tables."""
    chosen, skipped = choose(db, names)
    metadata = MetaData()
    tables = [hostile_table(metadata, name) for name in chosen]
    sentinels = [Table(s, metadata, Column("id", Integer, primary_key=True,
                                           autoincrement=False), Column("note", Text))
                 for s in (SENTINEL, VICTIM)]
    metadata.create_all(db.engine)
    with db.engine.begin() as connection:
        for sentinel in sentinels:
            connection.execute(sentinel.insert(), [dict(zip(("id", "note"), SENTINEL_ROW,
                                                             strict=True))])
        for table in tables:
            connection.execute(table.insert(), _rows(table))
    counts = {t.name: len(ROWS) for t in tables} | dict.fromkeys((SENTINEL, VICTIM), 1)
    return SampleInfo(sample="hostile", kind=db.kind, tables=counts,
                      primary_keys={**{t: (t,) for t in chosen},
                                    **dict.fromkeys((SENTINEL, VICTIM), ("id",))},
                      foreign_keys=(), traits=_traits(chosen), skipped=skipped)


def _rows(table: Table) -> list[dict[str, Any]]:
    """ROWS as parameters of `table`'s insert (which lacks an extra column named like it)."""
    names = [c for c, _ in EXTRA_COLUMNS]
    return [{table.name: key, **{c: v for c, v in zip(names, values, strict=True)
                                 if c.casefold() != table.name.casefold()}}
            for key, values in ROWS]


def _traits(chosen: Sequence[str]) -> frozenset[Trait]:
    traits = {Trait.HOSTILE_NAMES}
    if any(len(n.encode()) >= 63 for n in chosen):
        traits.add(Trait.LONG_NAMES)
    if any(not n.isascii() for n in chosen):
        traits.add(Trait.NON_ASCII)
    if any(ord(c) > 0xFFFF for n in chosen for c in n):
        traits.add(Trait.EMOJI)
    lowered = [n.lower() for n in chosen]
    if len(set(lowered)) < len(lowered):
        traits.add(Trait.CASE_PAIRS)
    return frozenset(traits)
