"""Reading a pipeline file: strict YAML, then JSON Schema, then semantic checks.

Every problem is collected and reported at once, each naming the job and key it is about.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pulsaride.schemas import load_schema

from .approvers import with_approver_keys
from .checks import pipeline_problems
from .errors import PipelineDefinitionError
from .inputs import PIPELINE_FILE_BYTES, read_bounded
from .model import (
    BACKOFF_RANGE,
    DURATION_LIMIT,
    Pipeline,
    duration_problem,
    number_problem,
    pipeline_from_definition,
)
from .yamlsafe import load_mapping

if TYPE_CHECKING:
    from jsonschema import ValidationError

_DURATION = re.compile(r"^(?P<value>[0-9]+(?:\.[0-9]+)?)(?P<unit>ms|s|m|h)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class PipelineFile:
    """A pipeline as loaded from disk, with what identifies that exact file content."""

    path: Path
    sha256: str
    pipeline: Pipeline
    data: bytes


def load_pipeline_file(path: Path) -> PipelineFile:
    """Read (at most the size limit + 1 bytes) and validate the pipeline file at `path`."""
    data = read_bounded(path, PIPELINE_FILE_BYTES, "pipeline file")
    pipeline = parse_pipeline(data, str(path), base=path.parent)
    return PipelineFile(path=path.resolve(), sha256=hashlib.sha256(data).hexdigest(),
                        pipeline=pipeline, data=data)


def parse_pipeline(data: bytes, source: str, base: Path | None = None) -> Pipeline:
    """Parse and validate pipeline file content; raise PipelineDefinitionError listing problems.
    `approvers_file` paths are relative to `base` (default: the working directory)."""
    document = load_mapping(
        data, source, empty="the file is empty; it needs 'stages' and 'jobs'",
        not_mapping="the file must be a mapping with the keys 'stages' and 'jobs'")
    problems = schema_problems(document)
    if problems:
        raise PipelineDefinitionError(source, problems)
    problems = _gate_key_problems(document) + _bounds_problems(document)
    if problems:
        raise PipelineDefinitionError(source, problems)
    document, problems = with_approver_keys(document, base or Path.cwd())
    if problems:
        raise PipelineDefinitionError(source, problems)
    pipeline = _build(document)
    problems = pipeline_problems(pipeline.stages, pipeline.jobs)
    if problems:
        raise PipelineDefinitionError(source, problems)
    return pipeline


def schema_problems(document: Mapping[str, Any]) -> list[str]:
    """Messages for every place where `document` breaks schemas/pipeline.schema.json."""
    import jsonschema  # noqa: PLC0415 - 40 ms to import; status and approve never need it

    validator = jsonschema.Draft202012Validator(load_schema("pipeline"))
    errors = sorted(validator.iter_errors(document), key=lambda e: [str(p) for p in e.path])
    return [_shorten(_describe(error)) for error in errors]


_MAX_PROBLEM = 400


def _shorten(problem: str) -> str:
    """A problem fits on a line: a huge value (deep nesting, a pasted blob) is cut short."""
    if len(problem) <= _MAX_PROBLEM:
        return problem
    return f"{problem[:_MAX_PROBLEM]}… ({len(problem)} characters; cut)"


def _describe(error: ValidationError) -> str:
    where = _where(error.absolute_path)
    validator = error.validator
    schema: dict[str, Any] = error.schema if isinstance(error.schema, dict) else {}
    if validator == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        given = error.instance if isinstance(error.instance, dict) else {}
        # YAML makes keys such as `on`, `yes`, `1` or `~` booleans, numbers or null.
        extra = sorted((k for k in given if k not in allowed), key=repr)
        hints = [f"'{k}'{_did_you_mean(k, allowed)}" if isinstance(k, str)
                 else f"{k!r} (YAML reads this key as {_kind(k)}; quote it)"
                 for k in extra]
        return f"{where}: unknown key {', '.join(hints)} (allowed: {', '.join(allowed)})"
    if validator == "required":
        return f"{where}: {error.message.replace('is a required property', 'is required')}"
    if validator == "oneOf":
        described = schema.get("description") or "a valid value"
        return f"{where}: {error.instance!r} is not valid; expected {described}"
    if validator == "pattern" and str(schema.get("pattern", "")).startswith("^[A-Za-z0-9]"):
        return (f"{where}: name {error.instance!r} may use only letters, digits, '_', '.', '-' "
                "and must start with a letter or digit (at most 100 characters)")
    if validator == "enum":
        choices = error.validator_value if isinstance(error.validator_value, list) else []
        options = ", ".join(repr(o) for o in choices if isinstance(o, str))
        return f"{where}: {error.instance!r} is not one of {options}"
    return f"{where}: {error.message}"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return f"a {type(value).__name__}"


def _where(path: Iterable[Any]) -> str:
    parts = list(path)
    if len(parts) >= 2 and parts[0] == "jobs":
        rest = ".".join(str(p) for p in parts[2:])
        return f"job '{parts[1]}'" + (f": {rest}" if rest else "")
    return ".".join(str(p) for p in parts) or "top level"


def _did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


_GATE_KEYS = ("approvers", "approvers_file", "required", "separate_approver", "expires_in",
              "on_expiry")


def _gate_key_problems(document: Mapping[str, Any]) -> list[str]:
    return [
        f"job '{name}': {key} applies only to manual jobs (when: manual)"
        for name, spec in document["jobs"].items() if spec.get("when") != "manual"
        for key in _GATE_KEYS if key in spec
    ]


def _bounds_problems(document: Mapping[str, Any]) -> list[str]:
    """Durations over the limit, and numbers that are not finite (YAML's .nan passes the
    schema's minimum and maximum), by job and key."""
    problems = []
    for name, spec in document["jobs"].items():
        retry = spec.get("retry") if isinstance(spec.get("retry"), dict) else {}
        values = [("timeout", spec.get("timeout")), ("retry.delay", retry.get("delay")),
                  ("expires_in", spec.get("expires_in"))]
        for key, value in values:
            problem = None if value is None else _duration_value_problem(value)
            if problem is not None:
                problems.append(f"job '{name}': {key}: {problem}")
        backoff = retry.get("backoff")
        if backoff is not None and (problem := number_problem(backoff, *BACKOFF_RANGE)):
            problems.append(f"job '{name}': retry.backoff: {problem}")
        for resource, amount in (spec.get("resources") or {}).items():
            if (problem := number_problem(amount, 0.0, 1e12)) is not None:
                problems.append(f"job '{name}': resources.{resource}: {problem}")
    return problems


def _duration_value_problem(value: float | str) -> str | None:
    problem = duration_problem(_seconds(value))
    if problem is not None and isinstance(value, str):  # the schema's pattern: never negative
        return f"{value!r} is longer than the limit of {DURATION_LIMIT}"
    return problem


def _build(document: Mapping[str, Any]) -> Pipeline:
    """The Pipeline of a schema-valid document, defaults filled in and durations in seconds."""
    pipeline = pipeline_from_definition({
        "version": "1.0",
        "stages": document["stages"],
        "variables": _variables(document.get("variables", {})),
        "jobs": {name: _job(spec, document) for name, spec in document["jobs"].items()},
    })
    jobs = {name: replace(job, secret_variables=_declared(document["jobs"][name]))
            for name, job in pipeline.jobs.items()}
    return replace(pipeline, jobs=jobs, secret_variables=_declared(document))


def _declared(spec: Mapping[str, Any]) -> frozenset[str]:
    """Names of the variables of `spec` declared `{value: ..., secret: true}`."""
    return frozenset(name for name, value in spec.get("variables", {}).items()
                     if isinstance(value, dict) and value.get("secret") is True)


def _job(spec: Mapping[str, Any], document: Mapping[str, Any]) -> dict[str, Any]:
    retry = spec.get("retry", 0)
    if isinstance(retry, int):
        retry = {"max": retry}
    plain = {k: v for k, v in spec.items() if k not in _GATE_KEYS}
    return {
        **plain,
        "retry": {"max": retry["max"], "delay": _seconds(retry.get("delay", 0)),
                  "backoff": float(retry.get("backoff", 1.0))},
        "timeout": _seconds(spec["timeout"]) if "timeout" in spec else None,
        "variables": _variables(spec.get("variables", {})),
        "gate": _gate(spec, document) if spec.get("when") == "manual" else None,
    }


def _gate(spec: Mapping[str, Any], document: Mapping[str, Any]) -> dict[str, Any]:
    """A manual job's gate policy; the job's own keys override the pipeline's."""
    return {
        "approvers": list(spec.get("approvers", document.get("approvers", []))),
        **_required(spec, document),
        "separate_approver": spec.get("separate_approver",
                                      document.get("separate_approver", False)),
        "expires_in": _seconds(spec["expires_in"]) if "expires_in" in spec else None,
        "on_expiry": spec.get("on_expiry", "fail"),
    }


def _required(spec: Mapping[str, Any], document: Mapping[str, Any]) -> dict[str, int]:
    """`required` only when declared, so runs of files without keys record what they did."""
    required = spec.get("required", document.get("required"))
    return {} if required is None else {"required": int(required)}


def _seconds(value: float | str) -> float:
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(value)
    assert match is not None  # the schema guarantees the pattern
    return float(match["value"]) * _UNIT_SECONDS[match["unit"]]


def _variables(values: Mapping[str, Any]) -> dict[str, str]:
    def text(v: Any) -> str:
        if isinstance(v, dict):  # {value: ..., secret: true}
            return text(v["value"])
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v)

    return {k: text(v) for k, v in values.items()}
