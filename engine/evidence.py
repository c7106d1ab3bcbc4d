"""A run's evidence as files: the run file, the pipeline file as run, job logs and seals.

Reading is read-only and confined to the run's own folder: a path named in a line (a log, a
copy) is only followed if it stays inside `<runs>/<run-id>/`; the bytes come through the
store (engine/jsonl_store.py). Bundles, an output the user names, are written here.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .jsonl_store import read_seals, read_side_file, run_files
from .layout import StateDir, check_run_id, seals_path
from .seal import Seal
from .stores import open_store


@dataclass(frozen=True)
class RunEvidence:
    """Everything kept about one run, read from disk once."""

    run_id: str
    runs: Path
    data: bytes  # the whole run file
    seals: list[Seal] = field(default_factory=list)
    seal_problems: list[str] = field(default_factory=list)
    resolved_folders: dict[Path, Path] = field(default_factory=dict, repr=False, compare=False)

    @property
    def run_file(self) -> Path:
        """Path of the run file."""
        return self.runs / f"{self.run_id}.jsonl"

    @property
    def lines(self) -> list[bytes]:
        """The complete lines (without their newline)."""
        complete, _, _ = self.data.rpartition(b"\n")
        return complete.split(b"\n") if complete else []

    @property
    def tail(self) -> bytes:
        """Bytes after the last newline (a torn write), usually empty."""
        return self.data.rpartition(b"\n")[2]

    def artifact(self, relative: str) -> bytes | None:
        """The bytes of a file a line names (relative to the runs folder), if it is one of
        this run's files and exists; None otherwise."""
        path = self.artifact_path(relative)
        if path is None or not path.is_file():
            return None
        return read_side_file(path)

    def side_file(self, name: str) -> bytes | None:
        """A set-aside torn tail of this run (`<id>.jsonl.tail-...`), if present."""
        if "/" in name or not name.startswith(f"{self.run_id}.jsonl.tail-"):
            return None
        path = self.runs / name
        return read_side_file(path) if path.is_file() and not path.is_symlink() else None

    def artifact_path(self, relative: str) -> Path | None:
        """Where a file a line names lives, if it is inside the run's folder."""
        pure = PurePosixPath(relative)
        if pure.is_absolute() or ".." in pure.parts or not pure.parts:
            return None
        if pure.parts[0] != self.run_id and pure.name != f"{self.run_id}.jsonl":
            return None
        path = self.runs / pure
        folder = self._resolved(self.runs / self.run_id)
        # Resolve each folder once (a run has one log folder per job); only a symlinked file
        # needs resolving itself.
        real = path.resolve() if path.is_symlink() else self._resolved(path.parent) / path.name
        return path if real.is_relative_to(folder) else None

    def _resolved(self, folder: Path) -> Path:
        found = self.resolved_folders.get(folder)
        if found is None:
            found = self.resolved_folders[folder] = folder.resolve()
        return found

    def files(self) -> Iterator[tuple[str, Path]]:
        """Every file of the run: (path relative to the runs folder, path on disk)."""
        return run_files(self.runs, self.run_id)


def load_evidence(state: StateDir, run_id: str, store: str | None = None) -> RunEvidence:
    """Read a run's lines (from the state dir's file, or the shared `store`) and seals;
    RunIdError if the run does not exist."""
    path = state.run_file(check_run_id(run_id))
    with closing(open_store(store, state)) as runs:
        data = runs.read_bytes(run_id)
    seals, problems = read_seals(seals_path(path))
    return RunEvidence(run_id=run_id, runs=state.runs, data=data, seals=seals,
                       seal_problems=problems)


def write_bundle(evidence: RunEvidence, extra: dict[str, bytes], target: Path,
                 mtime: float) -> list[tuple[str, str]]:
    """Write a .tar.gz of the run's files plus `extra` (name -> bytes) and a MANIFEST.sha256
    that `sha256sum -c` checks; return the manifest entries. Deterministic for equal input."""
    root = f"pulsaride-run-{evidence.run_id}"
    run_file = f"{evidence.run_id}.jsonl"  # its bytes as read (they may come from a database)
    members: list[tuple[str, bytes]] = [
        (name, evidence.data if name == run_file else read_side_file(path))
        for name, path in evidence.files()]
    members += sorted(extra.items())
    manifest = [(hashlib.sha256(data).hexdigest(), name) for name, data in members]
    listing = "".join(f"{digest}  {name}\n" for digest, name in manifest).encode()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    # filename="": the gzip header would otherwise name the (partial) output file.
    with partial.open("wb") as raw, \
            gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=int(mtime)) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as bundle:
        for name, data in [*members, ("MANIFEST.sha256", listing)]:
            info = tarfile.TarInfo(f"{root}/{name}")
            info.size = len(data)
            info.mtime = int(mtime)
            info.mode = 0o644
            bundle.addfile(info, io.BytesIO(data))
    partial.replace(target)
    return manifest
