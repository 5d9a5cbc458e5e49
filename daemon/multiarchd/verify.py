"""Proving that an architecture executes: run a probe program of that architecture through the
kernel's binfmt_misc table and check what it did."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .catalog import Catalog
from .errors import UnknownArchitecture
from .problems import did_you_mean


@dataclass(frozen=True)
class Verdict:
    arch: str
    result: str  # ok, failed, untested
    message: str = ""


def resolve(names: Iterable[str], catalog: Catalog) -> list[str]:
    """Canonical names for what the user typed; UnknownArchitecture names the first bad one."""
    out = []
    for name in names:
        arch = catalog.canonical(name)
        if arch is None:
            raise UnknownArchitecture(f"unknown architecture {name!r}"
                                      f"{did_you_mean(name, catalog.aliases)}")
        out.append(arch)
    return out


def verify(arches: Iterable[str]) -> list[Verdict]:
    return [Verdict(a, "untested", "no probe program for this architecture in this version")
            for a in arches]
