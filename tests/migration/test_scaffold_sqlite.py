"""`pt scaffold` on a Chinook-like SQLite source (CamelCase names, NVARCHAR, NUMBER, rowid
keys): names in both identifier modes, types by SQLite's affinity rules and by what the data
holds, applied on PostgreSQL, copied and hash-validated table by table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.migration.conftest import Db, pt
from tests.migration.scaffolding import (
    column_types,
    copy,
    foreign_keys,
    indexes,
    load,
    post_data,
    pre_data,
    scaffold,
    transforms,
)

CHINOOK = """
    CREATE TABLE "Artist" ("ArtistId" INTEGER PRIMARY KEY AUTOINCREMENT, "Name" NVARCHAR(120));
    CREATE TABLE "Album" (
        "AlbumId" INTEGER NOT NULL, "Title" NVARCHAR(160) NOT NULL,
        "ArtistId" INTEGER NOT NULL, CONSTRAINT "PK_Album" PRIMARY KEY ("AlbumId"),
        FOREIGN KEY ("ArtistId") REFERENCES "Artist" ("ArtistId") ON DELETE CASCADE);
    CREATE TABLE "Genre" ("GenreId" INTEGER PRIMARY KEY, "Name" NVARCHAR(5));
    CREATE TABLE "Track" (
        "TrackId" INTEGER PRIMARY KEY, "Name" NVARCHAR(200) NOT NULL,
        "AlbumId" INTEGER REFERENCES "Album" ("AlbumId"),
        "GenreId" INTEGER REFERENCES "Genre" ("GenreId"),
        "Milliseconds" INTEGER NOT NULL, "Bytes" INTEGER, "UnitPrice" NUMERIC(10,2) NOT NULL,
        "Weight" NUMBER, "Score" NUMBER, "Added" DATETIME DEFAULT CURRENT_TIMESTAMP,
        CHECK ("UnitPrice" >= 0));
    CREATE INDEX "IFK_TrackAlbumId" ON "Track" ("AlbumId");
    CREATE VIEW "TopTracks" AS SELECT * FROM "Track" WHERE "Milliseconds" > 1000
