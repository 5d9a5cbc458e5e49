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
