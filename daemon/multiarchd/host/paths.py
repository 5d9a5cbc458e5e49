"""Opening a path as root must: one component at a time from `/`, each name looked up with
openat in the directory opened just before, so that nobody but root can redirect what root
opens, writes or executes.

The kernel resolves an interpreter's path at every exec (without `F`), so the file at the end is
not the only thing that decides what runs: every directory a name is looked up in, the ones a
symlink's target leads through included, must be one that only root can change. A symlink in a
directory someone else may write can be flipped between two execs (or between our check and
the exec). `walk` follows the path exactly as the kernel would and judges each directory before
a name is looked up in it.
"""

from __future__ import annotations

import os
import stat

from .. import identity, userns

MAX_LINKS = 40  # as the kernel's own limit (ELOOP past it)
# Pseudo file systems whose names mean something else to each process (/proc/self/exe is the
# exec-ing program, not ours) or are not files at all.
PSEUDO = ("/proc", "/sys", "/dev")


class Untrusted(Exception):
    """A component of the path that someone other than root could change: why, and the fix."""


_owners: frozenset[int] | None = None


def root_owners() -> frozenset[int]:
    """The owners (as this user namespace numbers them) of files only the real root can
    change. In the initial namespace: root, and the user multiarchd runs as. In a user
    namespace of its own (a private table, rootless podman's): the id the real root is mapped
    to; where it is not mapped (rootless), the overflow id, which is how every file of an
    unmapped owner shows here: no one in this namespace can change such a file. The
    namespace's own root is then an ordinary user outside it, and its files are not trusted."""
    global _owners
    if _owners is None:
        rows = userns.uid_map()
        root = userns.inside(rows, 0)
        if rows == userns.INITIAL:
            _owners = frozenset({0, os.geteuid()})
        elif root is not None:
            _owners = frozenset({root})
        else:
            try:
                with open("/proc/sys/kernel/overflowuid") as f:
                    _owners = frozenset({int(f.read())})
            except (OSError, ValueError):
                _owners = frozenset({65534})
    return _owners


def _outside(uid: int) -> str:
    """How uid of this namespace is known outside it (for messages)."""
    rows = userns.uid_map()
    known = None if rows == userns.INITIAL else userns.outside(rows, uid)
    return "" if known is None else f" (uid {known} outside this user namespace)"


def untrusted(st: os.stat_result, what: str, path: str) -> str | None:
    """Why a file or directory that others could change cannot be trusted, and the fix."""
    if st.st_uid not in root_owners():
        return (f"{what} {path} is owned by uid {st.st_uid}{_outside(st.st_uid)}, not root: "
                "whoever owns it can change what runs for every foreign program "
                f"(chown root {path})")
    if st.st_mode & 0o022:
        who = "group and others" if st.st_mode & 0o022 == 0o022 else \
            "its group" if st.st_mode & 0o020 else "others"
        return (f"{what} {path} is writable by {who} (mode {stat.S_IMODE(st.st_mode):04o}): "
                f"they can change what runs for every foreign program (chmod go-w {path})")
    return None


def pseudo(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in PSEUDO)


class Walked:
    """The directory holding the path's last name (an O_PATH descriptor, the caller's to
    close), that name, and the directory's resolved path. (A plain class: dataclasses costs
    the boot path 7 ms to import.)"""

    def __init__(self, dir_fd: int, name: str, directory: str) -> None:
        self.dir_fd, self.name, self.directory = dir_fd, name, directory


