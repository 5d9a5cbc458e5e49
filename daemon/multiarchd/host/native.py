"""What this machine runs by itself, found by execution: every probe run in an empty binfmt_misc
table of a user namespace of our own (Linux 6.7+)."""

from __future__ import annotations

import contextlib
import os
import sys
from functools import cache

from ..catalog import load_catalog
from ..core.probes import PROBE_STATUS
from ..model.catalog import Catalog
from . import keep


# Runs in its own process: a user and mount namespace with an empty binfmt_misc table, then each
# probe. It maps no user IDs, so it needs no CAP_SETFCAP (mapping root does, since Linux 5.12),
# and it does not exec itself after unshare(2), so it keeps the capabilities to mount.
_NATIVE_HELPER = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.unshare(0x10000000 | 0x00020000) != 0:  # CLONE_NEWUSER | CLONE_NEWNS
    sys.exit("unshare: " + os.strerror(ctypes.get_errno()))
libc.mount(b"none", b"/", None, 0x4000 | 0x40000, None)  # MS_REC | MS_PRIVATE
if libc.mount(b"binfmt_misc", b"/proc/sys/fs/binfmt_misc", b"binfmt_misc", 0, None) != 0:
    sys.exit("mount binfmt_misc: " + os.strerror(ctypes.get_errno()))
for path in sys.argv[1:]:
    try:
        pid = os.posix_spawn(path, [path], {})
    except OSError:  # ENOEXEC: nothing here runs it
        print(127)
        continue
    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


def native_arches(catalog: Catalog) -> tuple[frozenset[str] | None, str]:
    """Architectures this machine runs by itself: their probes run in an empty binfmt_misc
    table of a user namespace of our own (Linux 6.7+). (None, why) when that cannot be done
    here (older kernel, namespaces not allowed): then the catalog's `runs` lists decide."""
    import subprocess  # (not on the boot path when the answer is kept)

    from .probing import probe_files
    names = sorted(catalog.arches)
    with probe_files(names, catalog) as paths:
        try:
            r = subprocess.run([sys.executable, "-I", "-S", "-c", _NATIVE_HELPER,
                                *(paths[n] for n in names)],
                               capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as e:
            return None, str(e)
    statuses = r.stdout.split()
    if r.returncode != 0 or len(statuses) != len(names):
        return None, (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1]
    return frozenset(n for n, s in zip(names, statuses) if s == str(PROBE_STATUS)), ""


# Run in its own process, so that this one's personality is never changed: arm64 refuses
# PER_LINUX32 with EINVAL where no CPU runs AArch32 programs at EL0 (Apple M1, Neoverse N2/V2,
# AmpereOne, A64FX).
_AARCH32_HELPER = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.personality(8) == -1:  # PER_LINUX32
    sys.exit(os.strerror(ctypes.get_errno()))
"""


@cache
def cannot_run(host_arch: str) -> frozenset[str]:
    """Architectures the catalog says this host's kernel runs that this machine cannot run,
    where that is known without a binfmt_misc table of our own (before Linux 6.7): on arm64,
    32-bit arm without AArch32 at EL0. Anything that cannot be found out (the personality
    locked) is taken as runnable: as before, the catalog decides."""
    if host_arch != "aarch64":
        return frozenset()
    import errno
    import subprocess
    try:
        r = subprocess.run([sys.executable, "-I", "-S", "-c", _AARCH32_HELPER],
                           capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    return frozenset({"arm"}) if r.stderr.strip() == os.strerror(errno.EINVAL) else frozenset()


@cache
def native() -> tuple[frozenset[str] | None, str]:
    """native_arches once per boot: the kernel's abilities do not change while it runs, so the
    answer is kept in the runtime directory for the next run (the early unit's --once, then the
    service), for this boot, kernel and version of multiarchd's probes only."""
    kept = keep.kept_native()
    if kept is not None:
        return kept
    arches, why = native_arches(load_catalog())
    with contextlib.suppress(OSError):  # nowhere to keep it: found again next time
        keep.keep_native(arches, why)
    return arches, why
