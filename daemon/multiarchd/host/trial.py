"""Trying an interpreter before it takes over from one that works: its architecture's probe
(core/probes.py) run through the very registration it would get, in an empty binfmt_misc table
of a user namespace of our own (Linux 6.7+, as host/native.py does), or where there is no such
table, by running the interpreter on the probe itself; and what each trial answered (Trials),
which in the service runs off its loop.""" 

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace
from functools import partial

from .. import identity
from ..core.probes import PROBE_STATUS, Verdict
from ..model.catalog import Catalog
from ..model.registration import Registration
from .bounded import run_bounded
from .probing import RUNS, judged, probe_files, run_probe

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
for _ in range(int(sys.argv[3])):
    pid = os.posix_spawn(sys.argv[2], [sys.argv[2]], {{}},  # (what it prints is not the answer)
                         file_actions=[(os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0)])
    status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    print(status, flush=True)
    if status != int(sys.argv[4]):
        break
"""


def try_registration(arch: str, registration: Registration, catalog: Catalog) -> Verdict:
    """Whether `registration` runs arch's probe (probing.RUNS times), before it is registered
    for real."""
    with probe_files([arch], catalog) as probes:
        line = replace(registration, name="multiarch-trial").register_line()
        try:
            ran = run_bounded([sys.executable, "-I", "-S", "-c", _HELPER, line, probes[arch],
                               str(RUNS), str(PROBE_STATUS)])
        except OSError as e:
            return Verdict(arch, "untested", f"the trial could not be started: {e}")
        if ran.status == NO_TABLE:  # no table of our own: the interpreter on the probe itself
            return run_probe(arch, [registration.interpreter, probes[arch]])
    statuses = ran.out.split()
    if ran.status is None or ran.status == 0 and statuses and \
            all(s.lstrip("-").isdigit() for s in statuses):
        return judged(arch, replace(ran, status=int(statuses[-1]) if ran.status == 0 else None,
                                    runs=len(statuses)))
    said = ran.err.strip().splitlines()
    return Verdict(arch, "failed", said[-1] if said else f"the trial ended with status "
                                                         f"{ran.status}")


def _answered(slot: str, work: Callable[[], Verdict]) -> Verdict:
    try:
        return work()
    except Exception as e:  # noqa: BLE001 - on a worker: an answer, never a dead worker
        return Verdict(slot, "untested", f"it could not be tried: {e}")


Start = Callable[[Callable[[], Verdict], Callable[[Verdict], None]], None]


class Trials:
    """The last answer of each trial by slot (an entry, a CPU-model file) for what was tried
    there (the file's whole note, the registration) on this kernel, and, in a service, the
    trials running off its loop. A one-shot process (--once, multiarchctl) tries here and now:
    it has nothing else to serve meanwhile."""

    def __init__(self) -> None:
        self._answers: dict[str, tuple[object, Verdict]] = {}
        self._running: set[str] = set()
        self._fresh: set[str] = set()  # answers come off the loop, not taken by a run yet
        self._start: Start | None = None
        self._arrived: Callable[[], None] = lambda: None
        # Files of our own (host/cpu_models.py) are made here and now, off the loop or not,
        # until the service's first run is over: before READY=1 nothing waits on the loop, and
        # an entry whose file is missing would be left out (its trial would keep no old one).
        self.files_here = True

    def off_loop(self, start: Start, arrived: Callable[[], None]) -> None:
        """From now on every trial runs through `start` (a worker, its answer handed back on
        the loop), and `arrived` is called with each answer: a run is due, to use it."""
        self._start, self._arrived = start, arrived

    def answer(self, slot: str, tried: object, work: Callable[[], Verdict],
               here: bool = False) -> Verdict | None:
        """What `work` answers for `tried` in `slot`: kept, or found now (off the loop's
        service too, with `here`); None while it is found off the loop. Kept by the kernel too: an emulator's crashes depend on it (brk
        randomisation in tonistiigi/binfmt#215), so a new kernel tries every file again."""
        tried = (tried, identity.kernel())
        kept = self._answers.get(slot)
        if kept is not None and kept[0] == tried:
            return kept[1]
        if self._start is None or here:
            verdict = work()
            self._answers[slot] = (tried, verdict)
            return verdict
        if slot not in self._running:  # (one at a time a slot: the next when it ends)
            self._running.add(slot)

            def done(verdict: Verdict) -> None:
                self._running.discard(slot)
                self._answers[slot] = (tried, verdict)
                self._fresh.add(slot)
                self._arrived()
            self._start(partial(_answered, slot, work), done)
        kept = self._answers.get(slot)  # (a `start` that runs it at once has answered)
        return kept[1] if kept is not None and kept[0] == tried else None

    @property
    def busy(self) -> bool:
        """Whether a trial is running off the loop."""
        return bool(self._running)

    def take_fresh(self, slot: str) -> bool:
        """Whether the answer in `slot` came off the loop since a run last asked (once)."""
        fresh = slot in self._fresh
        self._fresh.discard(slot)
        return fresh
