"""YAML text -> a small tree of nodes (nodes.py) that remember their line and column.

The only module that imports PyYAML (its C loader when present). The tree is built from the
parser's events, not by PyYAML's composer, so that every limit is checked as the text is read:
nesting depth, the number of values (aliases count what they repeat, so an alias bomb stops
early), recursive and undefined aliases, tags other than YAML's own, and more than one document.
Every error carries its line and column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from .nodes import MapNode, Mark, Node, Scalar, SeqNode, Value, YamlError

MAX_DEPTH = 32  # nesting levels; a policy needs four
MAX_VALUES = 20_000  # scalars, lists and maps, counting what aliases repeat

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_YAML = "tag:yaml.org,2002:"
_SCALAR_TAGS = {f"{_YAML}{t}" for t in ("str", "int", "float", "bool", "null")}
_CONSTRUCTED = _SCALAR_TAGS - {f"{_YAML}str"}


def _mark(m: Any) -> Mark:
    return Mark(m.line + 1, m.column + 1) if m is not None else Mark(1, 1)


def _position(text: str, index: int) -> Mark:
    line = text.count("\n", 0, index) + 1
    return Mark(line, index - (text.rfind("\n", 0, index) + 1) + 1)


@dataclass
class _Open:
    """A list or map whose items are still being read."""

    kind: str  # "seq" or "map"
    mark: Mark
    anchor: str | None
    items: list[Node] = field(default_factory=list)
    keys: dict[Value, Mark] = field(default_factory=dict)  # a map's keys so far
    size: int = 1


class _Builder:
    # PyYAML's event API has no type hints (its C and Python loaders differ): Any here.
    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.anchors: dict[str, tuple[Node, int]] = {}
        self.open: list[_Open] = []
        self.values = 0

    def _count(self, size: int, at: Mark) -> None:
        self.values += size
        if self.values > MAX_VALUES:
            raise YamlError(at, f"more than {MAX_VALUES} values (counting what aliases repeat); "
                                "a policy is small: remove the aliases or the bulk")

    def _tag(self, tag: str | None, allowed: set[str], at: Mark) -> None:
        if tag not in (None, "!") and tag not in allowed:
            raise YamlError(at, f"unknown tag {tag!r}; a policy uses no tags: remove it")

    def _scalar(self, event: Any) -> Scalar:
        at = _mark(event.start_mark)
        self._tag(event.tag, _SCALAR_TAGS, at)
        explicit = event.tag not in (None, "!")
        tag = event.tag if explicit else \
            self.loader.resolve(yaml.ScalarNode, event.value, event.implicit)
        value: Value = event.value
        # Only what a policy can hold is made a value; dates and other exotic scalars are kept
        # as the text the user wrote (never constructed: 2023-02-30 would raise).
        if tag in _CONSTRUCTED:
            node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark,
                                   event.style)
            try:
                value = self.loader.construct_object(node)
            except (ValueError, KeyError, TypeError, IndexError, ArithmeticError,
                    yaml.YAMLError):
                short = event.value if len(event.value) <= 40 else event.value[:37] + "..."
                if explicit:
                    raise YamlError(at, f"{short!r} is not a valid {tag.replace(_YAML, '!!')}; "
                                        "fix the value or remove the tag") from None
                raise YamlError(at, f"the number {short} ({len(event.value)} characters) is "
                                    "too long to read; a policy has no such number: quote it "
                                    "or shorten it") from None
        return Scalar(value, at, event.value)

    def _add(self, node: Node, size: int, at: Mark) -> Node | None:
        """Put a finished node into the list or map being read; the root when none is."""
        if not self.open:
            return node
        parent = self.open[-1]
        parent.size += size
        if parent.kind == "map" and len(parent.items) % 2 == 0:
            if not isinstance(node, Scalar):
                raise YamlError(at, "a key must be a plain word, not a list or map")
            first = parent.keys.setdefault(node.value, node.mark)
            if first is not node.mark:
                raise YamlError(at, f"duplicate key {node.value!r} (first at line "
                                    f"{first.line}); keep one of them")
        parent.items.append(node)
        return None

    def _finish(self, done: _Open) -> Node:
        if done.kind == "seq":
            return SeqNode(tuple(done.items), done.mark)
        pairs = tuple(zip(done.items[::2], done.items[1::2]))
        return MapNode(tuple((k, v) for k, v in pairs if isinstance(k, Scalar)), done.mark)

    def document(self) -> Node:
        while True:
            event = self.loader.get_event()
            at = _mark(event.start_mark)
            node: Node
            anchor = None  # the anchor a finished node is known by
            if isinstance(event, yaml.ScalarEvent):
                node, size, anchor = self._scalar(event), 1, event.anchor
                self._count(1, at)
            elif isinstance(event, yaml.AliasEvent):
                if event.anchor not in self.anchors:
                    recursive = any(o.anchor == event.anchor for o in self.open)
                    raise YamlError(at, f"alias *{event.anchor} "
                                        f"{'refers to the list or map it is in' if recursive else 'has no anchor before it'}")
                node, size = self.anchors[event.anchor]
                self._count(size, at)
            elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                seq = isinstance(event, yaml.SequenceStartEvent)
                self._tag(event.tag, {f"{_YAML}{'seq' if seq else 'map'}"}, at)
                if len(self.open) >= MAX_DEPTH:
                    raise YamlError(at, f"nested more than {MAX_DEPTH} levels deep; a policy "
                                        "needs four")
                self._count(1, at)
                self.open.append(_Open("seq" if seq else "map", at, event.anchor))
                continue
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                done = self.open.pop()
                node, size, at, anchor = self._finish(done), done.size, done.mark, done.anchor
            else:
                raise YamlError(at, f"unexpected YAML event {type(event).__name__}")
            if anchor is not None:
                self.anchors[anchor] = (node, size)
            root = self._add(node, size, at)
            if root is not None:
                return root


def _error(e: yaml.YAMLError, text: str) -> YamlError:
    if isinstance(e, yaml.reader.ReaderError):
        code = e.character if isinstance(e.character, int) else ord(e.character)
        return YamlError(_position(text, e.position),
                         f"character U+{code:04X} is not allowed in YAML; remove it")
    if isinstance(e, yaml.MarkedYAMLError):
        mark = _mark(e.problem_mark or e.context_mark)
        return YamlError(mark, f"malformed YAML: {e.problem or e.context}")
    return YamlError(Mark(1, 1), f"malformed YAML: {e}")


def parse(text: str) -> Node | None:
    """Parse one YAML document; None for a file with no document (empty or only comments).
    Raises YamlError with the place."""
    try:
        loader: Any = _Loader(text)
    except yaml.YAMLError as e:  # the pure-Python reader checks every character up front
        raise _error(e, text) from None
    try:
        loader.get_event()  # stream start
        if loader.check_event(yaml.StreamEndEvent):
            return None
        loader.get_event()  # document start
        root = _Builder(loader).document()
        loader.get_event()  # document end
        if not loader.check_event(yaml.StreamEndEvent):
            extra = loader.peek_event()
            raise YamlError(_mark(extra.start_mark), "a second YAML document (after `---`); "
                                                     "a policy file holds one")
        return root
    except yaml.YAMLError as e:
        raise _error(e, text) from None
    finally:
        loader.dispose()
