"""The architecture and emulator catalog as data (catalog/ loads it from its table)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import Literal

from .errors import UnknownArchitecture
from .flags import Flags
from .problems import did_you_mean



@dataclass(frozen=True)
class Arch:
    name: str
    bits: int
    endian: Literal["little", "big"]
    machine: int
    runs: tuple[str, ...]  # what its kernels run by themselves besides it (catalog.toml)
    aliases: tuple[str, ...]
    magic: bytes
    mask: bytes

    def matches(self, header: bytes) -> bool:
        """Whether binfmt_misc would hand a file starting with `header` to this entry."""
        if len(header) < len(self.magic):
            return False
        return all((h & k) == (m & k) for h, m, k in zip(header, self.magic, self.mask))


@cache
def _candidates(paths: tuple[str, ...], arch: str) -> tuple[str, ...]:
    """An emulator's paths for one architecture (asked at every run: made once)."""
    return tuple(p.format(arch=arch) for p in paths)


@dataclass(frozen=True)
class Emulator:
    name: str
    arches: frozenset[str] | None  # None: every catalog arch
    hosts: frozenset[str] | None  # None: any host
    paths: tuple[str, ...]
    flags: Flags
    # arch -> the CPU model it runs with when the policy names none (empty: never a model)
    cpu: Mapping[str, str] = field(default_factory=dict)

    def runs(self, arch: str, host: str) -> bool:
        return (self.arches is None or arch in self.arches) and (
            self.hosts is None or host in self.hosts
        )

    def candidates(self, arch: str) -> tuple[str, ...]:
        return _candidates(self.paths, arch)


@dataclass(frozen=True)
class Catalog:
    arches: dict[str, Arch]
    emulators: dict[str, Emulator]
    aliases: dict[str, str]  # alias or canonical name -> canonical name

    def canonical(self, name: str) -> str | None:
        return self.aliases.get(name)

    @cached_property
    def interpreter_paths(self) -> frozenset[str]:
        """Every path where an emulator of the catalog may be, for any architecture."""
        return frozenset(p for emu in self.emulators.values() for a in self.arches
                         for p in emu.candidates(a))

    @cached_property
    def emulator_paths_and_names(self) -> frozenset[str]:
        """interpreter_paths, and the base name of each (an emulator installed elsewhere)."""
        paths = self.interpreter_paths
        return paths | {p.rsplit("/", 1)[-1] for p in paths}

    def takes_cpu_model(self, arch: str, interpreter: str) -> bool:
        """Whether the interpreter file at `interpreter` is a QEMU, whose -cpu an entry can
        carry: named as QEMU's are (qemu-*), or where discovery finds QEMU for `arch`."""
        return interpreter.rsplit("/", 1)[-1].startswith("qemu-") or \
            interpreter in self.emulators["qemu"].candidates(arch)

    def host_runs(self, host: str, arch: str) -> bool:
        """Whether the catalog says a kernel of `host` runs `arch` programs by itself."""
        return arch == host or (host in self.arches and arch in self.arches[host].runs)

    def resolve(self, names: Iterable[str]) -> list[str]:
        """Canonical names for what the user typed; UnknownArchitecture names the first bad one."""
        out = []
        for name in names:
            arch = self.canonical(name)
            if arch is None:
                raise UnknownArchitecture(f"unknown architecture {name!r}"
                                          f"{did_you_mean(name, self.aliases)}")
            out.append(arch)
        return out
