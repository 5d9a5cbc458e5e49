"""The architecture and emulator catalog, loaded from the data file beside this module."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from .flags import Flags

ELF_HEADER_LEN = 64


@dataclass(frozen=True)
class Arch:
    name: str
    bits: int
    endian: str
    machine: int
    family: str
    aliases: tuple[str, ...]
    magic: bytes
    mask: bytes

    def matches(self, header: bytes) -> bool:
        """Whether binfmt_misc would hand a file starting with `header` to this entry."""
        if len(header) < len(self.magic):
            return False
        return all((h & k) == (m & k) for h, m, k in zip(header, self.magic, self.mask))


@dataclass(frozen=True)
class Emulator:
    name: str
    arches: frozenset[str] | None  # None: every catalog arch
    hosts: frozenset[str] | None  # None: any host
    paths: tuple[str, ...]
    flags: Flags

    def runs(self, arch: str, host: str) -> bool:
        return (self.arches is None or arch in self.arches) and (
            self.hosts is None or host in self.hosts
        )

    def candidates(self, arch: str) -> tuple[str, ...]:
        return tuple(p.format(arch=arch) for p in self.paths)


@dataclass(frozen=True)
class Catalog:
    arches: dict[str, Arch]
    emulators: dict[str, Emulator]
    aliases: dict[str, str]  # alias or canonical name -> canonical name

    def canonical(self, name: str) -> str | None:
        return self.aliases.get(name)

    def match(self, header: bytes) -> list[Arch]:
        return [a for a in self.arches.values() if a.matches(header)]

    def family_of(self, arch: str) -> str:
        return self.arches[arch].family


def _star(value: Any) -> frozenset[str] | None:
    return None if value == "*" else frozenset(value)


@cache
def load_catalog() -> Catalog:
    raw = tomllib.loads(resources.files(__package__).joinpath("catalog.toml").read_text())
    arches = {
        name: Arch(
            name=name,
            bits=row["bits"],
            endian=row["endian"],
            machine=row["machine"],
            family=row["family"],
            aliases=tuple(row.get("aliases", ())),
            magic=bytes.fromhex(row["magic"]),
            mask=bytes.fromhex(row["mask"]),
        )
        for name, row in raw["arch"].items()
    }
    emulators = {
        name: Emulator(
            name=name,
            arches=_star(row["arches"]),
            hosts=_star(row["hosts"]),
            paths=tuple(row["paths"]),
            flags=Flags.parse(row["flags"]),
        )
        for name, row in raw["emulator"].items()
    }
    aliases = {name: name for name in arches}
    for arch in arches.values():
        aliases.update(dict.fromkeys(arch.aliases, arch.name))
    return Catalog(arches=arches, emulators=emulators, aliases=aliases)
