"""Whose binfmt_misc table a path is: the host's (the initial user namespace's) or a private one.
Since Linux 6.7 a user namespace that mounts binfmt_misc gets a table of its own, which every
process below it uses instead of the host's; a run inside a container or `podman unshare`
that mounts one fills a table nobody else sees. Plain functions on os only: the boot record's
replay asks before it mounts."""

from __future__ import annotations

import os

from .. import userns
from .raw import DEFAULT_PATH

def _process(path: str) -> str:
    """The /proc directory of the process whose namespaces `path` is seen through: a table
    reached as /proc/PID/root/... (a test's private instance) is that process's."""
    parts = path.split("/")
    if len(parts) > 3 and parts[1] == "proc" and parts[2].isdigit() and parts[3] == "root":
        return f"/proc/{parts[2]}"
    return "/proc/self"


def private(path: str = DEFAULT_PATH) -> bool:
    """Whether the table at `path` belongs to a user namespace other than the initial one."""
    return userns.uid_map(_process(path)) != userns.INITIAL


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
