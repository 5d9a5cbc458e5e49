"""Whose binfmt_misc table a path is: the host's (the initial user namespace's), this user
namespace's own, or an outer namespace's that this one inherited. Since Linux 6.7 a user
namespace that mounts binfmt_misc gets a table of its own, which every process below it uses
instead of the outer one; until it does, it uses (and, being allowed to, writes) the outer one,
mounted where its mount namespace inherited it (every systemd host's, inside `podman unshare`).
Decided by the namespace (userns.initial) and the mounted instance, never by a uid map. Plain
functions on os only: the boot record's replay asks before it mounts."""

from __future__ import annotations

import os

from .. import userns
from .raw import DEFAULT_PATH

# The instances found to be this namespace's own (path, st_dev): asked once per instance, not
# at every run of the service.
_OWN: set[tuple[str, int]] = set()


def _process(path: str) -> str:
    """The /proc directory of the process whose namespaces `path` is seen through: a table
    reached as /proc/PID/root/... (a test's private instance) is that process's."""
    parts = path.split("/")
    if len(parts) > 3 and parts[1] == "proc" and parts[2].isdigit() and parts[3] == "root":
        return f"/proc/{parts[2]}"
    return "/proc/self"


def private(path: str = DEFAULT_PATH) -> bool:
    """Whether the table at `path` is seen from a user namespace other than the initial one."""
    return not userns.initial(_process(path))


def inherited(path: str = DEFAULT_PATH) -> bool:
    """Whether the instance mounted at `path` is an outer namespace's, told without touching
    anything: an instance's files belong to the root of the namespace that mounted it, and
    these belong to someone else (the host's, inside `podman unshare`, to the overflow id). An
    outer namespace whose root is this one's root (as `unshare -r` by root makes) cannot be told
    from this one's own so: only a mount can (own_instance)."""
    proc = _process(path)
    try:
        owner = os.stat(os.path.join(path, "register")).st_uid
        same = proc == "/proc/self" or \
            os.stat(f"{proc}/ns/user").st_ino == os.stat("/proc/self/ns/user").st_ino
    except OSError:
        return False
    return private(path) and owner != (0 if same else userns.outside(userns.uid_map(proc), 0))


def _probe(path: str) -> int:
    """The st_dev of binfmt_misc as this user namespace mounts it at `path`, found in a child
    process with a mount namespace of its own, every mount in it private first (so that nothing
    done there reaches another namespace): the kernel keys the instance by user namespace, so
    while this namespace's own lives, this is it; where it is the one on top there already, the
    kernel refuses the same file system on the same place (EBUSY): this namespace's own too.
    Nothing is unmounted: the mounts end with the child. Forked, not a new interpreter (a few
    ms, not a hundred): the child makes system calls only, then _exit. OSError: it could not
    mount (no CAP_SYS_ADMIN over this mount namespace, a kernel before 6.7)."""
    import ctypes
    import errno
    libc = ctypes.CDLL(None, use_errno=True)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: whatever happens, it ends here
        try:
            err = 0
            if libc.unshare(0x00020000) != 0 or \
                    libc.mount(b"none", b"/", None, 0x4000 | 0x40000, None) != 0 or \
                    (libc.mount(b"binfmt_misc", os.fsencode(path), b"binfmt_misc", 0, None) != 0
                     and ctypes.get_errno() != errno.EBUSY):
                err = ctypes.get_errno()  # (CLONE_NEWNS; MS_REC | MS_PRIVATE)
            os.write(write, f"{err} {os.stat(path).st_dev if err == 0 else 0}".encode())
        finally:
            os._exit(0)
    os.close(write)
    try:
        said = os.read(read, 64).decode().split()
    finally:
        os.close(read)
        os.waitpid(pid, 0)
    if len(said) != 2 or said[0] != "0":
        err = int(said[0]) if said and said[0].isdigit() else errno.EIO
        raise OSError(err, f"cannot tell whether the binfmt_misc table at {path} is this user "
                      f"namespace's own: mounting one in a mount namespace of its own: "
                      f"{os.strerror(err)}")
    return int(said[1])


def own_instance(path: str = DEFAULT_PATH) -> bool:
    """Whether the instance mounted at `path` is this user namespace's own (the host's in the
    initial one). For --private only: when this namespace has no instance yet, the probe's mount
    makes it one, and from then on its programs use that (empty) table instead of the outer
    one, which is what --private asks for, and what no other run may do."""
    dev = os.stat(path).st_dev
    if not private(path) or (path, dev) in _OWN:
        return True
    if inherited(path):
        return False
    if _process(path) != "/proc/self":
        return True  # seen through another process's root: no mount here could tell
    if _probe(path) != dev:
        return False
    _OWN.add((path, dev))
    return True


def mounted_own(path: str) -> None:
    """Note that the instance now at `path` was mounted by this process: this namespace's own."""
    _OWN.add((path, os.stat(path).st_dev))


def _namespace(path: str) -> str:
    """The user namespace `path` is seen through, in words: its number, and its root outside."""
    proc = _process(path)
    try:
        ns = f"user namespace {os.stat(f'{proc}/ns/user').st_ino}"
    except OSError:
        ns = "a user namespace"
    root = userns.outside(userns.uid_map(proc), 0)
    return f"{ns} (its root is {'no uid' if root is None else f'uid {root}'} outside)"


def describe(path: str = DEFAULT_PATH) -> str:
    """Which table, in words: status, D-Bus, the journal and --once say it."""
    if not private(path):
        return "the host's (the initial user namespace's)"
    if inherited(path):
        return f"an outer user namespace's, inherited by {_namespace(path)}; --private " \
               "mounts one of its own"
    ns, _, root = _namespace(path).partition(" (")
    return f"a private one: {ns}'s own ({root}"


def accidental_mount(path: str = DEFAULT_PATH) -> str | None:
    """Why mounting binfmt_misc at `path` would make a private table no one asked for (this
    is a user namespace of its own, and nothing is mounted there yet), or None."""
    if not private(path):
        return None
    return (f"this runs in {_namespace(path)}, not the host's, and nothing is mounted at "
            f"{path}: a binfmt_misc mounted here would be a private table, used by this "
            "namespace's processes only, not the host's. To fill the host's, run multiarchd "
            "on the host; to fill this namespace's own on purpose, give --private")


def not_private(path: str = DEFAULT_PATH) -> str | None:
    """Why --private cannot be had at `path` (this is the initial user namespace, whose table
    is the host's), or None."""
    if private(path):
        return None
    return (f"--private asks for a table of a user namespace's own, and this runs in the "
            f"initial user namespace, whose table at {path} is the host's: to fill the host's, "
            "run without --private; to fill a namespace's own, run inside it (podman unshare, "
            "a container) with --private")
