"""Callers of the daemon's every method, as any user, in numbers: what the memory test and
bench.dbus_memory run (each caller is a process of tests/support/flood.py, bounded in count and
time, to the private bus only), and the daemon's resident size read as they go."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.bus import PrivateBus

IFACE = "io.github.multiarchd1.Manager"
PROPS, INTRO = "org.freedesktop.DBus.Properties", "org.freedesktop.DBus.Introspectable"
FLOOD = (Path(__file__).parent / "flood.py").read_text()
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
USERS = ("nobody", None)  # None: root, the caller's own user here

READS = [(f"{PROPS}.Get", (IFACE, "Architectures")), (f"{PROPS}.GetAll", (IFACE,)),
         (f"{INTRO}.Introspect", ()), ("org.freedesktop.DBus.Peer.Ping", ()),
         (f"{IFACE}.Plan", ()), (f"{IFACE}.Explain", ("bb", [0x7f, 0x45, 0x4c, 0x46], True))]
# root's Test and Release answered with an error (an unknown architecture, one not held): the
# calls are authorized and handled, without a probe each time. Reconcile and Reload are whole
# runs for root (denied for nobody).
MANAGE = [(f"{IFACE}.Test", (["arm65"],)), (f"{IFACE}.Release", ("s390x",)),
          (f"{IFACE}.Reconcile", ()), (f"{IFACE}.Reload", ())]
EVERY = READS + MANAGE


def flood(bus: PrivateBus, mode: str, count: int, seconds: float, method: str,
          *args: object, user: str | None = "nobody", inflight: int = 16
          ) -> subprocess.Popen[str]:
    return subprocess.Popen([*(NOBODY if user else []), "/usr/bin/python3", "-c", FLOOD, mode,
                             str(count), str(seconds), str(inflight), method, json.dumps(args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, **bus.env))


def finished(p: subprocess.Popen[str], timeout: float) -> tuple[int, int, int]:
    """(sent, answered, errors) of a flood that has ended."""
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, err
    _, sent, _, answered, _, errors = out.split()
    return int(sent), int(answered), int(errors)


def rss_kib(pid: int) -> int:
    return next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text()
                .splitlines() if line.startswith("VmRSS:"))


def cpu_seconds(pid: int) -> float:
    """User and system time of the process, every thread."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Round:
    seconds: float
    cpu: float  # the daemon's, in seconds
    rss_before: int  # KiB
    rss_after: int

    @property
    def growth(self) -> int:
        return self.rss_after - self.rss_before


# Root's Reconcile and Reload are whole runs, one for every call served in a turn of the loop
# (dbus/fair.py): beside 18 other callers that is nearly one run a call, alone some one run in
# eight calls (they share it). They get a phase of their own: the same calls, a fifth the time.
RUNS = {(None, f"{IFACE}.Reconcile"), (None, f"{IFACE}.Reload")}


def every_method(bus: PrivateBus, pid: int, count: int | Callable[[Caller], int],
                 methods: Iterable[str] = (), seconds: float = 1800) -> Round:
    """`count` calls of each method (all of EVERY, or those named; or as many as count(caller)
    says) by nobody and by root, each caller 16 calls in flight: every caller at once but root's
    runs, then those two at once; every call must be answered."""
    chosen: list[Caller] = [(user, m, a) for user in USERS for m, a in EVERY
              if not methods or m.rsplit(".", 1)[1] in methods]
    before, start, cpu = rss_kib(pid), time.monotonic(), cpu_seconds(pid)
    for phase in ([c for c in chosen if c[:2] not in RUNS], [c for c in chosen if c[:2] in RUNS]):
        _at_once(bus, count, phase, seconds)
    return Round(time.monotonic() - start, cpu_seconds(pid) - cpu, before, rss_kib(pid))


Caller = tuple[str | None, str, tuple[object, ...]]  # user (None: root), method, arguments


def _at_once(bus: PrivateBus, count: int | Callable[[Caller], int], callers: Sequence[Caller],
             seconds: float) -> None:
    counts = {c[:2]: count if isinstance(count, int) else count(c) for c in callers}
    floods = {(user, method): flood(bus, "read", counts[user, method], seconds, method, *args,
                                    user=user)
              for user, method, args in callers}
    try:
        for (user, method), p in floods.items():
            sent, answered, _ = finished(p, seconds + 60)
            assert sent == answered == counts[user, method], (user or "root", method, sent,
                                                              answered)
    finally:
        for p in floods.values():
            p.kill()
            p.communicate()
