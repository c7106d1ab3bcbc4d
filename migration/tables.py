"""The tables pt keeps in the target database: run registry, deferred rows, dead letters."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.exc import DBAPIError

METADATA = MetaData()

REGISTRY = Table(
    "pulsaride_run_registry", METADATA,
    Column("transform", String(200), primary_key=True),
    Column("file_sha256", String(64), nullable=False),
    Column("source", String(2000), nullable=False),
    Column("target_table", String(200), nullable=False),
    Column("status", String(20), nullable=False),  # RUNNING | DONE | FAILED
    Column("rows_read", BigInteger, nullable=False, default=0),
    Column("rows_written", BigInteger, nullable=False, default=0),
    Column("rows_deferred", BigInteger, nullable=False, default=0),
    Column("rows_rejected", BigInteger, nullable=False, default=0),
    Column("rows_skipped", BigInteger, nullable=False, default=0),
    Column("checkpoint", Text),  # JSON list of the last copied source key, or NULL
    Column("version", Integer, nullable=False, default=0),  # bumped by every batch
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("host", String(200)),
    Column("pid", Integer),
)

DEFERRED = Table(
    "pulsaride_deferred", METADATA,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("transform", String(200), nullable=False),
    Column("target_table", String(200), nullable=False),
    Column("blocking_table", String(200), nullable=False),
    Column("blocking_key", String(200), nullable=False),
    Column("key_value", Text, nullable=False),
    Column("payload", Text, nullable=False),  # JSON: target column -> value
    Column("requirements", Text, nullable=False),  # JSON: [[table, key, value], ...]
    Column("deferred_at", DateTime(timezone=True), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Index("pulsaride_deferred_blocking", "blocking_table"),
    Index("pulsaride_deferred_transform", "transform"),
)

DLQ = Table(
    "pulsaride_dlq", METADATA,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("transform", String(200), nullable=False),
    Column("target_table", String(200), nullable=False),
    Column("reason", String(40), nullable=False),  # FK_MISSING | TRANSFORM_ERROR | ...
    Column("detail", Text, nullable=False),
    Column("row_key", Text),
    Column("payload", Text, nullable=False),  # JSON of the source row
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("pulsaride_dlq_transform", "transform"),
)

VALIDATION = Table(
    "pulsaride_validation", METADATA,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("target_table", String(200), nullable=False),
    Column("transform", String(200), nullable=False),
    Column("kind", String(20), nullable=False),  # counts | sample | hash
    Column("status", String(10), nullable=False),  # PASS | FAIL
    Column("details", Text, nullable=False),  # JSON document of the result
    Column("run_id", String(64)),  # the pipeline run, when run inside one
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("pulsaride_validation_table", "target_table", "kind"),
)

CUTOVER = Table(
    "pulsaride_cutover", METADATA,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("transform", String(200), nullable=False),
    Column("target_table", String(200), nullable=False),
    Column("sequences", Text, nullable=False),  # JSON: what was advanced, from, to
    Column("verified", Boolean, nullable=False, default=True),  # False: --no-verify
    Column("run_id", String(64)),
    Column("by", String(200)),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


STEPS = Table(
    "pulsaride_schema_steps", METADATA,  # pt migrate schema --post-data: the steps done
    Column("file", String(255), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("sha256", String(64), primary_key=True),
    Column("statement", Text, nullable=False),  # its first line, for people
    Column("done_at", DateTime(timezone=True), nullable=False),
)


def ensure_tables(engine: Engine) -> None:
    """Create pt's tables in the target if they are missing (safe when run concurrently)."""
    for attempt in range(3):
        try:
            METADATA.create_all(engine, checkfirst=True)
            return
        except DBAPIError:
            # Another process created a table between our check and our CREATE.
            if attempt == 2:
                raise
