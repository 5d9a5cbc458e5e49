"""What a run decided from, noted so that a later look can tell whether all of it is still the
same (the boot record, reconciler/record.py, is replayed only then):

- each interpreter and directory by its identity: inode, mode, owner, group, size,
  modification and change times (a directory: no size nor times), its mount's flags (noexec),
  and the path it resolves to, taken from the very descriptor
  the run decided on. Every attribute a decision reads is there itself (type, mode, owner), so
  a timestamp that does not move within one clock tick hides nothing decided from;
- each policy file by its text (an edit within one clock tick keeps the timestamps);
- each drop-in directory by its listing, taken before the drop-ins are looked for;
- and which kernel this is (kernel()), for what is kept for a kernel: the boot record, this
  boot's native answer (host/keep.py), the kept probe verdicts (service/proven.py).

A file is known by this note both within a run (model.host.FileId: which file an entry holds
open, which one a trial proved, which directory is watched) and across runs and boots. A
daemon's cache of what it found of a file (host/filecache.py) checks it exactly: exact(), the
note's stat fields and what the note leaves out on purpose (the device, a directory's times).
Whether a path still names the file an entry opened asks less of two notes: the same content
(model.host.same_file: inode, size, modification time, resolved path), so that a link made
or removed beside it, as dpkg's replace does, is not taken for a new file.
"""

from __future__ import annotations

import os
import stat

MISSING = "-"  # nothing at the path
UNKNOWN = "?"  # could not be looked at cleanly: never equal to anything noted
TEXT_MAX = 1 << 20  # policy/files.py reads no more of a policy file


# The mount flag a decision reads: noexec refuses an interpreter. (Not read-only: `/` is
# mounted read-only early in a boot and read-write later, and nothing decided depends on it.)
_MOUNT_FLAGS = os.ST_NOEXEC


Exact = tuple[int, ...]


def exact(st: os.stat_result, mount: int) -> Exact:
    """Which file or directory, its owner, mode, size and times, and whether its mount is
    noexec: any rename, link, unlink, chmod, chown or write in it changes one of them."""
    return (st.st_dev, st.st_ino, st.st_mode, st.st_uid, st.st_gid, st.st_size,
            st.st_mtime_ns, st.st_ctime_ns, mount & _MOUNT_FLAGS)


def exact_now(path: str, follow: bool = False) -> Exact | None:
    """exact() of what is at `path` now (a symlink there is itself, unless `follow`)."""
    try:
        return exact(os.stat(path, follow_symlinks=follow), os.statvfs(path).f_flag)
    except OSError:
        return None


def kernel() -> str:
    """Which kernel this is: its release and build (what decides what it runs and how)."""
    u = os.uname()
    return f"{u.release} {u.version}"


def of_stat(st: os.stat_result, real: str, mount: int) -> str:
    """`st` of the file at the resolved path `real` on a mount with flags `mount`, as noted.

    Not the device number: overlayfs and btrfs give a mount a new one at every boot, and the
    record is read at the next boot (the inode, size and change time, which nobody can set,
    tell a file apart). A directory by what is decided from it (which one, its owner and mode),
    not its times: a file made in `/` or `/usr/bin` changes nothing decided (each name looked
    up there is noted itself), and must not make every boot after it a full run."""
    if stat.S_ISDIR(st.st_mode):
        return (f"{st.st_ino}:{st.st_mode:o}:{st.st_uid}:{st.st_gid}:"
                f"{mount & _MOUNT_FLAGS:x}:{real}")
    return (f"{st.st_ino}:{st.st_mode:o}:{st.st_uid}:{st.st_gid}:{st.st_size}:"
            f"{st.st_mtime_ns}:{st.st_ctime_ns}:{mount & _MOUNT_FLAGS:x}:{real}")


def of_fd(fd: int) -> str:
    return of_stat(os.fstat(fd), os.readlink(f"/proc/self/fd/{fd}"), os.fstatvfs(fd).f_flag)


def of_path(path: str) -> str:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return MISSING
    except OSError:
        return UNKNOWN
    try:
        return of_fd(fd)
    except OSError:
        return UNKNOWN
    finally:
        os.close(fd)


def read_upto(fd: int, limit: int) -> bytes:
    """What `fd` holds, but no more than `limit` + 1 bytes (more than `limit`: too large)."""
    chunks, size = [], 0
    while size <= limit:
        chunk = os.read(fd, limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def text(decoded: str) -> str:
    """A policy file's text as noted (apart from the two markers)."""
    return "=" + decoded


def text_of(path: str) -> str:
    """The text of the regular file at `path`, as noted, read as policy/files.py reads it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        return MISSING
    except OSError:
        return UNKNOWN
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return UNKNOWN
        data = read_upto(fd, TEXT_MAX)
        return text(data.decode("utf-8")) if len(data) <= TEXT_MAX else UNKNOWN
    except (OSError, UnicodeDecodeError):
        return UNKNOWN
    finally:
        os.close(fd)


def listing_of(directory: str) -> str:
    """The names in `directory`, each ended by '/' (which no name can hold: a name with a
    newline cannot pass for two)."""
    try:
        return "".join(f"{name}/" for name in sorted(os.listdir(directory)))
    except (FileNotFoundError, NotADirectoryError):
        return MISSING
    except OSError:
        return UNKNOWN


class Seen:
    """Everything one run decided from, each as noted (see above)."""

    def __init__(self) -> None:
        self.files: dict[str, str] = {}
        self.texts: dict[str, str] = {}
        self.listings: dict[str, str] = {}

    def clean(self) -> bool:
        return UNKNOWN not in (*self.files.values(), *self.texts.values(),
                               *self.listings.values())

    def key(self) -> tuple[tuple[tuple[str, str], ...], ...]:
        return tuple(tuple(sorted(d.items())) for d in (self.files, self.texts, self.listings))

    def still(self) -> bool:
        """Whether all of it is still as noted."""
        return self.changed() is None

    def changed(self) -> str | None:
        """The first thing noted that is no longer so (in words), or None."""
        for p, i in self.files.items():
            if of_path(p) != i:
                return f"{p} (a file or directory decided from)"
        for p, i in self.listings.items():
            if listing_of(p) != i:
                return f"the drop-ins in {p}"
        for p, i in self.texts.items():
            if text_of(p) != i:
                return f"the policy file {p}"
        return None
