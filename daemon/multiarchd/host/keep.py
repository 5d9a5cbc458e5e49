"""Files multiarchd keeps for itself between runs: where they live, how they are written (whole,
by rename) and when what is read back may be believed (a file that someone else could have
written is not: it could fake a verdict or hide a native architecture)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

from .. import __version__, identity
from . import paths

RUNTIME_DIR = "/run/multiarchd"  # per boot; systemd's RuntimeDirectory= sets $RUNTIME_DIRECTORY
CACHE_DIR = "/var/cache/multiarchd"  # may be deleted at any time; $CACHE_DIRECTORY likewise


def runtime_dir() -> str:
    """Where this boot's files are kept: $RUNTIME_DIRECTORY (the service's, from systemd), else
    /run/multiarchd for whoever owns /run (root, or a container's root), else the user's own
    ($XDG_RUNTIME_DIR/multiarchd; without it /tmp/multiarchd-UID). A rootless run (inside
    `podman unshare` its uid is 0, but /run is not its) cannot write /run: its notes would be
    kept nowhere, and the next process (`status --local`, the next `--once`) would not know
    which file the kernel opened. Every reader and writer asks here, so they agree; what is
    read back is believed by read_kept's rule (ours or root's, not writable by others)."""
    given = os.environ.get("RUNTIME_DIRECTORY")
    if given:
        return given.split(":")[0]
    try:
        if os.stat("/run").st_uid == os.geteuid():
            return RUNTIME_DIR
    except OSError:
        pass
    users = os.environ.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(users):
        return os.path.join(users, "multiarchd")
    return f"/tmp/multiarchd-{os.geteuid()}"


def cache_dir() -> str:
    return os.environ.get("CACHE_DIRECTORY", CACHE_DIR).split(":")[0]


def _ours(st: os.stat_result) -> bool:
    return st.st_uid in (0, os.geteuid()) and not st.st_mode & 0o022


def read_kept(path: str, limit: int = 1 << 20) -> str | None:
    """The text of a file only root (or we) could have written, in a directory likewise; None
    for anything else (a FIFO or device is not opened for reading, nothing larger than `limit`
    is believed), or nothing there."""
    try:
        if not _ours(os.stat(os.path.dirname(path))):
            return None
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY |
                     os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or not _ours(st) or st.st_size > limit:
            return None
        data = identity.read_upto(fd, limit)
        return None if len(data) > limit else data.decode(errors="replace")
    except OSError:
        return None
    finally:
        os.close(fd)


class NotAccepted(Exception):
    """write_whole's `check` refused what was written (its words); nothing was replaced."""


def write_whole(path: str, text: str | bytes, mode: int = 0o644, make_dir: bool = False,
                check: Callable[[str], str | None] | None = None, sync: bool = False) -> None:
    """Replace `path` by rename, so that no reader sees half of it (with `make_dir`, its
    directory is made if missing). OSError when it cannot be written; with `check`, the new
    file's temporary path is given to it first, and NotAccepted when it says why not. With
    `sync`, the data reaches the disk before the rename, and the rename after it: a crash
    leaves the old file or the new one, never an empty one (a host's /etc, not /run).

    The directory is reached by paths.walk and everything is done relative to it: where someone
    else owns a directory on the way (node-exporter's, say), a symlink of theirs is never
    followed, so root never writes where they point it."""
    directory, name = os.path.split(os.path.abspath(path))
    if make_dir:
        os.makedirs(directory, mode=0o755, exist_ok=True)
    dfd = paths.open_directory(directory)
    # A dot name a reader of *.prom or of this name skips, in the same file system.
    temp = f".{name}.{os.getpid()}"
    try:
        try:
            os.unlink(temp, dir_fd=dfd)  # left by a run of ours that was stopped
        except FileNotFoundError:
            pass
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     mode, dir_fd=dfd)
        try:
            with open(fd, "wb") as out:  # closed before `check` (a program open for writing
                os.fchmod(fd, mode)  # cannot be run); fchmod: whatever the umask
                out.write(text.encode() if isinstance(text, str) else text)
                if sync:
                    out.flush()
                    os.fsync(fd)
            why = check(os.path.join(directory, temp)) if check else None
            if why is not None:
                raise NotAccepted(why)
            os.rename(temp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
            if sync:  # (dfd is O_PATH, which fsync refuses: the directory opened for reading)
                sfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dfd)
                try:
                    os.fsync(sfd)
                finally:
                    os.close(sfd)
        except BaseException:
            try:
                os.unlink(temp, dir_fd=dfd)  # a full disk leaves nothing behind
            except OSError:
                pass
            raise
    finally:
        os.close(dfd)


def remove_file(path: str) -> None:
    """Remove a file written by write_whole; one already gone is fine."""
    directory, name = os.path.split(os.path.abspath(path))
    try:
        dfd = paths.open_directory(directory)
    except FileNotFoundError:
        return
    try:
        os.unlink(name, dir_fd=dfd)
    except FileNotFoundError:
        pass
    finally:
        os.close(dfd)


def _native_path() -> str:
    return os.path.join(runtime_dir(), "native")


def _native_key() -> str:
    """This boot, kernel and version of multiarchd; "" when the boot cannot be told (then
    nothing kept is believed)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
    except OSError:
        return ""
    return f"{boot} {identity.kernel()} {__version__}" if boot else ""


def kept_native() -> tuple[frozenset[str] | None, str] | None:
    """The native architectures found earlier in this boot, by this kernel and this version of
    multiarchd (None, why: they could not be found); None when nothing is kept for them."""
    key = _native_key()
    kept = (read_kept(_native_path()) or "").split("\n")
    if not key or len(kept) != 3 or kept[0] != key:
        return None
    found, why = kept[1].split(), kept[2]
    return (None if found == ["-"] else frozenset(found)), why


def keep_native(arches: frozenset[str] | None, why: str) -> None:
    """Keep native_arches' answer for the rest of this boot. OSError when it cannot be kept."""
    write_whole(_native_path(), f"{_native_key()}\n"
                                f"{' '.join(sorted(arches)) if arches is not None else '-'}\n{why}",
                make_dir=True)
