"""Property: `verify` detects every single mutation of a run's evidence.

Random valid runs (random pipelines, exit codes, retries, gate decisions, resumes; made through
the real operations, runner and run files, sealed at every checkpoint; see evidence_runs.py),
then ONE random mutation of the run file: an edited field value of a line, a deleted line, two
swapped lines, an inserted copy of a line, a line of another run pasted (inserted or in place
of one), or the end of the file cut (at a line boundary or inside a line). `verify_run` over
`load_evidence` must report at least one finding, every time:

- with the public key: every mutation, anywhere;
- without it: every mutation except those ADR 0006 documents as undetectable without a seal
  (cutting the end of the file; editing or deleting the last line, which is the same as
  rewriting a consistent chain of it).

Both start by checking that the unmutated run verifies clean and is sealed up to its last line.
Each kind of mutation gets its own examples (hypothesis favours the first of a sampled list).

A third property: the fast schema check verify relies on (engine/fastschema.py) gives
jsonschema's answer on every line of random runs, unedited and with one value edited (anywhere
in the line, of any JSON type).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache

import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from pulsaride.engine.evidence import load_evidence
from pulsaride.engine.fastschema import Check, Unsure, compile_schema
from pulsaride.engine.layout import StateDir
from pulsaride.projections.verify import VerifyReport, verify_run
from pulsaride.schemas import load_schema

from .evidence_runs import (
    KINDS,
    PUBLIC_KEY,
    EvidencePlan,
    edit_deep,
    evidence_plans,
    example_folder,
    lines_of,
    make_run,
    mutate,
)
from .strategies import examples

SETTINGS = settings(max_examples=examples(30), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
RUN_ID = "audited"
THEIRS = ("audited", "another")  # a pasted line comes from a run of the same id or not
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
THEIR_START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # another run starts at another time


def check(data: bytes, state: StateDir, *, sealed: bool) -> VerifyReport:
    """Write `data` as the run file and verify it from disk."""
    state.run_file(RUN_ID).write_bytes(data)
    return verify_run(load_evidence(state, RUN_ID), public_key=PUBLIC_KEY if sealed else None)


def run_and_mutate(data: st.DataObject, plan: EvidencePlan, kind: str, *, sealed: bool) -> None:
    with example_folder() as tmp:
        state = make_run(plan, tmp / "ours", RUN_ID, START)
        original = state.run_file(RUN_ID).read_bytes()
        clean = check(original, state, sealed=True)
        assert clean.ok, [f.text() for f in clean.findings]
        assert clean.sealed_up_to == len(lines_of(original))  # the last line is a checkpoint
        other = b""
        if kind == "paste":
            their_plan = data.draw(evidence_plans(), label="their plan")
            their_id = data.draw(st.sampled_from(THEIRS), label="their run id")
            theirs = make_run(their_plan, tmp / "theirs", their_id, THEIR_START)
            other = theirs.run_file(their_id).read_bytes()
        mutated, mutation = mutate(data.draw, kind, original, other, last_line=sealed)
        data.draw(st.just(mutation), label="mutation")
        report = check(mutated, state, sealed=sealed)
        assert report.findings, f"{mutation} went undetected"
        event(f"first finding [{report.findings[0].check}]")


@pytest.mark.parametrize("kind", KINDS)
@SETTINGS
@given(plan=evidence_plans(), data=st.data())
def test_verify_with_the_public_key_detects_every_single_mutation_of_a_sealed_run(
        kind: str, plan: EvidencePlan, data: st.DataObject) -> None:
    run_and_mutate(data, plan, kind, sealed=True)


@pytest.mark.parametrize("kind", [kind for kind in KINDS if kind != "cut"])
@SETTINGS
@given(plan=evidence_plans(), data=st.data())
def test_verify_without_a_key_detects_every_single_mutation_short_of_the_end_of_the_file(
        kind: str, plan: EvidencePlan, data: st.DataObject) -> None:
    run_and_mutate(data, plan, kind, sealed=False)


@cache
def _schema_checks(name: str) -> tuple[Check, Draft202012Validator]:
    schema = load_schema("event")
    wrapper = {"$ref": f"#/$defs/{name}", "$defs": schema["$defs"]}
    fast = compile_schema(wrapper, schema["$defs"])
    assert fast is not None, f"the fast check does not cover {name}"
    return fast, Draft202012Validator(wrapper)


@SETTINGS
@given(plan=evidence_plans(), data=st.data())
def test_the_fast_schema_check_gives_the_answer_of_jsonschema_on_every_line_edited_or_not(
        plan: EvidencePlan, data: st.DataObject) -> None:
    """verify asks jsonschema only about lines the fast check rejects: so the fast check must
    never accept a line jsonschema rejects (nor the reverse, or a clean run would cost
    jsonschema's time)."""
    with example_folder() as tmp:
        state = make_run(plan, tmp, RUN_ID, START)
        lines = lines_of(state.run_file(RUN_ID).read_bytes())
    for number, line in enumerate(lines, start=1):
        original = orjson.loads(line)
        fast, validator = _schema_checks(original["event"])
        assert fast(original) and validator.is_valid(original), number
        edited, where = edit_deep(data.draw, orjson.loads(line))
        try:
            answer = fast(edited)
        except Unsure:
            event("unsure")
            continue
        assert answer == validator.is_valid(edited), f"line {number}: {where}"
        event(f"an edited line is {'valid' if answer else 'invalid'}")
