"""Run ids and side files live in separate namespaces (issue 12, item 6; ADR 0016).

The store names a run's side files by adding to its id: `<id>.jsonl` (the run), `<id>.lock`,
`<id>.seals.jsonl`, `<id>.jsonl.tail-<n>-<digest>` and the folder `<id>/`. Before the fix a
run id `b.seals` shared a file with run `b`'s seals (starting it set `b`'s seals aside as a
torn run file, and both runs then failed `verify`), `b.lock` and `b.jsonl` named folders that
were `b`'s lock and run file. Now every id whose later dot-parts are a suffix word is refused.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pulsaride.engine.errors import RunIdError
from pulsaride.engine.layout import check_run_id
from tests.conftest import run_pt

PIPELINE = """\
stages: [s, g]
jobs:
  a: {stage: s, command: "echo a"}
  gate: {stage: g, command: "echo g", needs: [a], when: manual}
"""
# An id ending in every suffix the store adds to an id, in the cases a case-insensitive file
# system would confuse, and with the suffix in the middle.
COLLIDING = ["b.jsonl", "b.lock", "b.seals", "b.seals.jsonl", "b.jsonl.tail-1-0123456789ab",
             "b.SEALS", "b.Lock", "b.jsonl.x", "b.seals.2"]


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pt: error: invalid run id "), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run `b`, sealed at every checkpoint, waiting at its gate (so it has a lock file, a run
    folder, a seals file and, below, a set-aside tail)."""
    folder = tmp_path_factory.mktemp("ids")
    (folder / "p.yml").write_text(PIPELINE)
    assert run_pt("pipeline", "keygen", "--out", "key", cwd=folder).returncode == 0
    result = run_pt("pipeline", "run", "p.yml", "--run-id", "b", "--no-wait", "-q",
                    "--seal-key", "key", cwd=folder)
    assert result.returncode == 3, result.stderr
    return folder


def _files(folder: Path) -> dict[str, bytes]:
    runs = folder / ".pulsaride" / "pipeline-runs"
    return {str(p.relative_to(runs)): p.read_bytes() for p in runs.rglob("*") if p.is_file()}


@pytest.mark.parametrize("run_id", COLLIDING)
def test_an_id_naming_a_side_file_is_refused_and_the_other_run_still_verifies(
        sealed: Path, run_id: str) -> None:
    before = _files(sealed)
    for args in (("run", "p.yml", "--run-id", run_id, "--seal-key", "key", "--no-wait", "-q"),
                 ("resume", "p.yml", "--run-id", run_id, "--no-wait", "-q"),
                 ("status", "p.yml", "--run-id", run_id),
                 ("approve", "p.yml", "--run-id", run_id, "--job", "gate"),
                 ("seal", "--run-id", run_id, "--key", "key"),
                 ("verify", "--run-id", run_id)):
        line = one_line(run_pt("pipeline", *args, cwd=sealed))
        assert "reserved for the store's own files" in line, line
    assert _files(sealed) == before, "a refused id changed the state dir"
    verified = run_pt("pipeline", "verify", "--run-id", "b", "--pubkey", "key.pub",
                      cwd=sealed)
    assert verified.returncode == 0, verified.stdout
    assert "sealed up to line" in verified.stdout


def test_every_suffix_the_store_uses_is_covered(sealed: Path) -> None:
    """The namespaces are apart for the files that really exist: for every side file of run
    `b`, an id that would name it (as its run file, lock, seals or folder) is refused."""
    runs = sealed / ".pulsaride" / "pipeline-runs"
    (runs / "b.jsonl.tail-9-0123456789ab").write_bytes(b"torn")  # as quarantine_tail names it
    names = sorted(p.name for p in runs.iterdir())
    assert names == ["b", "b.jsonl", "b.jsonl.tail-9-0123456789ab", "b.lock", "b.seals.jsonl"]
    for name in names:
        for suffix in (".jsonl", ".lock", ".seals.jsonl", ""):  # what an id X makes: X<suffix>
            if not name.endswith(suffix) or name == "b":
                continue
            candidate = name.removesuffix(suffix) if suffix else name
            if candidate == "b":
                continue
            with pytest.raises(RunIdError, match="reserved for the store's own files"):
                check_run_id(candidate)
    (runs / "b.jsonl.tail-9-0123456789ab").unlink()


@pytest.mark.parametrize("run_id", ["b", "jsonl", "lock", "seals", "release.1", "b.locked",
                                    "b.sealsx", "nightly-42.v2", "b.jsonl2"])
def test_ids_that_only_look_alike_are_still_accepted(run_id: str) -> None:
    assert check_run_id(run_id) == run_id
