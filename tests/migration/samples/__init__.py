"""Realistic source schemas for the migration tests, built with deterministic data.

Each schema module exposes `build(db, scale=1) -> SampleInfo` for the dialects it supports:

- `dvdrental`: a DVD-rental shop modelled on the MySQL "Sakila" sample (MariaDB first, also
  SQLite and PostgreSQL spellings): a staff <-> store foreign-key cycle, ENUM/SET/YEAR, unsigned
  keys, zero dates, blobs, views, triggers, routines, a FULLTEXT index, geometry, JSON.
- `musicstore`: a music shop modelled on the "Chinook" sample (SQLite, MariaDB, PostgreSQL):
  CamelCase names, NVARCHAR, a self-reference, non-ASCII text, NULL next to '' and, on SQLite,
  the values SQLite lets through (big integers, over-long strings, mixed numerics).
- `hostile`: table and column names that break naive tools, and `build_hostile`.

`content(db, table)` reads a table back normalised for exact comparison between a source and a
PostgreSQL target, and `fingerprint(url_or_engine, schema)` describes a PostgreSQL schema as JSON
(compared with pgloader's result in docs/PGLOADER-COMPARISON.md).
"""

from tests.migration.samples.content import content, contents
from tests.migration.samples.fingerprint import fingerprint
from tests.migration.samples.info import ForeignKey, SampleInfo, Trait

__all__ = ["ForeignKey", "SampleInfo", "Trait", "content", "contents", "fingerprint"]
