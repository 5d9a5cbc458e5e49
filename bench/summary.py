#!/usr/bin/env python3
"""Every figure multiarchd is held to, in one table: each with its yardstick measured in the
same run (trials interleaved: yardstick, figure, yardstick, figure ...), the ratio, and the
target. Everything runs in private binfmt_misc instances; the host's table is not touched.

  --once            whole process on the shipped policy into an empty table, against
                    systemd-binfmt given the same lines (both through the same nsenter): with
                    the boot record of the previous run (as at every boot after the first),
                    without one (a full run), and without the native answer either (the first
                    full run of a boot);
  READY=1           a cold start of the service (D-Bus on a private bus, verify on) until
                    READY=1, against --once, with the boot record and without; then SIGTERM
                    until it has exited (after D-Bus is up, or right at READY=1);
  no-op run         a converged daemon's run, against reading the table (33 and 1,033 entries);
  register          applying the registrations, against bare os.write() calls (idem);
  drift, save       reaction times with events 100 ms apart: an owned entry removed until it
                    is registered again (against a minimal inotify-and-rewrite repairer), a
                    policy save by rename until it is applied;
  idle              the daemon's context switches while 2,000 programs run from /usr/bin;
  memory            RSS with D-Bus, and its growth over many repairs and policy edits.

Usage: .venv/bin/python -m bench.summary [--trials 30] [--reactions 200] [--quick]
                                          [--write docs/benchmarks.md]   (bench/page.py)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import page
from bench.bytecode import make_current
from bench.daemon import thread_stats
from bench.stats import in_turn, median, ms, percentile
from bench.reconcile import SYSTEMD_BINFMT, register_lines
from bench.scale import measure
from tests.support.binfmt import PrivateBinfmt
from tests.support.bus import PrivateBus
from tests.support.daemon import DaemonProcess, start_daemon
from tests.support.inotify import IN_DELETE, IN_MODIFY, Inotify
from tests.support.paths import DEFAULT_POLICY

MULTIARCHD = str(Path(sys.executable).parent / "multiarchd")
Row = page.Row


def compared(what: str, figure: float, name: str, yardstick: float, target: str) -> Row:
    """A row with its yardstick and the ratio (times in seconds)."""
    return (what, ms(figure), f"{name} {ms(yardstick)}", f"{figure / yardstick:.1f}x", target)


def in_fresh_table(run: Callable[[PrivateBinfmt], None]) -> Callable[[], float]:
    def trial() -> float:
        with PrivateBinfmt() as ns:
            start = time.perf_counter()
            run(ns)
            return time.perf_counter() - start
    return trial


def _ready(env: dict[str, str], tmp: Path, stops: list[float], wait_bus: bool
           ) -> Callable[[], float]:
    """A trial: the daemon's cold start to READY=1 in a table of its own (and `wait_bus`, on
    to its D-Bus name), then SIGTERM as systemctl stop sends it, whose time goes to `stops`."""
    def trial() -> float:
        with PrivateBinfmt() as ns:
            start = time.perf_counter()
            d = DaemonProcess([MULTIARCHD, "--config", DEFAULT_POLICY, "--binfmt-dir", ns.path],
                              tmp, env)
            try:
                d.wait_notify("READY=1", timeout=60)
                took = time.perf_counter() - start
                if wait_bus:
                    d.wait_log("D-Bus: io.github.multiarchd1 published")
            finally:
                stopping = time.perf_counter()
                d.proc.terminate()
                d.proc.wait()
                stops.append(time.perf_counter() - stopping)
                d.stop()
            return took
    return trial


def boot_path(trials: int, tmp: Path) -> list[Row]:
    conf = tmp / "multiarch.conf"
    conf.write_text("\n".join(register_lines()) + "\n")
    env = dict(os.environ, RUNTIME_DIRECTORY=str(tmp / "run"), CACHE_DIRECTORY=str(tmp / "cache"))

    def inside(ns: PrivateBinfmt, *argv: str, **where: str) -> None:
        r = subprocess.run(ns.enter(*argv), capture_output=True, text=True,
                           env=dict(env, **where))
        assert r.returncode == 0, r.stderr

    def once(**where: str) -> Callable[[], float]:
        return in_fresh_table(lambda ns: inside(ns, MULTIARCHD, "--once", "--config",
                                                str(DEFAULT_POLICY), **where))

    # The previous boot: its --once leaves the boot record, as every converged run does.
    in_fresh_table(lambda ns: inside(ns, MULTIARCHD, "--once", "--config", str(DEFAULT_POLICY)))()
    once_t, systemd_t = in_turn(trials, once(), in_fresh_table(
        lambda ns: inside(ns, SYSTEMD_BINFMT, str(conf))))
    # Without a record (no cache directory): a full run, the native answer kept for the boot;
    # and the first of a boot, which also finds the native architectures.
    (tmp / "a-file").touch()
    nowhere = str(tmp / "a-file" / "nothing-kept")  # neither read nor written
    full_t, first_t = in_turn(trials, once(CACHE_DIRECTORY=nowhere),
                                once(CACHE_DIRECTORY=nowhere, RUNTIME_DIRECTORY=nowhere))

    bus = PrivateBus()
    stops: list[float] = []

    def ready(wait_bus: bool = True, **where: str) -> Callable[[], float]:
        return _ready(dict(env, **bus.env, **where), tmp, stops, wait_bus)

    try:
        # With the boot record (READY=1 once the record's lines are in), then without one
        # (READY=1 after the first full run) and stopped right at READY=1.
        ready_t, once2_t = in_turn(trials, ready(), once())
        cold_t, full2_t = in_turn(trials, ready(False, CACHE_DIRECTORY=nowhere),
                                    once(CACHE_DIRECTORY=nowhere))
    finally:
        bus.close()
    return [
        compared("--once, whole process (the boot record replayed)", median(once_t),
                 "systemd-binfmt", median(systemd_t), "<= 4x"),
        compared("--once, full run (the policy or an interpreter changed)", median(full_t),
                 "systemd-binfmt", median(systemd_t), ""),
        compared("--once, full run, first of a boot (finds the native arches)",
                 median(first_t), "systemd-binfmt", median(systemd_t), ""),
        compared("cold start to READY=1 (the record replayed)", median(ready_t), "--once",
                 median(once2_t), "<= 2x"),
        compared("cold start to READY=1, full first run", median(cold_t), "--once, full run",
                 median(full2_t), ""),
        ("SIGTERM to exit, worst (after D-Bus is up, or at READY=1)", ms(max(stops)), "", "",
         "< 1 s"),
    ]


def scaling(trials: int, tmp: Path) -> list[Row]:
    rows: list[Row] = []
    for size in (33, 1033):
        r = measure(size, trials, tmp)
        rows.append((f"no-op run, {size} entries", f"{r['no-op run']:.2f} ms",
                     f"table read {r['table read']:.2f} ms",
                     f"{r['no-op run'] / r['table read']:.1f}x", "<= 3x"))
        rows.append((f"register, {size} entries", f"{r['register']:.2f} ms",
                     f"raw writes {r['raw writes']:.2f} ms",
                     f"{r['register'] / r['raw writes']:.1f}x", "<= 3x"))
    return rows


_FLOOR = """
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
table, line = sys.argv[1], sys.argv[2].encode()
fd = libc.inotify_init1(0)
libc.inotify_add_watch(fd, table.encode(), 0x200)  # IN_DELETE
print("ready", flush=True)
while True:
    data = os.read(fd, 65536)
    if b"multiarch-s390x" in data:
        w = os.open(table + "/register", os.O_WRONLY)
        os.write(w, line)
        os.close(w)
