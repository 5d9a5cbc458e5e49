"""Proving that an architecture executes: run its probe program (see probes.py) through the
kernel's binfmt_misc table, as any program of that architecture would be run, and say what
happened in words."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from .catalog import Catalog
from .errors import UnknownArchitecture
from .probes import PROBE_STATUS, Verdict, build
from .problems import did_you_mean

EXEC_TABLE = "/proc/sys/fs/binfmt_misc"  # the instance this process's exec(2) goes through
TIMEOUT = 20.0


def resolve(names: Iterable[str], catalog: Catalog) -> list[str]:
    """Canonical names for what the user typed; UnknownArchitecture names the first bad one."""
    out = []
    for name in names:
        arch = catalog.canonical(name)
        if arch is None:
            raise UnknownArchitecture(f"unknown architecture {name!r}"
                                      f"{did_you_mean(name, catalog.aliases)}")
        out.append(arch)
    return out


@contextmanager
def probe_files(arches: Iterable[str], catalog: Catalog) -> Iterator[dict[str, str]]:
    """arch -> path of its probe, in a private directory removed afterwards."""
    workdir = tempfile.mkdtemp(prefix="multiarchd-probe-")
    try:
        paths = {}
        for name in arches:
            path = os.path.join(workdir, f"probe-{name}")
            with open(path, "wb") as f:
                f.write(build(catalog.arches[name]))
            os.chmod(path, 0o755)
            paths[name] = path
        yield paths
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _explain_exec_error(e: OSError) -> str:
    if e.errno == errno.ENOEXEC:
        return "no binfmt_misc entry matches it (exec format error)"
    if e.errno == errno.ENOENT:
        return "the entry's interpreter was not found (ENOENT at exec)"
    if e.errno == errno.ELOOP:
        return "the entry's interpreter would run itself (ELOOP)"
    if e.errno == errno.EACCES:
        return "exec was refused (EACCES): the interpreter is not executable or the probe " \
               "directory is mounted noexec"
    return f"exec failed: {os.strerror(e.errno or 0)}"


def run_probe(arch: str, path: str) -> Verdict:
    try:
        r = subprocess.run([path], capture_output=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return Verdict(arch, "failed", f"the emulator hung for more than {TIMEOUT:g} s")
    except OSError as e:
        return Verdict(arch, "failed", _explain_exec_error(e))
    if r.returncode == PROBE_STATUS:
        return Verdict(arch, "ok", "probe ran")
    if r.returncode < 0:
        name = signal.Signals(-r.returncode).name
        return Verdict(arch, "failed", f"emulator crashed with signal {-r.returncode} ({name})")
    said = r.stderr.decode(errors="replace").strip().splitlines()
    tail = f": {said[0]}" if said else ""
    return Verdict(arch, "failed",
                   f"wrong exit status {r.returncode} (expected {PROBE_STATUS}){tail}")


def same_table(binfmt_dir: str) -> bool:
    """Whether exec(2) here goes through the table at binfmt_dir (else probes prove nothing)."""
    try:
        return os.stat(binfmt_dir).st_dev == os.stat(EXEC_TABLE).st_dev
    except OSError:
        return False


def verify(arches: Iterable[str], catalog: Catalog, binfmt_dir: str = EXEC_TABLE
           ) -> list[Verdict]:
    names = list(arches)
    if not same_table(binfmt_dir):
        return [Verdict(a, "untested", f"the table at {binfmt_dir} is not the one exec uses "
                                       f"here ({EXEC_TABLE})") for a in names]
    with probe_files(names, catalog) as paths:
        return [run_probe(a, paths[a]) for a in names]


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
    here (older kernel, namespaces not allowed): then the catalog's family table decides."""
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
