"""Run ids and side files apart in the shared PostgreSQL store too (issue 12, item 6; ADR 0016).

With `--store postgresql://...` the lines live in the database, but the runner's state dir
still holds the run's folder (pipeline copy, logs) and its seals, named from the id as for the
JSONL store, and `export --format jsonl -o <runs>/<id>.jsonl` puts a run file beside them. So
the same ids are refused, by every command, and nothing is stored for them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pulsaride.engine.pgstore import PostgresStore
from tests.conftest import run_pt
from tests.engine.test_run_ids import COLLIDING, PIPELINE, one_line


@pytest.mark.slow
def test_the_postgresql_store_refuses_ids_that_name_side_files(tmp_path: Path,
                                                               pg_url: str) -> None:
    (tmp_path / "p.yml").write_text(PIPELINE)
    env = {"PT_STORE": pg_url}
    assert run_pt("pipeline", "keygen", "--out", "key", cwd=tmp_path).returncode == 0
    started = run_pt("pipeline", "run", "p.yml", "--run-id", "b", "--no-wait", "-q",
                     "--seal-key", "key", cwd=tmp_path, env=env)
    assert started.returncode == 3, started.stderr
    runs = tmp_path / ".pulsaride" / "pipeline-runs"
    before = {p.name: p.read_bytes() for p in runs.iterdir() if p.is_file()}
    assert "b.seals.jsonl" in before
    for run_id in COLLIDING:
        for args in (("run", "p.yml", "--run-id", run_id, "--no-wait", "-q"),
                     ("status", "p.yml", "--run-id", run_id),
                     ("approve", "p.yml", "--run-id", run_id, "--job", "gate"),
                     ("export", "--run-id", run_id, "--format", "jsonl"),
                     ("verify", "--run-id", run_id)):
            line = one_line(run_pt("pipeline", *args, cwd=tmp_path, env=env))
            assert "reserved for the store's own files" in line, line
    assert {p.name: p.read_bytes() for p in runs.iterdir() if p.is_file()} == before
    store = PostgresStore.connect(pg_url)
    try:
        assert [run_id for run_id in COLLIDING if store.select(run_id, gt=0)] == []
    finally:
        store.close()
    verified = run_pt("pipeline", "verify", "--run-id", "b", "--pubkey", "key.pub",
                      cwd=tmp_path, env=env)
    assert verified.returncode == 0, verified.stdout
