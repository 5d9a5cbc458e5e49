"""The user namespace a process runs in: the initial one (the host's, as the namespace itself
says) or one of its own, and how its ids are known outside it (its uid map, /proc/PID/uid_map).
Plain functions on os only: the trust rules (host/paths.py) and whose binfmt_misc table
(kernel/owner.py) both ask, and the boot record's replay asks before it mounts."""

from __future__ import annotations

import os

INITIAL = [(0, 0, 4294967295)]  # inside, outside, count: every id is itself

UidMap = list[tuple[int, int, int]]


def uid_map(proc: str = "/proc/self") -> UidMap:
    """The uid map of the process at `proc`; an unreadable one counts as the initial one."""
    try:
        with open(f"{proc}/uid_map") as f:
            return [(int(a), int(b), int(c)) for a, b, c in (line.split() for line in f)]
    except (OSError, ValueError):
        return INITIAL


def outside(rows: UidMap, uid: int) -> int | None:
    """What `uid` of that namespace is outside it (None: not mapped)."""
    return next((out + uid - inside for inside, out, count in rows
                 if inside <= uid < inside + count), None)


def inside(rows: UidMap, uid: int) -> int | None:
    """What the outside `uid` is in that namespace (None: not mapped there)."""
    return next((ins + uid - out for ins, out, count in rows if out <= uid < out + count), None)


# The initial user namespace's inode number: fixed since Linux 3.8 (PROC_USER_INIT_INO), in
# <linux/nsfs.h> as USER_NS_INIT_INO since 6.18; every other user namespace gets another.
USER_NS_INIT_INO = 0xEFFFFFFD


def initial(proc: str = "/proc/self") -> bool:
    """Whether the process at `proc` runs in the initial user namespace (the host's), as the
    namespace itself says, never its uid map: real root may give a namespace of its own the
    whole map (`0 0 4294967295`) too, and a container's PID 1 is no host's (so /proc/1 tells
    nothing either). An unreadable one is not taken for the host's."""
    try:
        return os.stat(f"{proc}/ns/user").st_ino == USER_NS_INIT_INO
    except OSError:
        return False