def walk(path: str, strict: bool = True, judged: dict[str, str | None] | None = None,
         noted: dict[str, str] | None = None, way: list[str] | None = None,
         keys: dict[str, identity.Exact] | None = None) -> Walked:
    """Follow `path` to its last component as the kernel would, symlinks included.

    `strict` (an interpreter): every directory looked in must be one only root can change, else
    Untrusted. Not strict (a file root writes in a tree someone else owns, as node-exporter's
    directory): any directory will do, but a symlink is followed only where it sits in a
    directory only root can change. `judged`: each directory's verdict by resolved path, for
    the next walk; `noted`, `keys`: its identity note and identity.exact() as judged; `way`:
    each directory a name is looked up in. OSError (ENOENT, ELOOP, ...) as the kernel gives it.
    """
    judged = {} if judged is None else judged
    if not path.startswith("/"):
        raise OSError(2, "not an absolute path", path)
    todo = [c for c in path.split("/") if c]
    fd = _directory("/")
    where: list[str] = []  # the resolved components of the directory `fd` is
    links = 0
    try:
        while True:
            here = "/" + "/".join(where)
            why = _judge(fd, here, judged, noted, keys)
            if way is not None:
                way.append(here)
            if pseudo(here):
                raise Untrusted(f"{path} leads through {here}, whose names are not files (they "
                                "mean something else to each process); give the real path")
            if why and strict:
                raise Untrusted(why)
            if not todo:
                raise IsADirectoryError(21, "is a directory", path)
            name = todo.pop(0)
            if name in (".", ".."):
                if name == "..":
                    where, fd = where[:-1], _swap(fd, _directory("..", fd))
                continue
            child = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            try:
                st = os.fstat(child)
                if stat.S_ISLNK(st.st_mode):
                    links += 1
                    target = _link(path, os.path.join(here, name), fd, why, links)
                    todo[:0] = [c for c in target.split("/") if c]
                    if target.startswith("/"):
                        where, fd = [], _swap(fd, _directory("/"))
                    continue
                if not todo:
                    return Walked(fd, name, here)
                if not stat.S_ISDIR(st.st_mode):
                    raise NotADirectoryError(20, "not a directory", path)
                where.append(name)
                fd, child = _swap(fd, child), -1
            finally:
                if child != -1:
                    os.close(child)
    except BaseException:
        os.close(fd)
        raise


def _directory(name: str, dir_fd: int | None = None) -> int:
    return os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd)


def _link(path: str, link: str, dir_fd: int, why: str | None, links: int) -> str:
    """Where the symlink `link` (in the directory `dir_fd`) points, the `links`-th on the way."""
    if why:  # someone else could flip it: never followed
        raise Untrusted(f"{path}: the symlink {link} sits in a directory others can change "
                        f"({why})")
    if links > MAX_LINKS:
        raise OSError(40, "too many levels of symbolic links", path)
    return os.readlink(os.path.basename(link), dir_fd=dir_fd)  # stable: only root may change it


def _swap(old: int, new: int) -> int:
    os.close(old)
    return new


def _judge(fd: int, here: str, judged: dict[str, str | None], noted: dict[str, str] | None,
           keys: dict[str, identity.Exact] | None) -> str | None:
    """Why `here` (resolved) or a directory above it is one others could change: whoever may
    change a directory above may rename this one away and put another in its place."""
    if here not in judged:
        st = os.fstat(fd)
        above = judged.get(os.path.dirname(here)) if here != "/" else None
        judged[here] = above or untrusted(st, "directory", here)
        if noted is not None or keys is not None:
            mount = os.fstatvfs(fd).f_flag
            if noted is not None:
                noted[here] = identity.of_stat(st, here, mount)
            if keys is not None:
                keys[here] = identity.exact(st, mount)
    return judged[here]


def open_directory(path: str) -> int:
    """An O_PATH descriptor of the directory `path`, reached by a walk that is not strict (a
    directory someone else owns will do, a symlink of theirs is not followed): for a file root
    writes there. PermissionError when a symlink of someone else's is on the way."""
    try:
        walked = walk(path, strict=False)
    except Untrusted as e:
        raise PermissionError(1, str(e), path) from None
    try:
        return os.open(walked.name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                       dir_fd=walked.dir_fd)
    finally:
        os.close(walked.dir_fd)
