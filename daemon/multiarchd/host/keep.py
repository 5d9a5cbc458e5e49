"""Files multiarchd keeps for itself between runs: where they live, how they are written (whole,
by rename) and when what is read back may be believed (a file that someone else could have
written is not: it could fake a verdict or hide a native architecture)."""

from __future__ import annotations

import os
import stat

from .. import __version__

RUNTIME_DIR = "/run/multiarchd"  # per boot; systemd's RuntimeDirectory= sets $RUNTIME_DIRECTORY
CACHE_DIR = "/var/cache/multiarchd"  # may be deleted at any time; $CACHE_DIRECTORY likewise


def runtime_dir() -> str:
    return os.environ.get("RUNTIME_DIRECTORY", RUNTIME_DIR).split(":")[0]


def cache_dir() -> str:
    return os.environ.get("CACHE_DIRECTORY", CACHE_DIR).split(":")[0]


def _ours(st: os.stat_result) -> bool:
    return st.st_uid in (0, os.geteuid()) and not st.st_mode & 0o022


def read_kept(path: str, limit: int = 1 << 20) -> str | None:
    """The text of a file only root (or we) could have written, in a directory likewise; None
    for anything else, or nothing there."""
    try:
        if not _ours(os.stat(os.path.dirname(path))):
            return None
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or not _ours(st):
            return None
        return os.read(fd, limit).decode(errors="replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def write_whole(path: str, text: str, mode: int = 0o644, make_dir: bool = False) -> None:
    """Replace `path` by rename, so that no reader sees half of it (with `make_dir`, its
    directory is made if missing). OSError when it cannot be written."""
    directory, name = os.path.split(os.path.abspath(path))
    if make_dir:
        os.makedirs(directory, mode=0o755, exist_ok=True)
    # A dot name a reader of *.prom or of this name skips, in the same file system.
    temp = os.path.join(directory, f".{name}.{os.getpid()}")
    with open(temp, "w", opener=lambda p, f: os.open(p, f | os.O_NOFOLLOW, mode)) as out:
        os.fchmod(out.fileno(), mode)  # whatever the umask
        out.write(text)
    os.rename(temp, path)


def _native_path() -> str:
    return os.path.join(runtime_dir(), "native")


def _native_key() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
    except OSError:
        boot = ""
    return f"{boot} {os.uname().release} {__version__}"


def kept_native() -> tuple[frozenset[str] | None, str] | None:
    """The native architectures found earlier in this boot, by this kernel and this version of
    multiarchd (None, why: they could not be found); None when nothing is kept for them."""
    key = _native_key()
    kept = (read_kept(_native_path()) or "").split("\n")
    if len(kept) != 3 or kept[0] != key or not key.split()[0]:
        return None
    found, why = kept[1].split(), kept[2]
    return (None if found == ["-"] else frozenset(found)), why


def keep_native(arches: frozenset[str] | None, why: str) -> None:
    """Keep native_arches' answer for the rest of this boot. OSError when it cannot be kept."""
    write_whole(_native_path(), f"{_native_key()}\n"
                                f"{' '.join(sorted(arches)) if arches is not None else '-'}\n{why}",
                make_dir=True)
