#!/usr/bin/env python3
"""How long it takes to register the full set of foreign qemu entries into an empty table.

Prints, in one run, against anchors measured in the same run:
  1. in-process: reconcile_once() (read policy, probe host, read table, plan, apply, read back)
     against the floor, a bare loop of os.write() of the same register lines;
  2. whole process: `multiarchd --once` against systemd-binfmt given the same lines as a
     binfmt.d file. Both run inside the private namespace through the same nsenter.
Every trial starts from a fresh, empty private binfmt_misc instance (not timed).

Usage: .venv/bin/python -m bench.reconcile [--trials N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from multiarchd.model.options import Config
from multiarchd.model.observed import Observed
from multiarchd.reconciler.run import evaluate, reconcile_once

from bench.bytecode import make_current
from bench.stats import median, percentile
from tests.support.binfmt import PrivateBinfmt
from tests.support.paths import DEFAULT_POLICY

POLICY = str(DEFAULT_POLICY)
SYSTEMD_BINFMT = "/lib/systemd/systemd-binfmt"


def register_lines() -> list[str]:
    # (make_models: aarch64's line names the file that carries its CPU model, which must exist
    # for the kernel to take the line: made as a run makes it)
    _, _, _, todo = evaluate(Config(POLICY, "/nonexistent"), observed=Observed(()),
                             make_models=True)
    return [a.registration.register_line() for a in todo.actions if a.registration]


def timed(trials: int, run: Callable[[PrivateBinfmt], None], expect: int) -> list[float]:
    times = []
    for _ in range(trials):
        ns = PrivateBinfmt()
        try:
            start = time.perf_counter()
            run(ns)
            times.append(time.perf_counter() - start)
            assert len(ns.names()) == expect, f"expected {expect} entries, got {len(ns.names())}"
        finally:
            ns.close()
    return times


def describe(name: str, times: list[float]) -> str:
    return (f"  {name:<34} median {median(times) * 1000:8.2f} ms   "
            f"p90 {percentile(times, 90) * 1000:8.2f} ms")


def compare(heading: str, anchor: str, anchor_t: list[float], name: str,
            times: list[float]) -> None:
    print(heading)
    print(describe(anchor, anchor_t))
    print(describe(name, times))
    ratio = median(times) / median(anchor_t)
    print(f"  ratio {name} / {anchor}: {ratio:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=30)
    args = parser.parse_args()
    make_current()
    lines = register_lines()
    n = len(lines)

    def floor(ns: PrivateBinfmt) -> None:
        path = os.path.join(ns.path, "register")
        for line in lines:
            fd = os.open(path, os.O_WRONLY)
            os.write(fd, line.encode())
            os.close(fd)

    def in_process(ns: PrivateBinfmt) -> None:
        result = reconcile_once(Config(POLICY, ns.path))
        assert result.report.exit_code() == 0

    multiarchd = str(Path(sys.executable).parent / "multiarchd")
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as conf:
        conf.write("\n".join(lines) + "\n")

    def inside(ns: PrivateBinfmt, *argv: str) -> None:
        r = ns.exec(*argv)
        assert r.returncode == 0, r.stderr

    def whole_multiarchd(ns: PrivateBinfmt) -> None:
        inside(ns, multiarchd, "--once", "--config", POLICY)

    def whole_systemd(ns: PrivateBinfmt) -> None:
        inside(ns, SYSTEMD_BINFMT, conf.name)

    print(f"Registering {n} foreign qemu entries into an empty private binfmt_misc instance, "
          f"{args.trials} trials each")
    compare("In process:", "os.write loop (floor)", timed(args.trials, floor, n),
            "reconcile_once()", timed(args.trials, in_process, n))
    compare("Whole process (both through nsenter into the namespace):",
            "systemd-binfmt FILE", timed(args.trials, whole_systemd, n),
            "multiarchd --once", timed(args.trials, whole_multiarchd, n))
    os.unlink(conf.name)


if __name__ == "__main__":
    main()
