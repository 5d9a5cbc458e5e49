"""What runs found of each interpreter file (host/facts.file_state), kept from one run of the
daemon to the next while nothing it was decided from has changed: every directory a name was
looked up in on the file's way, and the file itself, still has the same device, inode, owner,
mode, size and times (a rename, link, unlink, chmod, chown or write in any of them changes a
time), and the file's mount the same noexec. Checking that is a stat of each directory (once
a run) and of each file, instead of the walk's open, stat and close of every component of
every path (paths.walk), which was half of a converged daemon's run."""

from __future__ import annotations

import os

from ..model.host import FileId, FileState

Key = tuple[int, ...]
Found = tuple[FileState, FileId | None, str]  # a file's state, identity, and why untrusted
Proof = tuple[tuple[str, Key], ...]  # (resolved path, key), the directories then the file


def key_of(st: os.stat_result, mount: int = 0) -> Key:
    return (st.st_dev, st.st_ino, st.st_mode, st.st_uid, st.st_gid, st.st_size,
            st.st_mtime_ns, st.st_ctime_ns, mount & os.ST_NOEXEC)


def key_now(path: str, file: bool) -> Key | None:
    """The key of what is at `path` now (not following a symlink there: a directory of the
    proof is a resolved path, and a link put in its place is another thing)."""
    try:
        st = os.stat(path, follow_symlinks=False)
        return key_of(st, os.statvfs(path).f_flag if file else 0)
    except OSError:
        return None


class Remembered:
    """One file as found, the notes it added to what the run decided from (identity.Seen),
    and the proof that all of it still holds."""

    def __init__(self, found: Found, notes: dict[str, str], proof: Proof) -> None:
        self.found, self.notes, self.proof = found, notes, proof


class FileCache:
    """A daemon's (its Reconciler's): kept across runs, checked at each."""

    def __init__(self) -> None:
        self.files: dict[str, Remembered] = {}

    def get(self, path: str, checked: dict[str, Key | None]) -> Remembered | None:
        """What was found of `path`, if all of it still holds; `checked`: this run's keys,
        each directory's taken once."""
        kept = self.files.get(path)
        if kept is None:
            return None
        last = len(kept.proof) - 1
        for i, (where, key) in enumerate(kept.proof):
            if where not in checked or i == last:
                checked[where] = key_now(where, i == last)
            if checked[where] != key:
                del self.files[path]
                return None
        return kept
