"""Facts about this machine: its architecture, and which interpreter files exist and run."""

from __future__ import annotations

import enum
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .catalog import Catalog
from .policy import Policy

# `uname -m` spellings that are not catalog names.
_UNAME = {
    "i486": "i386", "i586": "i386", "i686": "i386", "amd64": "x86_64",
    "armv5tel": "arm", "armv6l": "arm", "armv7l": "arm", "armv8l": "arm",
    "armv7b": "armeb", "parisc": "hppa", "parisc64": "hppa", "sparc64": "sparc64",
    "ppc64el": "ppc64le", "sh4a": "sh4",
}


class FileState(enum.StrEnum):
    OK = "ok"
    MISSING = "missing"
    NOT_EXECUTABLE = "not-executable"


@dataclass(frozen=True)
class Host:
    arch: str  # catalog name of this machine's architecture
    files: Mapping[str, FileState] = field(default_factory=dict)

    def file(self, path: str) -> FileState:
        return self.files.get(path, FileState.MISSING)


def host_arch(catalog: Catalog, machine: str | None = None) -> str:
    machine = machine or os.uname().machine
    name = _UNAME.get(machine, machine)
    if name in ("mips", "mips64") and sys.byteorder == "little":
        name += "el"
    return catalog.canonical(name) or name


def file_state(path: str) -> FileState:
    try:
        st = os.stat(path)
    except OSError:
        return FileState.MISSING
    if not os.path.isfile(path) or not (st.st_mode & 0o111) or not os.access(path, os.X_OK):
        return FileState.NOT_EXECUTABLE
    return FileState.OK


def candidate_paths(policy: Policy | None, catalog: Catalog) -> set[str]:
    """Every interpreter path the desired state may ask about."""
    paths = {p for emu in catalog.emulators.values() for a in catalog.arches
             for p in emu.candidates(a)}
    if policy is not None:
        paths.update(r.interpreter for r in policy.arches.values() if r.interpreter)
        paths.update(c.interpreter for c in policy.custom)
    return paths


def probe_host(catalog: Catalog, paths: Iterable[str], machine: str | None = None) -> Host:
    return Host(arch=host_arch(catalog, machine), files={p: file_state(p) for p in paths})
