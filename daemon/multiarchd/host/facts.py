"""Probing this machine: its architecture, and which interpreter files exist and run."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TypeVar

from .. import identity
from ..model.catalog import Catalog
from ..model.host import FileState, Host
from ..model.policy import Policy
from . import paths
from .filecache import FileCache, Found, Remembered
from .native import cannot_run, native

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


# A shell as an interpreter would run the bytes of every matching file as commands (and with
# `C`, as the owner of a setuid one): never an emulator.
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ksh93", "mksh", "pdksh", "csh", "tcsh",
                    "fish", "ash", "yash", "rbash", "posh"})


def file_state(path: str, dirs: dict[str, str | None] | None = None,
               seen: identity.Seen | None = None,
               proof: list[tuple[str, identity.Exact]] | None = None,
               keys: dict[str, identity.Exact] | None = None) -> Found:
    """What the interpreter at `path` is, which file it is, and why it is untrusted.

    The path is followed as the kernel follows it at every exec, one component at a time
    (paths.walk): every directory a name is looked up in, a symlink's included, must be one
    only root can change, then the file at the end is checked on its descriptor: a file only
    root can replace, as sshd's StrictModes wants of authorized_keys. `dirs` keeps what was
    found of each directory, for the next path (`keys`, each one exactly, as judged); `seen`
    gets the identity of the file and of each directory, as decided on; `proof`, what the
    decision rests on (host/filecache.py), when it was taken on the file's own descriptor.
    """
    dirs = {} if dirs is None else dirs
    noted = {} if seen is None else seen.files
    noted[path] = identity.UNKNOWN
    way: list[str] = []
    keys = {} if keys is None else keys
    try:
        walked = paths.walk(path, judged=dirs, noted=noted, way=way, keys=keys)
    except paths.Untrusted as e:
        return FileState.UNTRUSTED, None, str(e)
    except (FileNotFoundError, NotADirectoryError):
        noted[path] = identity.MISSING
        return FileState.MISSING, None, ""
    except OSError:
        return FileState.MISSING, None, ""
    try:
        fd = os.open(walked.name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=walked.dir_fd)
    except FileNotFoundError:
        noted[path] = identity.MISSING
        return FileState.MISSING, None, ""
    except OSError:
        return FileState.MISSING, None, ""
    finally:
        os.close(walked.dir_fd)
    try:
        st = os.fstat(fd)
        # Mount flags too: noexec is decided from below.
        ident = noted[path] = identity.of_fd(fd)
        real = os.path.join(walked.directory, walked.name)
        if not stat.S_ISREG(st.st_mode) or not (st.st_mode & 0o111) or \
                not os.access(f"/proc/self/fd/{fd}", os.X_OK):
            return FileState.NOT_EXECUTABLE, ident, ""
        if proof is not None and all(here in keys for here in way):
            file_key = identity.exact(st, os.fstatvfs(fd).f_flag)
            proof += [*((here, keys[here]) for here in way), (real, file_key)]
        shown = real if real == path else f"{path} (-> {real})"
        why = paths.untrusted(st, "interpreter", shown)
        if why is None and walked.name in SHELLS:
            why = (f"interpreter {shown} is a shell, not an emulator: it would run the bytes of "
                   "every matching file as commands; name the emulator itself")
    except OSError:
        return FileState.MISSING, None, ""  # gone while we looked
    finally:
        os.close(fd)
    return (FileState.UNTRUSTED, ident, why) if why else (FileState.OK, ident, "")


def candidate_paths(policy: Policy | None, catalog: Catalog) -> set[str]:
    """Every interpreter path the desired state may ask about."""
    paths = set(catalog.interpreter_paths)
    if policy is not None:
        paths.update(r.interpreter for r in policy.arches.values() if r.interpreter)
        paths.update(c.interpreter for c in policy.custom)
    return paths


T = TypeVar("T")


class _Files:
    """The interpreter files, looked at when first asked about: desired asks, for each
    architecture, down its emulators' preference order until one will do, so of some 250
    candidate paths only the few that matter are checked, once per run (walked, or, with a
    daemon's cache, walked again only when something on the way changed)."""

    def __init__(self, paths: Iterable[str], seen: identity.Seen | None = None,
                 cache: FileCache | None = None) -> None:
        self.paths = frozenset(paths)
        self.found: dict[str, Found] = {}
        self.dirs: dict[str, str | None] = {}
        self.keys: dict[str, identity.Exact] = {}  # each directory, as judged
        self.seen = identity.Seen() if seen is None else seen
        self.cache = cache
        self.checked: dict[str, identity.Exact | None] = {}  # (this run's, for the cache)

    def look(self, path: str) -> Found | None:
        if path not in self.paths:
            return None
        if path not in self.found:
            self.found[path] = self._find(path)
        return self.found[path]

    def _find(self, path: str) -> Found:
        if self.cache is None:
            return file_state(path, self.dirs, self.seen)
        kept = self.cache.get(path, self.checked)
        if kept is not None:
            self.seen.files.update(kept.notes)
            return kept.found
        proof: list[tuple[str, identity.Exact]] = []
        found = file_state(path, self.dirs, self.seen, proof, self.keys)
        if proof:  # (the notes of the file and of each directory on its way)
            notes = {p: self.seen.files.get(p, identity.UNKNOWN)
                     for p in (path, *(w for w, _ in proof[:-1]))}
            if identity.UNKNOWN not in notes.values():
                self.cache.files[path] = Remembered(found, notes, tuple(proof))
        return found


def look(path: str, seen: identity.Seen | None, cache: FileCache | None) -> Found:
    """file_state() of one path, through a daemon's cache where there is one."""
    found = _Files((path,), seen, cache).look(path)
    assert found is not None
    return found


class _Projection(Mapping[str, T]):
    """One side of what _Files found (state, identity or why untrusted), as a mapping."""

    def __init__(self, files: _Files, side: Callable[[Found], T | None]) -> None:
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
               seen: identity.Seen | None = None, cache: FileCache | None = None) -> Host:
    """This machine, with `paths` (the interpreters that may be asked about) looked at when
    first asked about; `seen` gets the identity of each file and directory looked at; `cache`,
    a daemon's, what earlier runs found of them (host/filecache.py)."""
    files = _Files(paths, seen, cache)
    arch = host_arch(catalog, machine)
    arches = native()[0] if machine is None else None
    return Host(arch=arch,
                files=_Projection(files, lambda f: f[0]),
                ids=_Projection(files, lambda f: f[1]),
                native=arches,
                why=_Projection(files, lambda f: f[2] or None),
                cannot_run=cannot_run(arch) if arches is None and machine is None
                else frozenset())