"""


def _source(db: Db) -> None:
    db.script(CHINOOK)
    db.execute('CREATE TRIGGER "TrackStamp" AFTER UPDATE ON "Track" BEGIN SELECT 1; END')
    db.insert("Artist", [(1, "AC/DC"), (2, "Accept")])
    db.insert("Album", [(1, "For Those About To Rock", 1), (2, "Balls to the Wall", 2)])
    # SQLite does not enforce declared types: a 40-character name in NVARCHAR(5).
    db.insert("Genre", [(1, "Rock"), (2, "An extremely long genre name of 40 chars")])
    db.insert("Track", [
        (1, "For Those About To Rock", 1, 1, 343719, 3_000_000_000, "0.99", 120, 1.5,
         "2024-01-01 10:00:00"),
        (2, "Balls to the Wall", 2, 2, 342562, 5510424, "0.99", 300, 2, "2024-01-02 11:00:00"),
        (3, "Fast As a Shark", None, None, 230619, None, "1.99", None, None, None)])


def _copy_all(folder: Path, source: Db, target: Db) -> None:
    found = transforms(folder)
    for name in sorted(found, reverse=True):  # any order: children first here
        assert copy(folder, found[name]["file"], source, target)["status"] == "done"


@pytest.mark.slow
def test_camelcase_downcased_with_types_from_the_data(sqlite_db: Callable[[str], Db], pg: Db,
                                                      tmp_path: Path) -> None:
    source = sqlite_db("chinook")
    _source(source)
    folder = tmp_path / "down"
    scaffold(folder, source, target=pg)
    pre_data(folder, pg)
    _copy_all(folder, source, pg)
    post_data(folder, pg)

    assert column_types(pg, "track") == {
        "trackid": "integer", "name": "character varying(200)", "albumid": "integer",
        "genreid": "integer", "milliseconds": "integer", "bytes": "bigint",
        "unitprice": "numeric(10,2)", "weight": "smallint", "score": "numeric",
        "added": "timestamp without time zone"}
    assert column_types(pg, "genre") == {"genreid": "integer", "name": "text"}
    assert pg.rows("SELECT name FROM genre") == [
        ("An extremely long genre name of 40 chars",), ("Rock",)]
    assert {k: v[:3] for k, v in foreign_keys(pg).items()} == {
        "album_artistid_fkey": ("album", "artist", True),
        "track_albumid_fkey": ("track", "album", True),
        "track_genreid_fkey": ("track", "genre", True)}
    assert ("track", "ifk_trackalbumid") in indexes(pg)
    # Rowid keys and AUTOINCREMENT both become identities, restarted past the data.
    assert pg.scalar("INSERT INTO genre (name) VALUES ('Jazz') RETURNING genreid") == 3
    assert pg.scalar("INSERT INTO artist (name) VALUES ('X') RETURNING artistid") == 3
    pg.execute("DELETE FROM genre WHERE genreid = 3", "DELETE FROM artist WHERE artistid = 3")
    for table in ("artist", "album", "genre", "track"):
        check = pt("validate", "hash", "--table", table, "--source-url", source.url,
                   "--target-url", pg.url, cwd=folder)
        assert check.returncode == 0, check.stdout + check.stderr

    schema = (folder / "target-schema.sql").read_text()
    assert "-- declared 'INTEGER' but holds 3000000000..5510424" not in schema
    assert "-- declared 'INTEGER' but holds 5510424..3000000000" in schema
    assert "-- declared 'NVARCHAR(5)' but holds values of up to 40 characters" in schema
    assert "-- NUMBER without precision holds whole numbers 120..300: smallint" in schema
    review = (folder / "objects-to-review.md").read_text()
    assert "`TopTracks`: view not created" in review
    assert "`Track`.`TrackStamp`: trigger not created" in review


@pytest.mark.slow
def test_camelcase_kept_with_affinity_types(sqlite_db: Callable[[str], Db], pg: Db,
                                            tmp_path: Path) -> None:
    source = sqlite_db("chinook")
    _source(source)
    folder = tmp_path / "keep"
    scaffold(folder, source, "--identifiers", "keep", "--sqlite-types", "affinity", target=pg)
    track = load(folder / "Track.yaml")
    assert track["options"] == {"identifiers": "keep"}
    assert track["target_table"] == "Track" and track["sources"][0]["table"] == "Track"
    assert track["fields"][0] == {"name": "TrackId", "source": "s.TrackId",
                                  "target_type": "bigint"}
    pre_data(folder, pg)
    _copy_all(folder, source, pg)
    post_data(folder, pg)
    assert column_types(pg, "Track", quoted=True) == {
        "TrackId": "bigint", "Name": "text", "AlbumId": "bigint", "GenreId": "bigint",
        "Milliseconds": "bigint", "Bytes": "bigint", "UnitPrice": "numeric(10,2)",
        "Weight": "numeric", "Score": "numeric", "Added": "timestamp without time zone"}
    assert {v[:2] for v in foreign_keys(pg).values()} == {
        ('"Album"', '"Artist"'), ('"Track"', '"Album"'), ('"Track"', '"Genre"')}
    assert ("Track", "IFK_TrackAlbumId") in indexes(pg)
    assert pg.rows('SELECT "GenreId", "Name" FROM "Genre"') == [
        (1, "Rock"), (2, "An extremely long genre name of 40 chars")]
    check = pt("validate", "counts", "--table", "Track", "--table", "Genre",
               "--source-url", source.url, "--target-url", pg.url, cwd=folder)
    assert check.returncode == 0, check.stdout + check.stderr


def test_tables_without_a_primary_key(sqlite_db: Callable[[str], Db], pg: Db,
                                      tmp_path: Path) -> None:
    """A unique key of NOT NULL columns stands in for a missing primary key (pt's copies and
    checks need one); a table with no key at all is named in the summary and for review."""
    source = sqlite_db("source")
    source.script("""
        CREATE TABLE tags (code TEXT NOT NULL, label TEXT, UNIQUE (code));
        CREATE TABLE log (message TEXT)
        """)
    source.insert("tags", [("b", "B"), ("a", "A")])
    folder = tmp_path / "out"
    out = scaffold(folder, source, target=pg)
    assert ("note: tags: no primary key; the unique key (code) orders the copy and is the "
            "target's primary key") in out
    assert "note: log: no primary key and no unique key of NOT NULL columns: set source_key " \
           "in log.yaml (preflight stops the pipeline otherwise)" in out
    tags = load(folder / "tags.yaml")
    assert tags["source_key"] == ["s.code"]
    assert tags["expect"]["key_columns"] == ["code"]
    assert "CONSTRAINT tags_pkey PRIMARY KEY (code)" in (folder / "target-schema.sql").read_text()
    assert "UNIQUE" not in (folder / "target-post-data.sql").read_text()
    pre_data(folder, pg)
    copy(folder, "tags.yaml", source, pg)
    assert post_data(folder, pg)["failed"] is None
    assert pg.rows("SELECT * FROM tags") == [("a", "A"), ("b", "B")]
