"""Strict YAML reading for files a user hands us: safe tags only, no duplicate keys, bounded.

PyYAML's safe loader already refuses `!!python/...` tags. On top of it we refuse duplicate
keys (YAML says they are an error; PyYAML keeps the last silently), cap the file size, and
cap the size of the document once aliases are expanded (a "billion laughs" file is small on
disk and shares nodes in memory, but explodes as soon as anything walks it).
"""

from __future__ import annotations

from typing import Any

import yaml

from .errors import BadInputError, PipelineDefinitionError

MAX_FILE_BYTES = 1024 * 1024
MAX_EXPANDED_NODES = 200_000

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# Characters YAML reads as line breaks but PyYAML writes raw inside single quotes, where the
# reader then folds them to a space: such a string is written double-quoted, escaped.
_FOLDED_BREAKS = frozenset("\x85\u2028\u2029")


class YamlError(BadInputError):
    """The text is not acceptable YAML; the message names the place."""


class _StrictLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """Safe loader that refuses duplicate mapping keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, list | dict):
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    "found an unhashable key", key_node.start_mark,
                )
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"found duplicate key {key!r}", key_node.start_mark,
                )
            seen[key] = key_node
        result: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return result


class _ExactDumper(yaml.SafeDumper):
    """Safe dumper whose strings read back exactly as written."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = '"' if _FOLDED_BREAKS.intersection(value) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_ExactDumper.add_representer(str, _represent_str)


def dump_yaml(document: Any) -> str:
    """`document` as YAML text (keys in their order, unicode as is) that `load_yaml` turns
    back into an equal document, whatever its strings hold."""
    return yaml.dump(document, Dumper=_ExactDumper, sort_keys=False, width=100,
                     allow_unicode=True)


def load_yaml(data: bytes, source: str) -> Any:
    """Parse `data` (the bytes of `source`) strictly; raise YamlError with a located message."""
    if len(data) > MAX_FILE_BYTES:
        raise YamlError(f"{source}: file is {len(data)} bytes; the limit is {MAX_FILE_BYTES}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node, source)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        raise YamlError(f"{source}: {_describe(exc)}") from None
    except yaml.YAMLError as exc:
        raise YamlError(f"{source}: invalid YAML: {exc}") from None
    except RecursionError:
        raise YamlError(f"{source}: document is nested too deeply") from None
    finally:
        loader.dispose()


def load_mapping(data: bytes, source: str, *, empty: str, not_mapping: str,
                 error: type[PipelineDefinitionError] = PipelineDefinitionError,
                 ) -> dict[str, Any]:
    """The mapping a user's YAML file holds; `error` naming `source` if it is empty or not a
    mapping (YamlError if it is not YAML)."""
    document = load_yaml(data, source)
    if document is None:
        raise error(source, [empty])
    if not isinstance(document, dict):
        raise error(source, [not_mapping])
    return document


def _describe(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = exc.problem or exc.context or "invalid YAML"
    if exc.context and exc.problem and "duplicate" not in exc.problem:
        problem = f"{problem} ({exc.context})"
    return f"{where}{problem}"


def _check_expansion(root: yaml.Node, source: str) -> None:
    """Refuse self-referencing documents and those whose expanded size is too large."""
    sizes: dict[int, int] = {}
    visiting: set[int] = set()
    # Post-order walk without recursion; a node's size counts its children as often as
    # they are referenced, which is what anything walking the loaded document would pay.
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        children = _children(node)
        if children_done:
            visiting.discard(id(node))
            total = 1 + sum(sizes[id(c)] for c in children)
            if total > MAX_EXPANDED_NODES:
                raise YamlError(
                    f"{source}: document expands to more than {MAX_EXPANDED_NODES} nodes "
                    "(aliases referencing aliases?); refusing it"
                )
            sizes[id(node)] = total
            continue
        if id(node) in sizes:
            continue
        if id(node) in visiting:
            raise YamlError(f"{source}: document refers to itself through an alias")
        visiting.add(id(node))
        stack.append((node, True))
        stack.extend((child, False) for child in children)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []
