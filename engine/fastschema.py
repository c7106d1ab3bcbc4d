"""A fast yes/no check of a JSON value against the subset of JSON Schema (2020-12) that the
event schema uses, with jsonschema's exact semantics; `verify` runs it on every line and asks
jsonschema only to explain a line that fails it.

`compile_schema` gives None for a schema using any keyword outside the subset (the caller then
uses jsonschema for everything). A compiled check returns exactly what jsonschema would
(valid or not), or raises `Unsure` where an exact answer would need more code than it is worth
(`uniqueItems` over anything but strings); the caller then asks jsonschema.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Check = Callable[[Any], bool]

# Keywords that never change validity (without a format checker, `format` is an annotation).
_ANNOTATIONS = frozenset({"description", "title", "$schema", "$id", "$comment", "format",
                          "examples", "default", "$defs"})
_OBJECT = frozenset({"required", "properties", "additionalProperties"})
_LATER = _OBJECT | {"then", "else"}  # compiled with another keyword


class Unsure(Exception):
    """The check cannot decide exactly; ask jsonschema."""


class Unsupported(Exception):
    """The schema uses a keyword outside the subset."""


_TYPES: dict[str, Check] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    # Draft 6 and later: a float with no fractional part is an integer.
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool))
    or (isinstance(v, float) and v.is_integer()),
}


def equal(one: Any, two: Any) -> bool:
    """jsonschema's equality: like ==, but True is not 1 and False is not 0."""
    if one is two:
        return True
    if isinstance(one, str) or isinstance(two, str):
        return bool(one == two)
    if isinstance(one, list) and isinstance(two, list):
        return len(one) == len(two) and all(equal(a, b) for a, b in zip(one, two, strict=True))
    if isinstance(one, dict) and isinstance(two, dict):
        return one.keys() == two.keys() and all(equal(one[k], two[k]) for k in one)
    if isinstance(one, bool) or isinstance(two, bool):
        return isinstance(one, bool) and isinstance(two, bool) and one == two
    return bool(one == two)


def compile_schema(schema: Any, defs: dict[str, Any]) -> Check | None:
    """The check of `schema` (whose `#/$defs/...` references resolve in `defs`), or None."""
    try:
        return _Compiler(defs).compile(schema)
    except Unsupported:
        return None


class _Compiler:
    def __init__(self, defs: dict[str, Any]) -> None:
        self.defs = defs
        self.refs: dict[str, Check] = {}
        self.compiling: set[str] = set()

    def ref(self, ref: str) -> Check:
        prefix = "#/$defs/"
        name = ref[len(prefix):] if isinstance(ref, str) and ref.startswith(prefix) else None
        if name is None or name not in self.defs:
            raise Unsupported(ref)
        if name in self.compiling:
            raise Unsupported(f"recursive {ref}")
        if name not in self.refs:
            self.compiling.add(name)
            self.refs[name] = self.compile(self.defs[name])
            self.compiling.discard(name)
        return self.refs[name]

    def compile(self, schema: Any) -> Check:
        if schema is True:
            return _always
        if schema is False:
            return _never
        if not isinstance(schema, dict):
            raise Unsupported(repr(schema))
        leaf = _leaf(schema)
        if leaf is not None:
            return leaf
        checks = [self._keyword(key, value, schema) for key, value in schema.items()
                  if key not in _ANNOTATIONS and key not in _LATER]
        if _OBJECT & schema.keys():
            checks.append(self._object(schema))
        return _all_of([check for check in checks if check is not _always])

    def _object(self, schema: dict[str, Any]) -> Check:
        """`required`, `properties` and `additionalProperties` in one pass over the object."""
        if "patternProperties" in schema:
            raise Unsupported("patternProperties")
        required = tuple(schema.get("required", ()))
        props = {name: self.compile(sub) for name, sub in schema.get("properties", {}).items()}
        extra = self.compile(schema["additionalProperties"]) \
            if "additionalProperties" in schema else _always

        def check(v: Any) -> bool:
            if not isinstance(v, dict):
                return True
            for name in required:
                if name not in v:
                    return False
            for name, item in v.items():  # noqa: SIM110 - a loop is faster than all(...)
                if not props.get(name, extra)(item):
                    return False
            return True

        return check

    def _keyword(self, key: str, value: Any, schema: dict[str, Any]) -> Check:  # noqa: PLR0912
        if key == "$ref":
            return self.ref(value)
        if key == "type":
            return self._type(value)
        if key == "const":
            if isinstance(value, str):  # equal() of a string is ==, and == of a str and a
                return lambda v: bool(v == value)  # non-str (from JSON) is False
            return lambda v: equal(v, value)
        if key == "enum":
            if all(isinstance(each, str) for each in value):
                names = frozenset(value)
                return lambda v: isinstance(v, str) and v in names
            return lambda v: any(equal(v, each) for each in value)
        if key == "propertyNames":
            names_check = self.compile(value)
            return lambda v: not isinstance(v, dict) or all(names_check(name) for name in v)
        if key == "minProperties":
            return lambda v: not isinstance(v, dict) or len(v) >= value
        if key == "items":
            item = self.compile(value)
            return lambda v: not isinstance(v, list) or all(item(each) for each in v)
        if key == "minItems":
            return lambda v: not isinstance(v, list) or len(v) >= value
        if key == "uniqueItems":
            return _unique if value is True else _always
        if key == "minimum":
            number = _TYPES["number"]
            return lambda v: not number(v) or v >= value
        if key == "maximum":
            number = _TYPES["number"]
            return lambda v: not number(v) or v <= value
        if key == "exclusiveMinimum":
            number = _TYPES["number"]
            return lambda v: not number(v) or v > value
        if key == "minLength":
            return lambda v: not isinstance(v, str) or len(v) >= value
        if key == "pattern":
            search = re.compile(value).search
            return lambda v: not isinstance(v, str) or search(v) is not None
        if key == "allOf":
            return _all_of([self.compile(sub) for sub in value])
        if key == "anyOf":
            parts = [self.compile(sub) for sub in value]
            return lambda v: any(part(v) for part in parts)
        if key == "oneOf":
            return _one_of([self.compile(sub) for sub in value])
        if key == "if":
            condition = self.compile(value)
            then = self.compile(schema.get("then", True))
            otherwise = self.compile(schema.get("else", True))
            return lambda v: then(v) if condition(v) else otherwise(v)
        raise Unsupported(key)

    @staticmethod
    def _type(value: Any) -> Check:
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or any(name not in _TYPES for name in names):
            raise Unsupported(f"type {value!r}")
        checks = [_TYPES[name] for name in names]
        return checks[0] if len(checks) == 1 else lambda v: any(check(v) for check in checks)


def _leaf(schema: dict[str, Any]) -> Check | None:
    """One closure for the commonest leaves (the same answers, fewer calls): a string with a
    pattern and/or a minimum length, an integer with a minimum, null."""
    keys = schema.keys() - _ANNOTATIONS
    kind = schema.get("type")
    if kind == "null" and keys == {"type"}:
        return lambda v: v is None
    if kind == "string" and keys <= {"type", "pattern", "minLength"}:
        least = schema.get("minLength", 0)
        if "pattern" not in schema:
            return lambda v: isinstance(v, str) and len(v) >= least
        search = re.compile(schema["pattern"]).search
        if least:
            return lambda v: isinstance(v, str) and len(v) >= least and search(v) is not None
        return lambda v: isinstance(v, str) and search(v) is not None
    if kind == "integer" and keys <= {"type", "minimum"} and "minimum" in schema:
        least = schema["minimum"]
        integer = _TYPES["integer"]
        return lambda v: integer(v) and v >= least
    return None


def _always(_value: Any) -> bool:
    return True


def _never(_value: Any) -> bool:
    return False


def _all_of(checks: list[Check]) -> Check:
    if not checks:
        return _always
    if len(checks) == 1:
        return checks[0]

    def check(v: Any) -> bool:
        for part in checks:  # noqa: SIM110 - a loop is faster than all(...)
            if not part(v):
                return False
        return True

    return check


def _one_of(checks: list[Check]) -> Check:
    def check(v: Any) -> bool:
        found = False
        for part in checks:
            if part(v):
                if found:
                    return False
                found = True
        return found

    return check


def _unique(value: Any) -> bool:
    if not isinstance(value, list):
        return True
    if all(isinstance(item, str) for item in value):
        return len(set(value)) == len(value)
    raise Unsure("uniqueItems over values other than strings")
