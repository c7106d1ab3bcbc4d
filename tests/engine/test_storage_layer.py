"""One storage layer: only the two store modules open, read, write, rename or sync run files.

The run files and their side files (lock, seals, torn tails, the pipeline file as run) are the
evidence an auditor replays; if any module could write them, no review could say what writes
them. So the package source is scanned (its syntax tree, not its text) for every way Python
touches a file, and each module doing so must be one of the two stores or be allowed below by
name with the reason, which is never a run file (ADR 0018).
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("engine", "projections", "cli", "web", "migration")

RUN_FILE_STORES = frozenset({"engine/jsonl_store.py", "engine/pgstore.py"})
"""The only modules that touch run files (pgstore keeps its lines in PostgreSQL)."""

OTHER_FILE_IO = {
    "engine/inputs.py": "reads the files a user hands pt (pipeline, transform, key, token), "
                        "bounded; the JSONL store reads seals through it too",
    "engine/executor.py": "writes a job's own output into its log file while the job runs",
    "engine/dask_executor.py": "writes a remote job's output into its log file",
    "engine/process_tag.py": "reads /proc/<pid>/environ to find the processes a run started",
    "engine/evidence.py": "writes the evidence bundle where the user asks (an export; the run's "
                          "files it holds are read through the JSONL store)",
    "cli/evidence.py": "writes a new key pair, and an export, where the user asks",
    "migration/validation_record.py": "writes a validation's result file into the run folder "
                                      "the user names",
    "migration/scaffold.py": "writes the files of a scaffolded project",
    "engine/signatures.py": "writes the ssh-agent key's public half into a temporary folder, "
                            "for ssh-keygen to sign with",
    "cli/attest.py": "writes the attestation where the user asks",
}
"""Other file I/O, by module, and why it is no run file."""

_ALWAYS = frozenset({"write_bytes", "write_text", "fdopen", "fsync", "fdatasync", "ftruncate",
                     "flock", "lockf", "pread", "pwrite"})
_MODULE_CALLS = {
    "os": frozenset({"open", "read", "write", "rename", "renames", "replace", "remove",
                     "unlink", "link", "symlink", "truncate"}) | _ALWAYS,
    "io": frozenset({"open", "FileIO"}),
    "shutil": frozenset({"move", "copy", "copy2", "copyfile", "copytree", "rmtree"}),
    "tempfile": frozenset({"NamedTemporaryFile", "TemporaryFile", "SpooledTemporaryFile",
                           "mkstemp"}),
}


def file_io(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, call) of every call in `tree` that opens, reads, writes, renames, removes, locks
    or syncs a file."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _touches_a_file(node):
            found.append((node.lineno, ast.unparse(node.func)))
    return found


def _touches_a_file(call: ast.Call) -> bool:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id == "open"
    if not isinstance(func, ast.Attribute):
        return False
    name, receiver = func.attr, func.value
    if isinstance(receiver, ast.Name) and receiver.id in _MODULE_CALLS:
        return name in _MODULE_CALLS[receiver.id]
    if name in _ALWAYS:
        return True
    if name in {"read_bytes", "read_text"}:  # Path.read_bytes(); never store.read_bytes(run_id)
        return not call.args
    if name == "open":  # Path.open() / Path.open("rb"); never store.open(run_id)
        if not call.args:
            return not call.keywords or any(k.arg == "mode" for k in call.keywords)
        first = call.args[0]
        return isinstance(first, ast.Constant) and isinstance(first.value, str)
    if name in {"rename", "replace"}:  # Path.replace(target); never str.replace(old, new)
        return len(call.args) == 1 and not call.keywords
    return name in {"unlink", "touch"}


def _modules() -> dict[str, ast.AST]:
    return dict(_parsed())


@cache
def _parsed() -> dict[str, ast.AST]:
    return {str(path.relative_to(ROOT)): ast.parse(path.read_text(), str(path))
            for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def violations(modules: dict[str, ast.AST]) -> list[str]:
    """Every file I/O call outside the stores and the modules allowed other file I/O."""
    allowed = RUN_FILE_STORES | OTHER_FILE_IO.keys()
    return [f"{name}:{line}: {call}" for name, tree in modules.items() if name not in allowed
            for line, call in file_io(tree)]


def test_only_the_two_stores_touch_run_files() -> None:
    assert violations(_modules()) == []


def test_every_other_file_io_allowance_is_still_needed() -> None:
    modules = _modules()
    unused = [name for name in OTHER_FILE_IO if not file_io(modules[name])]
    assert unused == []


def test_the_stores_are_where_the_run_files_are_written() -> None:
    modules = _modules()
    assert file_io(modules["engine/jsonl_store.py"])
    assert all(name in modules for name in RUN_FILE_STORES)


def test_the_scan_sees_every_way_of_touching_a_file() -> None:
    touching = [
        "open(path)", "path.open()", "path.open('rb')", "path.open(mode='wb')",
        "path.read_bytes()", "path.read_text()", "path.write_bytes(b'')", "path.write_text('')",
        "os.open(path, os.O_RDONLY)", "os.fdopen(fd)", "os.rename(a, b)", "os.replace(a, b)",
        "os.fsync(fd)", "os.fdatasync(fd)", "os.write(fd, b'')", "os.pread(fd, 1, 0)",
        "os.unlink(path)", "path.replace(other)", "path.rename(other)", "path.unlink()",
        "fcntl.flock(fd, fcntl.LOCK_EX)", "shutil.move(a, b)", "io.open(path)",
        "path.read_text(encoding='utf-8')", "tempfile.NamedTemporaryFile()",
        "handle.fileno() and os.fsync(handle.fileno())",
    ]
    for source in touching:
        assert file_io(ast.parse(source)), source


def test_the_scan_leaves_what_touches_no_file_alone() -> None:
    harmless = [
        "text.replace('a', 'b')", "moment.replace(tzinfo=UTC)", "store.open(run_id)",
        "runs.open(run_id, writable=True)", "Sides.open(transform, source, target)",
        "os.getpid()", "os.environ.get('X')", "path.exists()", "path.is_file()",
        "store.read_bytes(run_id)", "io.BytesIO(data)", "shutil.which('pt')",
    ]
    for source in harmless:
        assert not file_io(ast.parse(source)), source


def test_a_run_file_read_added_elsewhere_fails_the_check() -> None:
    modules = _modules()
    modules["engine/replay.py"] = ast.parse(
        "def sneak(state, run_id):\n    return state.run_file(run_id).read_bytes()\n")
    assert violations(modules) == ["engine/replay.py:2: state.run_file(run_id).read_bytes"]
