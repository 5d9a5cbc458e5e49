"""YAML text -> a small tree of nodes (nodes.py) that remember their line and column.

The only module that imports PyYAML. Policy validation works on these nodes, so every error it
reports can name `file:line:column`.
"""

from __future__ import annotations

import yaml

from .nodes import MapNode, Mark, Node, Scalar, SeqNode, Value, YamlError


def _mark(m: yaml.Mark | None) -> Mark:
    return Mark(m.line + 1, m.column + 1) if m is not None else Mark(1, 1)


def _scalar(node: yaml.ScalarNode, loader: yaml.SafeLoader) -> Scalar:
    value: Value
    if node.tag == "tag:yaml.org,2002:str":
        value = node.value
    else:
        constructed = loader.construct_object(node)
        # Dates and other exotic scalars are kept as the text the user wrote.
        value = constructed if isinstance(constructed, (int, float, bool, type(None))) else node.value
    return Scalar(value, _mark(node.start_mark))


def _convert(node: yaml.Node, loader: yaml.SafeLoader) -> Node:
    if isinstance(node, yaml.ScalarNode):
        return _scalar(node, loader)
    if isinstance(node, yaml.SequenceNode):
        return SeqNode(tuple(_convert(n, loader) for n in node.value), _mark(node.start_mark))
    if isinstance(node, yaml.MappingNode):
        items: list[tuple[Scalar, Node]] = []
        seen: dict[Value, Mark] = {}
        for k, v in node.value:
            if not isinstance(k, yaml.ScalarNode):
                raise YamlError(_mark(k.start_mark), "a key must be a plain word, not a list or map")
            key = _scalar(k, loader)
            if key.value in seen:
                first = seen[key.value]
                raise YamlError(key.mark, f"duplicate key {key.value!r} (first at line "
                                          f"{first.line}); keep one of them")
            seen[key.value] = key.mark
            items.append((key, _convert(v, loader)))
        return MapNode(tuple(items), _mark(node.start_mark))
    raise YamlError(_mark(node.start_mark), f"unsupported YAML node {type(node).__name__}")


def parse(text: str) -> Node | None:
    """Parse one YAML document; None for an empty one. Raises YamlError with the place."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        return _convert(root, loader) if root is not None else None
    except yaml.MarkedYAMLError as e:
        mark = _mark(e.problem_mark or e.context_mark)
        raise YamlError(mark, f"malformed YAML: {e.problem or e.context}") from e
    except yaml.YAMLError as e:
        raise YamlError(Mark(1, 1), f"malformed YAML: {e}") from e
    finally:
        loader.dispose()
