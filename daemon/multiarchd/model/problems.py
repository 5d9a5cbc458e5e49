"""A problem found in the policy, with its place: `file:line:column: what is wrong; what to do`."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Place:
    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}" if self.line else self.file


@dataclass(frozen=True)
class Problem:
    place: Place
    message: str
    # What the problem spoils: None for the whole policy (nothing is applied), else the one
    # architecture or custom entry (("arch", "aarch64"), ("custom", "dos")) that is left as it is.
    scope: tuple[str, str] | None = None

    def __str__(self) -> str:
        return f"{self.place}: {self.message}"


def closest(word: str, choices: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)`, or the allowed values when nothing is close."""
    close = closest(word, choices)
    if close:
        return f" (did you mean {close!r}?)"
    return f" (allowed: {', '.join(sorted(set(choices)))})"
