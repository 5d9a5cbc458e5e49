"""What is true of this machine, as plain data: its architecture and its interpreter files
(host/ finds them out)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class FileState(enum.StrEnum):
    OK = "ok"  # a regular executable file that only root (or multiarchd's user) can change
    MISSING = "missing"
    NOT_EXECUTABLE = "not-executable"
    UNTRUSTED = "untrusted"  # someone else could change it (Host.why says who and how)


# Which file a path names, as identity.py notes it: "inode:mode:owner:group:size:mtime:ctime:
# mount flags:resolved path" (a directory: no size nor times). A package upgrade replaces a
# file by rename (another inode), a copy over it keeps the inode but not the size and times.
FileId = str


# Which file an F entry holds open when that is not known: registered by another tool, or by
# a multiarchd before this version, or the note of it is gone (host/opened.py). Equal to no file.
NOT_KNOWN: FileId = "not known"
NOT_KNOWN_WHY = ("which file the kernel opened for it is not known (registered by another tool "
                 "or an older multiarchd, or the note of it is gone)")


def same_file(opened: FileId, now: FileId | None) -> bool:
    """Whether `now`, what a path names as noted now, is still the file noted as `opened`: the
    same inode on the same resolved path, with the same size and modification time.

    Not its change time, link count, mode or owner: none of them changes what the file holds,
    and dpkg's replace moves them on the old file before the new one comes (it links the old
    file to .dpkg-tmp, renames .dpkg-new over the path, removes the link: one change, not
    two). What it holds changes only by a write, which moves the modification time (only the
    file's owner, root, can set it back, on purpose); and the file the kernel holds open for an
    F entry refuses every write (ETXTBSY) while it does. Mode and owner are judged apart, at
    every run (host/facts.py: a file someone else could change is not registered)."""
    if now is None:
        return False
    if opened == now:
        return ":" in opened  # (a marker, not known or stale, is no file)
    held = contents(opened)
    return held is not None and held == contents(now)


def contents(file: FileId) -> str | None:
    """What of a file's note tells what it holds (same_file): its inode, size and modification
    time on its resolved path. None for a marker (not known, stale) or a directory."""
    f = file.split(":", 8)
    return ":".join((f[0], f[4], f[5], f[8])) if len(f) == 9 else None


def inode(file: FileId) -> str:
    """The inode number a FileId names (shown to tell two versions of a file apart)."""
    return file.partition(":")[0]


@dataclass(frozen=True)
class Host:
    arch: str  # catalog name of this machine's architecture
    files: Mapping[str, FileState] = field(default_factory=dict)
    ids: Mapping[str, FileId] = field(default_factory=dict)
    # Architectures whose probe ran with an empty binfmt_misc table; None: not known here, and
    # the catalog's `runs` lists decide.
    native: frozenset[str] | None = None
    why: Mapping[str, str] = field(default_factory=dict)  # why a file is untrusted
    # With native None: architectures the catalog says this host's kernel runs that this machine
    # cannot run all the same (32-bit arm on an arm64 CPU without AArch32), so not native.
    cannot_run: frozenset[str] = frozenset()

    def file(self, path: str) -> FileState:
        return self.files.get(path, FileState.MISSING)
