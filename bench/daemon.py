#!/usr/bin/env python3
"""The running daemon: how fast it reacts, and what it costs while idle.

  drift -> repair : another process removes an owned entry; time until multiarchd registers it
                    again (the kernel's own inotify event on `register` marks both ends);
  save -> applied : a policy save by rename that turns s390x off or on; time until the entry
                    is removed or registered;
  idle            : CPU time, context switches (all threads) and RSS over a quiet period.

Usage: .venv/bin/python -m bench.daemon [--trials 200] [--idle 60]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from bench import stats
from tests.support.binfmt import PrivateBinfmt
from tests.support.daemon import start_daemon
from tests.support.inotify import IN_DELETE, IN_MODIFY, Inotify

def thread_stats(pid: int) -> tuple[float, int, int]:
    """(CPU seconds, context switches of every thread, RSS in KiB)."""
    ticks = os.sysconf("SC_CLK_TCK")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    switches = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                switches += int(line.split()[1])
    rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text()
               .splitlines() if line.startswith("VmRSS"))
    return cpu, switches, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of idle measurement")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="multiarchd-bench-"))
    policy = tmp / "etc" / "arches.yaml"
    policy.parent.mkdir()
    policy.write_text("arches: all\n")
    with PrivateBinfmt() as ns, start_daemon(tmp, policy, ns, "--repair-limit", "1000000") as d:
        events = Inotify(ns.path)
        print(f"multiarchd on the default 33-entry table, {args.trials} trials each")

        drift = []
        for _ in range(args.trials):
            events.drain()
            start = time.perf_counter()
            ns.write("multiarch-s390x", "-1")
            drift.append(events.wait("register", IN_MODIFY) - start)
            d.mark()  # keep the log pipe drained
        print(f"  drift -> repair    {stats.spread(drift)}")

        save = []
        for i in range(args.trials):
            off = i % 2 == 0
            text = "arches:\n  all: {}\n  s390x: false\n" if off else "arches: all\n"
            tmp_file = policy.with_name("arches.yaml.new")
            tmp_file.write_text(text)
            events.drain()
            start = time.perf_counter()
            os.replace(tmp_file, policy)
            if off:
                save.append(events.wait("multiarch-s390x", IN_DELETE) - start)
            else:
                save.append(events.wait("register", IN_MODIFY) - start)
            d.mark()
        print(f"  save -> applied    {stats.spread(save)}")

        time.sleep(2)  # let the last trial's events settle before the quiet period starts
        d.mark()
        cpu0, sw0, _ = thread_stats(d.proc.pid)
        time.sleep(args.idle)  # the measurement itself: the daemon is left alone
        cpu1, sw1, rss = thread_stats(d.proc.pid)
        threads = len(list(Path(f"/proc/{d.proc.pid}/task").iterdir()))
        print(f"  idle {args.idle:g} s         CPU {1000 * (cpu1 - cpu0):.0f} ms, "
              f"{sw1 - sw0} context switches over {threads} threads, RSS {rss / 1024:.1f} MiB")
        print("  anchor: safety timer every 300 s, no watchdog set: expected wake-ups 0")


if __name__ == "__main__":
    main()