"""


def repaired(ns: PrivateBinfmt, events: Inotify, trials: int, gap: float,
             after: Callable[[], object] = lambda: None) -> list[float]:
    times = []
    for _ in range(trials):
        time.sleep(gap)  # events 100 ms apart, not back to back
        events.drain()
        start = time.perf_counter()
        ns.write("multiarch-s390x", "-1")
        times.append(events.wait("register", IN_MODIFY) - start)
        after()
    return times


def reactions(trials: int, tmp: Path, gap: float = 0.1) -> list[Row]:
    s390x = next(line for line in register_lines() if ":multiarch-s390x:" in line)
    with PrivateBinfmt() as ns, Inotify(ns.path) as events:
        ns.write("register", s390x)
        floor = subprocess.Popen([sys.executable, "-I", "-c", _FLOOR, ns.path, s390x],
                                 stdout=subprocess.PIPE, text=True)
        assert floor.stdout is not None and floor.stdout.readline().strip() == "ready"
        try:
            floor_t = repaired(ns, events, trials, gap)
        finally:
            floor.kill()
            floor.wait()
    policy = tmp / "etc" / "arches.yaml"
    policy.parent.mkdir(exist_ok=True)
    policy.write_text("arches: all\n")
    with PrivateBinfmt() as ns, start_daemon(tmp, policy, ns, "--repair-limit",
                                             "1000000") as d, Inotify(ns.path) as events:
        drift_t = repaired(ns, events, trials, gap, d.mark)
        save_t = []
        for i in range(trials):
            off = i % 2 == 0
            new = policy.with_name("arches.yaml.new")
            new.write_text("arches:\n  all: {}\n  s390x: false\n" if off else "arches: all\n")
            time.sleep(gap)
            events.drain()
            start = time.perf_counter()
            os.replace(new, policy)
            save_t.append(events.wait("multiarch-s390x", IN_DELETE) if off
                          else events.wait("register", IN_MODIFY))
            save_t[-1] -= start
            d.mark()
    return [
        compared("drift -> repaired, p99", percentile(drift_t, 99), "inotify repairer", percentile(floor_t, 99),
                 "<= 15 ms"),
        compared("drift -> repaired, p50", median(drift_t), "inotify repairer",
                 median(floor_t), ""),
        compared("save -> applied, p99", percentile(save_t, 99), "debounce", 0.05, "<= 80 ms"),
    ]


def idle_and_memory(tmp: Path, repairs: int, edits: int) -> list[Row]:
    policy = tmp / "etc" / "arches.yaml"
    policy.write_text("arches: all\n")
    with PrivateBinfmt() as ns, PrivateBus() as bus, \
            start_daemon(tmp, policy, ns, "--repair-limit", "100000000", bus=bus) as d, \
            Inotify(ns.path) as events:
        time.sleep(1)  # the first run's own events settle
        d.mark()
        _, sw0, rss0 = thread_stats(d.proc.pid)
        fds0 = len(os.listdir(f"/proc/{d.proc.pid}/fd"))
        threads0 = len(os.listdir(f"/proc/{d.proc.pid}/task"))
        subprocess.run(["sh", "-c", "i=0; while [ $i -lt 2000 ]; do /usr/bin/true; "
                        "i=$((i+1)); done"], check=True)
        _, sw1, _ = thread_stats(d.proc.pid)
        # Warmed up once the repair history holds a whole window (60 s) of repairs: what grows
        # after that grows with the count.
        began, warm = time.monotonic(), 0
        for i in range(repairs):
            if not warm and time.monotonic() - began >= 60:
                d.mark()
                _, _, rss_warm = thread_stats(d.proc.pid)
                warm = i
            events.drain()
            ns.write("multiarch-s390x", "-1")
            events.wait("register", IN_MODIFY)
            if i % 100 == 0:
                d.mark()
        for i in range(edits):
            new = policy.with_name("arches.yaml.new")
            off = i % 2 == 0
            new.write_text("arches:\n  all: {}\n  s390x: false\n" if off else "arches: all\n")
            events.drain()
            os.replace(new, policy)
            events.wait("multiarch-s390x", IN_DELETE) if off else events.wait("register",
                                                                               IN_MODIFY)
            d.mark()
        time.sleep(1)
        d.mark()
        _, _, rss1 = thread_stats(d.proc.pid)
        if not warm:  # (a quick run: never warm)
            rss_warm, warm = rss1, repairs
        fds1 = len(os.listdir(f"/proc/{d.proc.pid}/fd"))
        threads1 = len(os.listdir(f"/proc/{d.proc.pid}/task"))
    return [
        ("idle: wake-ups while 2,000 programs run", str(sw1 - sw0), "(none needed)", "",
         "<= 6"),
        ("RSS with D-Bus, at start", f"{rss0 / 1024:.1f} MiB", "", "", "<= 30 MB"),
        (f"RSS after {repairs} repairs + {edits} edits", f"{rss1 / 1024:.1f} MiB",
         f"at start {rss0 / 1024:.1f} MiB", f"+{(rss1 - rss0) / 1024:.1f} MiB", "flat"),
        (f"  of which after the first 60 s ({warm} repairs)",
         f"+{(rss1 - rss_warm) / 1024:.1f} MiB", f"then {rss_warm / 1024:.1f} MiB", "", "flat"),
        ("fds, threads after them", f"{fds1}, {threads1}", f"at start {fds0}, {threads0}", "",
         "flat"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--reactions", type=int, default=200)
    parser.add_argument("--quick", action="store_true",
                        help="fewer trials, repairs and edits (a minute or so)")
    parser.add_argument("--write", metavar="PATH", type=Path,
                        help="also write the figures as a Markdown page (docs/benchmarks.md)")
    args = parser.parse_args()
    make_current()
    load = os.getloadavg()[0]
    trials, reacts = (8, 40) if args.quick else (args.trials, args.reactions)
    repairs, edits = (500, 50) if args.quick else (10_000, 1_000)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(dir="/var/tmp") as name:
        tmp = Path(name)
        rows += boot_path(trials, tmp)
        rows += scaling(trials, tmp)
        rows += reactions(reacts, tmp)
        rows += idle_and_memory(tmp, repairs, edits)
    header = page.HEADER
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    print(f"multiarchd {os.uname().machine}, {os.cpu_count()} CPUs, kernel {os.uname().release}")
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    if args.write:
        page.write(args.write, rows, f"{trials} trials, {reacts} reactions, {repairs} repairs, "
                   f"{edits} edits" + (" (--quick)" if args.quick else ""), load)


if __name__ == "__main__":
    main()
