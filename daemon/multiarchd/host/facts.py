"""Probing this machine: its architecture, and which interpreter files exist and run."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterable

from ..model.catalog import Catalog
from ..model.host import FileId, FileState, Host
from ..model.policy import Policy
from .native import native

# `uname -m` spellings that are not catalog names.
_UNAME = {
    "i486": "i386", "i586": "i386", "i686": "i386", "amd64": "x86_64",
    "armv5tel": "arm", "armv6l": "arm", "armv7l": "arm", "armv8l": "arm",
    "armv7b": "armeb", "parisc": "hppa", "parisc64": "hppa", "sparc64": "sparc64",
    "ppc64el": "ppc64le", "sh4a": "sh4",
}


def host_arch(catalog: Catalog, machine: str | None = None) -> str:
    machine = machine or os.uname().machine
    name = _UNAME.get(machine, machine)
    if name in ("mips", "mips64") and sys.byteorder == "little":
        name += "el"
    return catalog.canonical(name) or name


def file_state(path: str) -> tuple[FileState, FileId | None]:
    try:
        st = os.stat(path)
    except OSError:
        return FileState.MISSING, None
    ident = (st.st_dev, st.st_ino)
    if not stat.S_ISREG(st.st_mode) or not (st.st_mode & 0o111) or not os.access(path, os.X_OK):
        return FileState.NOT_EXECUTABLE, ident
    return FileState.OK, ident


def candidate_paths(policy: Policy | None, catalog: Catalog) -> set[str]:
    """Every interpreter path the desired state may ask about."""
    paths = {p for emu in catalog.emulators.values() for a in catalog.arches
             for p in emu.candidates(a)}
    if policy is not None:
        paths.update(r.interpreter for r in policy.arches.values() if r.interpreter)
        paths.update(c.interpreter for c in policy.custom)
    return paths


def probe_host(catalog: Catalog, paths: Iterable[str], machine: str | None = None) -> Host:
    states = {p: file_state(p) for p in paths}
    return Host(arch=host_arch(catalog, machine),
                files={p: state for p, (state, _) in states.items()},
                ids={p: ident for p, (_, ident) in states.items() if ident is not None},
                native=native()[0] if machine is None else None)
