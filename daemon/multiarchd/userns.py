"""The user namespace a process runs in, as its uid map says (/proc/PID/uid_map): the initial
one (the host's) or one of its own, and how its ids are known outside it. Plain functions on os
only: the trust rules (host/paths.py) and whose binfmt_misc table (kernel/owner.py) both ask,
and the boot record's replay asks before it mounts."""

from __future__ import annotations

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
