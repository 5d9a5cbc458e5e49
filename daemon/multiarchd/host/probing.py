"""Proving that an architecture executes: run its probe program (see core/probes.py) through the
kernel's binfmt_misc table, as any program of that architecture would be run, and say what
happened in words."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from ..core.probes import PROBE_STATUS, Verdict, build
from ..model.catalog import Catalog
from .bounded import TIMEOUT, Ran, run_bounded

EXEC_TABLE = "/proc/sys/fs/binfmt_misc"  # the instance this process's exec(2) goes through


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


# Signals an emulator does not raise itself: its probe was stopped, it did not crash.
_FROM_OUTSIDE = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGKILL})

# How many times a probe runs before an emulator is believed. The crashes that come and go
# (a QEMU built without PIE under a kernel that randomises brk: tonistiigi/binfmt#215) strike
# each run alike and apart from the others; a file that crashes on one run in four passes k
# runs with chance (3/4)^k: 17 runs make that 0.75 %, under the 1 % allowed (16: 1.002 %). A
# probe run through QEMU takes some milliseconds, and the runs stop at the first failure.
RUNS = 17


def judged(arch: str, ran: Ran) -> Verdict:
    """What a probe's runs (status None: it hung) say, in words."""
    tree = ran.tree()
    status = ran.status
    if status is None:
        return Verdict(arch, "failed", f"the emulator hung for more than {TIMEOUT:g} s: "
                                       f"stopped{'; ' + tree if tree else ''}")
    if status == PROBE_STATUS:
        return Verdict(arch, "ok", f"probe ran{'; ' + tree + ' it left behind' if tree else ''}")
    on = f" on run {ran.runs} of {RUNS}" if ran.runs > 1 else ""
    left = f" ({tree})" if tree else ""
    if status < 0 and -status in _FROM_OUTSIDE:
        # Not a crash: someone stopped it (systemd's SIGTERM to the whole unit as multiarchd
        # stops, an admin): nothing is known about the emulator.
        name = signal.Signals(-status).name
        return Verdict(arch, "untested", f"the probe was stopped by {name} before it "
                                         f"ended{on}{left}")
    if status < 0:
        name = signal.Signals(-status).name
        return Verdict(arch, "failed", f"emulator crashed with signal {-status} ({name})"
                                       f"{on}{left}")
    said = ran.err.strip().splitlines()
    tail = f": {said[0]}" if said else ""
    return Verdict(arch, "failed", f"wrong exit status {status} (expected {PROBE_STATUS})"
                                   f"{on}{left}{tail}")


def run_probe(arch: str, argv: list[str], runs: int = RUNS) -> Verdict:
    """Run a probe (argv: its path, or an interpreter and its path) `runs` times, or until it
    fails, and judge it."""
    try:
        ran = run_bounded(argv, runs, PROBE_STATUS)
    except OSError as e:
        return Verdict(arch, "failed", _explain_exec_error(e))
    return judged(arch, ran)


def same_table(binfmt_dir: str) -> bool:
    """Whether exec(2) here goes through the table at binfmt_dir (else probes prove nothing)."""
    try:
        return os.stat(binfmt_dir).st_dev == os.stat(EXEC_TABLE).st_dev
    except OSError:
        return False


def verify(arches: Iterable[str], catalog: Catalog, binfmt_dir: str = EXEC_TABLE,
           runs: int = 1) -> list[Verdict]:
    names = list(dict.fromkeys(arches))  # each once, in the order first named
    if not same_table(binfmt_dir):
        return [Verdict(a, "untested", f"the table at {binfmt_dir} is not the one exec uses "
                                       f"here ({EXEC_TABLE})") for a in names]
    # Once each, as a rule: what is registered was tried before it was (a new file, RUNS
    # times), and a verification follows every change of every entry (33 at a start, each
    # repair). RUNS where that trial does not stand (another kernel's: service/proven.py).
    with probe_files(names, catalog) as paths:
        return [run_probe(a, [paths[a]], runs) for a in names]
