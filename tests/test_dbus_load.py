"""No caller starves the keeper: the daemon as the unit runs it (its watchdog asked for) on a
private table and a private bus with the shipped policy, called by unprivileged users as hard
as they can (tests/support/flood.py: bounded in count and time, to this machine's bus only).
Repairs stay within a second, the watchdog is pinged within half its timeout, every caller is
answered, and memory stays flat whoever calls whatever."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.binfmt import PrivateBinfmt
from tests.support.bus import PrivateBus
from tests.support.commands import DaemonStarter, PolicyWriter
from tests.support.daemon import DaemonProcess

IFACE = "io.github.multiarchd1.Manager"
PROPS, INTRO = "org.freedesktop.DBus.Properties", "org.freedesktop.DBus.Introspectable"
FLOOD = (Path(__file__).parent / "support" / "flood.py").read_text()
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
WATCHDOG_SEC = 4.0


def flood(bus: PrivateBus, mode: str, count: int, seconds: float, method: str,
          *args: object, user: str | None = "nobody") -> subprocess.Popen[str]:
    return subprocess.Popen([*(NOBODY if user else []), "/usr/bin/python3", "-c", FLOOD, mode,
                             str(count), str(seconds), "16", method, json.dumps(args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, **bus.env))


def finished(p: subprocess.Popen[str], timeout: float) -> tuple[int, int, int]:
    """(sent, answered, errors) of a flood that has ended."""
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, err
    _, sent, _, answered, _, errors = out.split()
    return int(sent), int(answered), int(errors)


def _rss_kib(pid: int) -> int:
    return next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text()
                .splitlines() if line.startswith("VmRSS:"))


@pytest.fixture
def watched(bus: PrivateBus, binfmt: PrivateBinfmt, policy: PolicyWriter,
            start_daemon: DaemonStarter) -> DaemonProcess:
    """The daemon with WatchdogSec=4 (as systemd asks: WATCHDOG_USEC), on the private bus."""
    return start_daemon(policy("arches:\n  all: {}\n"), binfmt, bus=bus,
                        env={"WATCHDOG_USEC": str(int(WATCHDOG_SEC * 1_000_000))})


def test_repairs_and_the_watchdog_outrank_a_flood_by_unprivileged_callers(
        bus: PrivateBus, binfmt: PrivateBinfmt, watched: DaemonProcess) -> None:
    """Before: six callers of Plan delayed a repair by 42 s and the watchdog by 47 s (systemd
    kills the daemon past WatchdogSec), reads by 30 s, and denied calls waited 25 s."""
    d, pings = watched, list[float]()
    receive = d.notify.receive

    def stamped() -> None:  # when each WATCHDOG=1 arrives
        before = len(d.notify.messages)
        receive()
        pings.extend(time.monotonic() for m in d.notify.messages[before:] if m == "WATCHDOG=1")
    d.notify.receive = stamped  # type: ignore[method-assign]
    seconds = 12.0
    callers = [flood(bus, "read", 1_000_000, seconds, f"{PROPS}.Get", IFACE, "Architectures")
               for _ in range(2)]
    callers += [flood(bus, "read", 1_000_000, seconds, f"{IFACE}.Plan") for _ in range(2)]
    callers += [flood(bus, "read", 1_000_000, seconds, f"{IFACE}.Reconcile") for _ in range(2)]
    silent = [flood(bus, "silent", 200_000, seconds, f"{PROPS}.GetAll", IFACE)
              for _ in range(2)]
    try:
        start = time.monotonic()
        d.wait_until(lambda: time.monotonic() - start > 2, "the flood to build up", timeout=10)
        repairs = []
        for _ in range(3):
            since = d.mark()
            removed = time.monotonic()
            binfmt.write("multiarch-s390x", "-1")
            d.wait_log("repaired multiarch-s390x", since, timeout=30)
            repairs.append(time.monotonic() - removed)
        d.wait_until(lambda: time.monotonic() - start > seconds, "the flood's end",
                     timeout=seconds + 10)
        results = [finished(p, 60) for p in callers]
    finally:
        for p in callers + silent:
            p.kill()
            p.communicate()
    gaps = [b - a for a, b in zip(pings, pings[1:])]
    print(f"repairs {repairs}, longest watchdog gap {max(gaps):.3f} s, calls {results}")
    assert max(repairs) <= 1.0, repairs
    assert len(pings) >= seconds / (WATCHDOG_SEC / 4) - 2 and max(gaps) <= WATCHDOG_SEC / 2, gaps
    # Every caller was answered, every call: the reads and Plan, and Reconcile refused.
    assert all(sent == answered > 0 for sent, answered, _ in results), results
    assert [errors == sent for sent, _, errors in results[4:]] == [True, True], results


READS = [(f"{PROPS}.Get", (IFACE, "Architectures")), (f"{PROPS}.GetAll", (IFACE,)),
         (f"{INTRO}.Introspect", ()), ("org.freedesktop.DBus.Peer.Ping", ()),
         (f"{IFACE}.Plan", ())]
# root's Test and Release answered with an error (an unknown architecture, one not held): the
# calls are authorized and handled, without a probe or a run each time.
MANAGE = [(f"{IFACE}.Test", (["arm65"],)), (f"{IFACE}.Release", ("s390x",)),
          (f"{IFACE}.Reconcile", ()), (f"{IFACE}.Reload", ())]
RUNS = {f"{IFACE}.Reconcile", f"{IFACE}.Reload"}


def _count(user: str | None, method: str, count: int) -> int:
    """20,000 of each manage call (the path that leaked), by nobody and by root, but root's
    Reconcile and Reload (a whole run each, 10 ms) a twentieth; reads and Plan a tenth (flat
    over 20,000 in test_dbus.py): all of them would take the suite many minutes."""
    if method in RUNS and user is None:
        return count // 20
    return count if method in dict(MANAGE) else count // 10


def test_memory_stays_flat_over_twenty_thousand_calls_of_each_method_by_anyone(
        bus: PrivateBus, watched: DaemonProcess) -> None:
    """Each manage call used to leave 130 (root) to 270 bytes (nobody, denied) behind for good:
    Gio's call() with a Python callback, on the way to polkit."""
    def every_method(count: int) -> None:  # all at once, each caller 16 calls in flight
        counts = {(user, method): _count(user, method, count)
                  for user in ("nobody", None) for method, _ in READS + MANAGE}
        floods = {(user, method): flood(bus, "read", counts[user, method], 900, method, *args,
                                        user=user)
                  for user in ("nobody", None) for method, args in READS + MANAGE}
        try:
            for (user, method), p in floods.items():
                sent, answered, _ = finished(p, 960)
                assert sent == answered == counts[user, method], (user, method, sent, answered)
        finally:
            for p in floods.values():
                p.kill()
                p.communicate()
    pid = watched.proc.pid
    # Warmed up by a round of the same size: caches, the first of each kind of answer, and the
    # allocator's high-water mark under this many calls in flight (after a round of only 1,000,
    # the next 20,000 grew it by 1.5 MiB in one run of the suite; the leak this test is for
    # grew it by some 16 MiB a round).
    every_method(20_000)
    before = _rss_kib(pid)
    every_method(20_000)
    assert _rss_kib(pid) - before < 1024, (before, _rss_kib(pid))
