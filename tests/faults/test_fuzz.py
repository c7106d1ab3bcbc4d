"""Fuzzing (hypothesis): the readers of untrusted bytes raise only our typed errors.

Targets: the pipeline loader (engine.loader.parse_pipeline), the event-line parser
(engine.lines.decode after orjson; engine.store.RunFile.read_new and replay on whole files;
projections.verify.verify_run, which must report rather than raise) and the transform loader
(migration.transform.load_transform on a file). Allowed errors: PulsarideError subclasses;
for `decode` alone, LineError (the store's typed error that RunFile turns into RunFileError).

`binary()` alone mostly produces bytes that stop at the first check (not UTF-8, not JSON), so
each target is also fed structured input that gets deeper: YAML documents built from the real
vocabulary, byte-level mutations of real files, and real run files whose records are mutated
and then re-chained (so the chain check passes and replay, the aggregate and verify see them).

Examples per property: PT_FAULTS_FUZZ (CI 150, full 20,000).
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from pathlib import Path
from typing import Any

import orjson
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pulsaride.engine.errors import PulsarideError
from pulsaride.engine.evidence import RunEvidence
from pulsaride.engine.jsonl_store import RunFile
from pulsaride.engine.lines import LineError, decode
from pulsaride.engine.loader import parse_pipeline
from pulsaride.engine.replay import replay
from pulsaride.migration.transform import load_transform
from pulsaride.projections.verify import verify_run
from tests.property.sim import RUN_ID, Scenario
from tests.property.strategies import CrashPoint, JobSpec, Outcomes, PipelineSpec

from .conftest import Tally, size

EXAMPLES = size("fuzz", ci=150, full=20_000)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SCRATCH = Path(tempfile.mkdtemp(prefix="pt-fuzz-"))
_COUNTS: dict[str, int] = {}


def _count(target: str) -> None:
    _COUNTS[target] = _COUNTS.get(target, 0) + 1


def teardown_module() -> None:
    Tally("fuzzing", {f"{k} inputs": v for k, v in _COUNTS.items()}).save(
        **{"untyped errors": 0})


# ---- inputs --------------------------------------------------------------------------------

PIPELINE_SAMPLE = (Path(__file__).resolve().parents[2] / "examples" / "demo"
                   / "pulsaride-pipeline.yml").read_bytes()
TRANSFORM_SAMPLE = (Path(__file__).resolve().parents[2] / "examples" / "demo"
                    / "orders.yaml").read_bytes()

PIPELINE_WORDS = ["version", "stages", "jobs", "stage", "command", "needs", "when", "on_failure",
                  "retry", "max", "delay", "backoff", "timeout", "variables", "description",
                  "approvers", "separate_approver", "expires_in", "on_expiry", "manual",
                  "always", "on_success", "abort", "continue", "fail", "skip", "s", "a", "b"]
TRANSFORM_WORDS = ["name", "version", "source_url", "target_url", "sources", "table", "alias",
                   "sql", "joins", "from", "to", "on", "type", "fields", "source", "expression",
                   "target_type", "filter", "target_table", "source_key", "key", "depends_on",
                   "via", "on_missing", "reject_policy", "validation", "expect", "sample_pct",
                   "key_columns", "count_tolerance", "options", "empty_string_as_null",
                   "fold_identifiers", "batch_size", "DEFER", "FAIL", "SKIP", "FAIL_ROW",
                   "o.ID", "o", "?", "?1", "lower(?)", "to_date(?)", "ID = 1", "$X", "${X}"]


def _scalars(words: list[str]) -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from(words), st.text(max_size=12), st.integers(-3, 10**12),
                     st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(),
                     st.sampled_from(["1s", "0.5s", "10m", "-1s", "1e9h", "nan", "", "()",
                                      "?((", "a ? b", "concat(?1, ?2)", "1/0", "'", "\\x00"]))


def documents(words: list[str]) -> st.SearchStrategy[Any]:
    """YAML-able documents whose keys come from the real vocabulary."""
    keys = st.one_of(st.sampled_from(words), st.text(max_size=6))
    return st.recursive(
        _scalars(words),
        lambda inner: st.one_of(st.lists(inner, max_size=5),
                                st.dictionaries(keys, inner, max_size=6)),
        max_leaves=40)


@st.composite
def mutations(draw: st.DrawFn, sample: bytes) -> bytes:
    """`sample` with a few bytes replaced, inserted or deleted."""
    data = bytearray(sample)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["replace", "insert", "delete"]))
        chunk = draw(st.binary(min_size=1, max_size=8)
                     | st.sampled_from([b"\n", b":", b"- ", b"&a", b"*a", b"{", b"[", b"'",
                                        b"  ", b"!!python/name:os.system", b"<<: *a"]))
        if kind == "replace":
            data[at:at + len(chunk)] = chunk
        elif kind == "insert":
            data[at:at] = chunk
        else:
            del data[at:at + draw(st.integers(1, 16))]
    return bytes(data)


# ---- the pipeline loader --------------------------------------------------------------------


def _load_pipeline(data: bytes) -> None:
    _count("pipeline loader")
    with contextlib.suppress(PulsarideError):
        parse_pipeline(data, "fuzz.yml")


@FUZZ
@given(st.binary(max_size=4096))
def test_pipeline_loader_on_random_bytes(data: bytes) -> None:
    _load_pipeline(data)


@FUZZ
@given(documents(PIPELINE_WORDS))
def test_pipeline_loader_on_documents_of_its_vocabulary(document: Any) -> None:
    _load_pipeline(yaml.safe_dump(document).encode())


@FUZZ
@given(st.dictionaries(st.sampled_from(PIPELINE_WORDS), documents(PIPELINE_WORDS), max_size=4),
       st.dictionaries(st.sampled_from(["a", "b", "c"]),
                       st.dictionaries(st.sampled_from(PIPELINE_WORDS), documents(PIPELINE_WORDS),
                                       max_size=6), max_size=3))
def test_pipeline_loader_on_nearly_valid_pipelines(top: dict[str, Any],
                                                    jobs: dict[str, Any]) -> None:
    document = {"stages": ["s", "a"], "jobs": {name: {"stage": "s", "command": "true", **spec}
                                               for name, spec in jobs.items()}, **top}
    _load_pipeline(yaml.safe_dump(document).encode())


@FUZZ
@given(mutations(PIPELINE_SAMPLE))
def test_pipeline_loader_on_mutated_files(data: bytes) -> None:
    _load_pipeline(data)


# ---- the transform loader -------------------------------------------------------------------


def _load_transform(data: bytes) -> None:
    _count("transform loader")
    path = SCRATCH / "fuzz-transform.yaml"
    path.write_bytes(data)
    with contextlib.suppress(PulsarideError):
        load_transform(path)


@FUZZ
@given(st.binary(max_size=4096))
def test_transform_loader_on_random_bytes(data: bytes) -> None:
    _load_transform(data)


@FUZZ
@given(documents(TRANSFORM_WORDS))
def test_transform_loader_on_documents_of_its_vocabulary(document: Any) -> None:
    _load_transform(yaml.safe_dump(document).encode())


@FUZZ
@given(st.lists(st.dictionaries(st.sampled_from(["name", "source", "expression",
                                                 "target_type"]),
                                st.one_of(st.sampled_from(TRANSFORM_WORDS),
                                          st.text(max_size=30)), max_size=4), max_size=4),
       st.one_of(st.none(), st.text(max_size=40), st.sampled_from(TRANSFORM_WORDS)))
def test_transform_loader_on_random_fields_and_filters(fields: list[dict[str, str]],
                                                       condition: str | None) -> None:
    document: dict[str, Any] = {"sources": [{"name": "o", "table": "ORDERS", "alias": "o"}],
                                "fields": fields, "target_table": "orders"}
    if condition:
        document["filter"] = condition
    _load_transform(yaml.safe_dump(document).encode())


@FUZZ
@given(mutations(TRANSFORM_SAMPLE))
def test_transform_loader_on_mutated_files(data: bytes) -> None:
    _load_transform(data)


# ---- event lines and run files --------------------------------------------------------------


def _a_real_run() -> tuple[list[dict[str, Any]], bytes]:
    spec = PipelineSpec(stages=("s", "t"), jobs=(
        JobSpec("a", "s"), JobSpec("b", "s", retry=1), JobSpec("g", "t", needs=("a",),
                                                                when="manual"),
        JobSpec("c", "t", needs=("g", "b"), when="always")))
    with Scenario(spec, Outcomes(codes={"b": (1, 0)}), parallelism=2, wait_for_approval=True,
                  seed=3) as scenario:
        scenario.segment(CrashPoint("observer", after=2, torn=20))
        assert scenario.segment().result is not None
        data = scenario.run_file.read_bytes()
    return [orjson.loads(line) for line in data.splitlines()], data


RECORDS, RUN_BYTES = _a_real_run()
EVENT_KEYS = sorted({key for record in RECORDS for key in record})


def _chain(records: list[dict[str, Any]]) -> bytes:
    """Encode `records` as a run file with a correct seq/prev chain."""
    prev, lines = "0" * 64, []
    for number, record in enumerate(records, start=1):
        line = orjson.dumps({**record, "seq": record.get("seq", number), "prev": prev},
                            option=orjson.OPT_NON_STR_KEYS)
        prev = hashlib.sha256(line).hexdigest()
        lines.append(line)
    return b"\n".join(lines) + b"\n"


def _read_run_file(data: bytes) -> None:
    _count("run file reader")
    path = SCRATCH / f"{RUN_ID}.jsonl"
    path.write_bytes(data)
    run_file = RunFile.open(path, RUN_ID)
    try:
        replay(run_file)
    except PulsarideError:
        pass
    finally:
        run_file.close()
    _count("verify")
    verify_run(RunEvidence(run_id=RUN_ID, runs=SCRATCH, data=data))  # reports, never raises


def _decode(raw: bytes) -> None:
    _count("event line parser")
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return
    if isinstance(record, dict):
        with contextlib.suppress(LineError):
            decode(record)


@FUZZ
@given(st.binary(max_size=2048))
def test_event_line_parser_on_random_bytes(raw: bytes) -> None:
    _decode(raw)


@FUZZ
@given(st.sampled_from(RECORDS), st.dictionaries(st.sampled_from(EVENT_KEYS),
                                                 documents(EVENT_KEYS), max_size=4))
def test_event_line_parser_on_real_lines_with_fields_replaced(record: dict[str, Any],
                                                              changes: dict[str, Any]) -> None:
    _decode(orjson.dumps({**record, **changes}, option=orjson.OPT_NON_STR_KEYS))


@FUZZ
@given(st.binary(max_size=4096))
def test_run_file_reader_on_random_bytes(data: bytes) -> None:
    _read_run_file(data)


@FUZZ
@given(st.integers(0, len(RUN_BYTES)), st.binary(max_size=512))
def test_run_file_reader_on_a_real_prefix_and_random_bytes(cut: int, data: bytes) -> None:
    _read_run_file(RUN_BYTES[:cut] + data)


@FUZZ
@given(mutations(RUN_BYTES))
def test_run_file_reader_on_mutated_real_files(data: bytes) -> None:
    _read_run_file(data)


@FUZZ
@given(st.integers(0, len(RECORDS) - 1),
       st.dictionaries(st.sampled_from(EVENT_KEYS), documents(EVENT_KEYS), min_size=1,
                       max_size=3),
       st.booleans())
def test_replay_and_verify_on_rechained_mutated_records(at: int, changes: dict[str, Any],
                                                       drop_key: bool) -> None:
    records = [dict(r) for r in RECORDS]
    records[at].update(changes)
    if drop_key:
        records[at].pop(sorted(changes)[0], None)
    _read_run_file(_chain(records))


# ---- what fuzzing found (each crashed with an untyped error before its fix) ------------------

FOUND = [
    # Keys YAML reads as null, numbers or booleans (`on`, `yes`, `1`, `~`): TypeError in the
    # "unknown key" message.
    b"~: 1\n",
    b"1: 1\n",
    b"true: 1\nstages: [s]\n",
    b'stages: [s]\njobs: {x: {stage: s, command: a, null: 1, b: 2, on: 3}}\n',
    # A job needing a job of an unknown stage: ValueError in the stage-order check.
    b"stages: [s]\njobs: {a: {stage: t, command: x}, b: {stage: s, command: y, needs: [a]}}\n",
]


def test_inputs_found_by_fuzzing_are_refused_with_typed_errors() -> None:
    for data in FOUND:
        try:
            parse_pipeline(data, "found.yml")
        except PulsarideError as exc:
            assert "found.yml" in str(exc)
        else:
            raise AssertionError(f"accepted: {data!r}")
