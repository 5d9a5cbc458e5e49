#!/usr/bin/env python3
"""Memory under every D-Bus call by anyone: N calls of each method of the daemon's object (the
reads, Plan, Explain, Test, Release, Reconcile, Reload) by nobody and by root, all callers at
once (16 calls in flight each), on a private table and bus with the shipped policy; the
daemon's RSS before and after, and its growth, after a warm-up round of the same size.

Usage: .venv/bin/python -m bench.dbus_memory [--calls 100000] [--warmup 20000] [--rounds 1]
                                             [--method Test ...] [--arches 'all: {}']
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from tests.support.binfmt import PrivateBinfmt
from tests.support.bus import PrivateBus
from tests.support.callers import EVERY, every_method
from tests.support.daemon import start_daemon


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=100_000, help="of each method, each user")
    parser.add_argument("--warmup", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--method", action="append", default=[],
                        help="only these (e.g. Test); default: every method")
    parser.add_argument("--arches", default="all: {}",
                        help="the policy's arches map, one line (root's runs cost with it)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="multiarchd-bench-"))
    policy = tmp / "etc" / "arches.yaml"
    policy.parent.mkdir()
    policy.write_text(f"arches:\n  {args.arches}\n")
    names = args.method or [m.rsplit(".", 1)[1] for m, _ in EVERY]
    with PrivateBus() as bus, PrivateBinfmt() as ns, \
            start_daemon(tmp, policy, ns, bus=bus) as d:
        pid = d.proc.pid
        warm = every_method(bus, pid, args.warmup, names)
        print(f"methods: {', '.join(names)}; by nobody and by root; arches: {args.arches}")
        print(f"warm-up  {args.warmup:>7} each: {warm.seconds:6.1f} s (daemon CPU {warm.cpu:.1f} s), RSS {warm.rss_before} -> "
              f"{warm.rss_after} KiB")
        for _ in range(args.rounds):
            r = every_method(bus, pid, args.calls, names)
            print(f"measured {args.calls:>7} each: {r.seconds:6.1f} s (daemon CPU {r.cpu:.1f} s), RSS {r.rss_before} -> "
                  f"{r.rss_after} KiB, growth {r.growth:+d} KiB")


if __name__ == "__main__":
    main()
