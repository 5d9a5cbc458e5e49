"""Trying an interpreter before it takes over from one that works: its architecture's probe
(core/probes.py) run through the very registration it would get, in an empty binfmt_misc table
of a user namespace of our own (Linux 6.7+, as host/native.py does), or where there is no such
table, by running the interpreter on the probe itself."""

from __future__ import annotations

import sys
from dataclasses import replace

from ..core.probes import Verdict
from ..model.catalog import Catalog
from ..model.registration import Registration
from .probing import judged, probe_files, run_bounded, run_probe

NO_TABLE = 3  # the helper's exit status when no table of our own can be had here

# Maps our own user and group IDs to themselves, to own its table's `register` (the kernel
# refuses a writer whose IDs are not mapped; mapping ID 0 needs CAP_SETFCAP, which whoever may
# write the host's table has); registers argv[1] under a name of its own, runs argv[2] and
# prints its exit status. A refused registration ends it with the kernel's words.
_HELPER = f"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
uid, gid = os.geteuid(), os.getegid()
if libc.unshare(0x10000000 | 0x00020000) != 0:  # CLONE_NEWUSER | CLONE_NEWNS
    sys.exit({NO_TABLE})
try:
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"{{uid}} {{uid}} 1")
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"{{gid}} {{gid}} 1")
except OSError:
    sys.exit({NO_TABLE})
libc.mount(b"none", b"/", None, 0x4000 | 0x40000, None)  # MS_REC | MS_PRIVATE
if libc.mount(b"binfmt_misc", b"/proc/sys/fs/binfmt_misc", b"binfmt_misc", 0, None) != 0:
    sys.exit({NO_TABLE})
try:
    with open("/proc/sys/fs/binfmt_misc/register", "wb", buffering=0) as f:
        f.write(os.fsencode(sys.argv[1]))
except OSError as e:
    sys.exit("the kernel refused its registration: " + e.strerror)
pid = os.posix_spawn(sys.argv[2], [sys.argv[2]], {{}},  # (what it prints is not the answer)
                     file_actions=[(os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0)])
print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
"""


def try_registration(arch: str, registration: Registration, catalog: Catalog) -> Verdict:
    """Whether `registration` runs arch's probe, before it is registered for real."""
    with probe_files([arch], catalog) as probes:
        line = replace(registration, name="multiarch-trial").register_line()
        status, out, err = run_bounded([sys.executable, "-I", "-S", "-c", _HELPER, line,
                                        probes[arch]])
        if status == NO_TABLE:  # no table of our own: the interpreter on the probe itself
            return run_probe(arch, [registration.interpreter, probes[arch]])
    if status is None or status == 0 and out.strip().lstrip("-").isdigit():
        return judged(arch, None if status is None else int(out), err)
    said = err.strip().splitlines()
    return Verdict(arch, "failed", said[-1] if said else f"the trial ended with status {status}")
