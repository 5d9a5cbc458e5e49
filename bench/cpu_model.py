#!/usr/bin/env python3
"""What the CPU model carried by the entry buys and costs, side by side in one run.

Debian 13's arm64 busybox (built with branch protection, as current distributions build arm64)
runs call-heavy work three ways, alternating, in a private binfmt_misc instance filled by
`multiarchd --once` with the shipped policy:

  - through the entry: the file multiarchd made, QEMU carrying `-cpu max,pauth-impdef=on`;
  - by hand: `qemu-aarch64-static -cpu max,pauth-impdef=on busybox ...` (the anchor: the entry
    must cost nothing over it, at most 1.2x);
  - QEMU's default model (`max`, pointer authentication by the architected algorithm): what
    every binfmt setup runs today.

and the cost of one exec of a trivial arm64 program (`busybox true`, from a loop inside the
namespace) through the entry against QEMU with the same model by hand (at most 1.3x).

Usage: .venv/bin/python -m bench.cpu_model [--trials 5] [--execs 200]   (about a minute)
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.stats import median
from tests.support.binfmt import PrivateBinfmt
from tests.support.paths import BUSYBOX_CACHE, DEFAULT_POLICY

QEMU = "/usr/bin/qemu-aarch64-static"
MODEL = "max,pauth-impdef=on"
BUSYBOX = str(BUSYBOX_CACHE / "arm64-trixie" / "bin" / "busybox")
FIB = "function f(n) { return n < 2 ? n : f(n-1) + f(n-2) } BEGIN { print f(20) }"


def seconds(ns: PrivateBinfmt, script: str) -> float:
    start = time.perf_counter()
    r = ns.exec("sh", "-c", script, timeout=3600)
    assert r.returncode == 0, (script, r.stderr)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--execs", type=int, default=200)
    args = parser.parse_args()
    state = tempfile.mkdtemp(prefix="multiarchd-bench-", dir="/var/lib")
    os.chmod(state, 0o755)
    lines = Path(state) / "lines.txt"
    rng = random.Random(7)
    numbers = [str(n) for n in range(200_000)]
    rng.shuffle(numbers)
    lines.write_text("\n".join(numbers) + "\n")
    ns = PrivateBinfmt()
    try:
        once = subprocess.run([str(Path(sys.executable).parent / "multiarchd"), "--once",
                               "--config", str(DEFAULT_POLICY), "--binfmt-dir", ns.path],
                              capture_output=True, text=True,
                              env=dict(os.environ, STATE_DIRECTORY=state))
        assert once.returncode == 0, once.stderr
        assert f"{state}/cpu/aarch64" in ns.read("multiarch-aarch64")
        ways = {"through the entry": BUSYBOX,
                f"by hand, -cpu {MODEL}": f"{QEMU} -cpu {MODEL} {BUSYBOX}",
                "QEMU's default (max)": f"{QEMU} {BUSYBOX}"}
        jobs = {"awk fib(20)": f"awk '{FIB}' >/dev/null",
                "sort 200,000 lines": f"sort -n {lines} >/dev/null"}
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.trials):  # interleaved: A B C A B C ...
            for job, tail in jobs.items():
                for way, head in ways.items():
                    times.setdefault((job, way), []).append(seconds(ns, f"{head} {tail}"))
        loop = "i=0; while [ $i -lt {n} ]; do {cmd} true; i=$((i+1)); done"
        execs: dict[str, list[float]] = {}
        for _ in range(args.trials):
            for way in list(ways)[:2]:
                script = loop.format(n=args.execs, cmd=ways[way])
                execs.setdefault(way, []).append(seconds(ns, script) / args.execs)
        print(f"arm64 (Debian 13, branch protection) busybox, QEMU 7.2, median of {args.trials} "
              "interleaved trials")
        entry, hand, default = ways
        print(f"{'':22}{entry:>20}{hand:>34}{default:>24}  entry/hand  default/entry")
        for job in jobs:
            m = [median(times[(job, w)]) for w in ways]
            print(f"{job:22}{m[0] * 1000:>17.0f} ms{m[1] * 1000:>31.0f} ms"
                  f"{m[2] * 1000:>21.0f} ms  {m[0] / m[1]:>9.2f}x  {m[2] / m[0]:>12.1f}x")
        e, h = (median(execs[w]) for w in (entry, hand))
        print(f"{'one exec of `true`':22}{e * 1000:>17.2f} ms{h * 1000:>31.2f} ms"
              f"{'':>24}  {e / h:>9.2f}x")
        print("targets: entry/hand <= 1.2x for the work, <= 1.3x for an exec")
    finally:
        ns.close()
        subprocess.run(["rm", "-rf", state], check=False)


if __name__ == "__main__":
    main()
