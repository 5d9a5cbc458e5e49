"""What runs found of each interpreter file (host/facts.file_state), kept from one run of the
daemon to the next while nothing it was decided from has changed: every directory a name was
looked up in on the file's way, and the file itself, is still exactly as it was
(identity.exact: the same device, inode, owner, mode, size and times, which any rename, link,
unlink, chmod, chown or write in it changes, and its mount the same noexec). Checking that is
a stat of each directory (once a run) and of each file, instead of the walk's open, stat and
close of every component of every path (paths.walk), which was half of a converged daemon's
run."""

from __future__ import annotations

from .. import identity
from ..model.host import FileId, FileState

Found = tuple[FileState, FileId | None, str]  # a file's state, identity, and why untrusted
# (resolved path, identity.exact()) of each directory on the way, then of the file
Proof = tuple[tuple[str, identity.Exact], ...]


class Remembered:
    """One file as found, the notes it added to what the run decided from (identity.Seen),
    and the proof that all of it still holds."""

    def __init__(self, found: Found, notes: dict[str, str], proof: Proof) -> None:
        self.found, self.notes, self.proof = found, notes, proof


class FileCache:
    """A daemon's (its Reconciler's): kept across runs, checked at each."""

    def __init__(self) -> None:
        self.files: dict[str, Remembered] = {}
        # The first bytes of this host's own programs (host/audit_facts.py), by the path
        # followed: exactly what the file was, its head, its note.
        self.heads: dict[str, tuple[identity.Exact, bytes | None, str]] = {}

    def get(self, path: str, checked: dict[str, identity.Exact | None]) -> Remembered | None:
        """What was found of `path`, if all of it still holds; `checked`: this run's look at
        each directory, taken once."""
        kept = self.files.get(path)
        if kept is None:
            return None
        last = len(kept.proof) - 1
        for i, (where, exact) in enumerate(kept.proof):
            if where not in checked or i == last:
                checked[where] = identity.exact_now(where)
            if checked[where] != exact:
                del self.files[path]
                return None
        return kept
