#!/usr/bin/env python3
"""What the guarded image of QEMU (core/cpu_image.py: `--` after its own words, no QEMU_*
variable under AT_SECURE), which every entry with C registers, costs per exec.

One exec of a trivial foreign program (`busybox true`, from a shell loop) through the image
against plain QEMU, alternating, for s390x (no CPU model: the image only guards) and aarch64
(the shipped model, carried by both ways so that only the guard differs). Run as root, as
setuid programs are: AT_SECURE is 0 then, and the stub walks the whole initial stack either way.
Target: at most 1.05x.

Usage: .venv/bin/python -m bench.credentials [--trials 7] [--execs 300]   (about a minute)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from bench.stats import median
from multiarchd.core.cpu_image import with_cpu_model
from tests.support.paths import BUSYBOX_CACHE

CASES = {"s390x": ("/usr/bin/qemu-s390x-static", None, BUSYBOX_CACHE / "s390x"),
         "aarch64": ("/usr/bin/qemu-aarch64-static", "max,pauth-impdef=on",
                     BUSYBOX_CACHE / "arm64")}


def seconds(script: str) -> float:
    start = time.perf_counter()
    subprocess.run(["sh", "-c", script], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=7)
    parser.add_argument("--execs", type=int, default=300)
    args = parser.parse_args()
    loop = "i=0; while [ $i -lt {n} ]; do {cmd} true; i=$((i+1)); done"
    with tempfile.TemporaryDirectory(prefix="multiarchd-bench-", dir="/var/lib") as work:
        print(f"one exec of `busybox true`, QEMU 7.2, median of {args.trials} interleaved "
              f"trials of {args.execs}")
        print(f"{'':10}{'guarded image':>16}{'plain QEMU':>14}{'image/plain':>14}")
        for arch, (qemu, model, busybox) in CASES.items():
            image = Path(work) / arch
            image.write_bytes(with_cpu_model(Path(qemu).read_bytes(), model))
            os.chmod(image, 0o755)
            words = f" -cpu {model}" if model else ""
            ways = {"image": f"{image} {busybox}/bin/busybox",
                    "plain": f"{qemu}{words} {busybox}/bin/busybox"}
            times: dict[str, list[float]] = {}
            for _ in range(args.trials):  # interleaved: A B A B ...
                for way, cmd in ways.items():
                    times.setdefault(way, []).append(
                        seconds(loop.format(n=args.execs, cmd=cmd)) / args.execs)
            g, p = median(times["image"]), median(times["plain"])
            print(f"{arch:10}{g * 1000:>13.2f} ms{p * 1000:>11.2f} ms{g / p:>13.3f}x")
        print("target: image/plain <= 1.05x")


if __name__ == "__main__":
    main()
