"""A YAML document as a small tree of nodes that remember their line and column (plain data;
yamlnodes.py makes them from text)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

Value = Union[str, int, float, bool, None]


@dataclass(frozen=True)
class Mark:
    line: int  # 1-based
    column: int  # 1-based


@dataclass(frozen=True)
class Scalar:
    value: Value
    mark: Mark
    text: str = ""  # as written in the file (`010` for the number 8)


@dataclass(frozen=True)
class MapNode:
    items: tuple[tuple[Scalar, Node], ...]
    mark: Mark


@dataclass(frozen=True)
class SeqNode:
    items: tuple[Node, ...]
    mark: Mark


Node = Union[Scalar, MapNode, SeqNode]


class YamlError(Exception):
    def __init__(self, mark: Mark, message: str) -> None:
        super().__init__(message)
        self.mark = mark
        self.message = message
