"""Probing this machine: its architecture, and which interpreter files exist and run."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TypeVar

from .. import identity
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


def _untrusted(st: os.stat_result, what: str, path: str) -> str | None:
    """Why a file or directory that others could change cannot be trusted, and the fix."""
    if st.st_uid not in (0, os.geteuid()):
        return (f"{what} {path} is owned by uid {st.st_uid}, not root: whoever owns it can "
                f"change what runs for every foreign program (chown root {path})")
    if st.st_mode & 0o022:
        who = "group and others" if st.st_mode & 0o022 == 0o022 else \
            "its group" if st.st_mode & 0o020 else "others"
        return (f"{what} {path} is writable by {who} (mode {stat.S_IMODE(st.st_mode):04o}): "
                f"they can change what runs for every foreign program (chmod go-w {path})")
    return None


def file_state(path: str, dirs: dict[str, str | None] | None = None,
               seen: identity.Seen | None = None) -> tuple[FileState, FileId | None, str]:
    """What the interpreter at `path` is, which file it is, and why it is untrusted.

    The file is opened first (following symlinks) and everything is checked on that descriptor,
    then every directory above the file actually opened: a file only root can replace, in
    directories only root can change, as sshd's StrictModes wants of authorized_keys. `dirs`
    keeps what was found of each directory and those above it, for the next path; `seen` gets
    the identity of the file and of each directory, as decided on.
    """
    dirs = {} if dirs is None else dirs
    noted = {} if seen is None else seen.files
    noted[path] = identity.UNKNOWN
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        noted[path] = identity.MISSING
        return FileState.MISSING, None, ""
    except OSError:
        return FileState.MISSING, None, ""
    try:
        st = os.fstat(fd)
        ident = (st.st_dev, st.st_ino)
        real = os.readlink(f"/proc/self/fd/{fd}")  # the file opened, symlinks resolved
        noted[path] = identity.of_stat(st, real)
        if not stat.S_ISREG(st.st_mode) or not (st.st_mode & 0o111) or \
                not os.access(f"/proc/self/fd/{fd}", os.X_OK):
            return FileState.NOT_EXECUTABLE, ident, ""
        why = _untrusted(st, "interpreter", real if real == path else f"{path} (-> {real})") \
            or _directories(os.path.dirname(real), dirs, noted)
    except OSError:
        return FileState.MISSING, None, ""  # gone while we looked
    finally:
        os.close(fd)
    return (FileState.UNTRUSTED, ident, why) if why else (FileState.OK, ident, "")


def _directories(directory: str, dirs: dict[str, str | None], noted: dict[str, str]
                 ) -> str | None:
    """Why `directory` or one above it cannot be trusted (None: all can), each looked at once
    per run (`dirs`)."""
    if directory not in dirs:
        dfd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            st = os.fstat(dfd)
            noted[directory] = identity.of_stat(st, directory)  # (a resolved path)
            why = _untrusted(st, "directory", directory)
        finally:
            os.close(dfd)
        if why is None and directory != "/":
            why = _directories(os.path.dirname(directory), dirs, noted)
        dirs[directory] = why
    return dirs[directory]


def candidate_paths(policy: Policy | None, catalog: Catalog) -> set[str]:
    """Every interpreter path the desired state may ask about."""
    paths = set(catalog.interpreter_paths)
    if policy is not None:
        paths.update(r.interpreter for r in policy.arches.values() if r.interpreter)
        paths.update(c.interpreter for c in policy.custom)
    return paths


_Found = tuple[FileState, FileId | None, str]
T = TypeVar("T")


class _Files:
    """The interpreter files, looked at when first asked about: desired asks, for each
    architecture, down its emulators' preference order until one will do, so of some 250
    candidate paths only the few that matter are checked, once per run."""

    def __init__(self, paths: Iterable[str], seen: identity.Seen | None = None) -> None:
        self.paths = frozenset(paths)
        self.found: dict[str, _Found] = {}
        self.dirs: dict[str, str | None] = {}
        self.seen = identity.Seen() if seen is None else seen

    def look(self, path: str) -> _Found | None:
        if path not in self.paths:
            return None
        if path not in self.found:
            self.found[path] = file_state(path, self.dirs, self.seen)
        return self.found[path]


class _View(Mapping[str, T]):
    """One side of what _Files found (state, identity or why untrusted), as a mapping."""

    def __init__(self, files: _Files, side: Callable[[_Found], T | None]) -> None:
        self.files = files
        self.side = side

    def __getitem__(self, path: str) -> T:
        found = self.files.look(path)
        value = None if found is None else self.side(found)
        if value is None:
            raise KeyError(path)
        return value

    def __iter__(self) -> Iterator[str]:  # every path, so: everything looked at
        return (p for p in self.files.paths if p in self)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def probe_host(catalog: Catalog, paths: Iterable[str], machine: str | None = None,
               seen: identity.Seen | None = None) -> Host:
    """This machine, with `paths` (the interpreters that may be asked about) looked at when
    first asked about; `seen` gets the identity of each file and directory looked at."""
    files = _Files(paths, seen)
    return Host(arch=host_arch(catalog, machine),
                files=_View(files, lambda f: f[0]),
                ids=_View(files, lambda f: f[1]),
                native=native()[0] if machine is None else None,
                why=_View(files, lambda f: f[2] or None))
