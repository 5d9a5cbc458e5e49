"""Proving that an architecture executes: run its probe program (see core/probes.py) through the
kernel's binfmt_misc table, as any program of that architecture would be run, and say what
happened in words."""

from __future__ import annotations

import atexit
import errno
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress

from ..core.probes import PROBE_STATUS, Verdict, build
from ..model.catalog import Catalog

EXEC_TABLE = "/proc/sys/fs/binfmt_misc"  # the instance this process's exec(2) goes through
TIMEOUT = 20.0


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

# Probes running now (their process groups): killed if multiarchd exits before they end, so
# that a hung emulator does not outlive the service.
_running: set[int] = set()


@atexit.register
def _kill_running() -> None:
    for pgid in list(_running):
        with suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)


def run_probe(arch: str, path: str) -> Verdict:
    try:
        proc = subprocess.Popen([path], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
    except OSError as e:
        return Verdict(arch, "failed", _explain_exec_error(e))
    _running.add(proc.pid)
    try:
        _, stderr = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return Verdict(arch, "failed", f"the emulator hung for more than {TIMEOUT:g} s")
    finally:
        _running.discard(proc.pid)
    r = subprocess.CompletedProcess([path], proc.returncode, b"", stderr)
    if r.returncode == PROBE_STATUS:
        return Verdict(arch, "ok", "probe ran")
    if r.returncode < 0 and -r.returncode in _FROM_OUTSIDE:
        # Not a crash: someone stopped it (systemd's SIGTERM to the whole unit as multiarchd
        # stops, an admin): nothing is known about the emulator.
        name = signal.Signals(-r.returncode).name
        return Verdict(arch, "untested", f"the probe was stopped by {name} before it ended")
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
