#!/usr/bin/env python3
"""What emulation costs, on this host, through multiarchd's own registrations.

The project's origin published a table of decompressing a bzip2 file natively and under
emulation (19.7 s native against 143.4 s emulated, 7.3x). This reproduces that kind of table:
the same busybox applets (bunzip2, gunzip, sha256sum) on the same generated data, natively and
as arm64, s390x, riscv64 and ppc64el busybox run through the entries `multiarchd --once`
registers in a private binfmt_misc instance, plus the cost of one exec of `busybox true`.
Every figure is a median, and every ratio is against the native run of this same script.

Usage: .venv/bin/python -m bench.emulation [--megabytes 32] [--repeat 3] [--execs 200]
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.stats import median, trials
from tests.support.binfmt import PrivateBinfmt
from tests.support.paths import BUSYBOX_CACHE, DEFAULT_POLICY

CACHE = BUSYBOX_CACHE
# (busybox directory, label, environment for the run)
TARGETS = [("native", "", ()), ("arm64", "", ()), ("s390x", "", ()), ("riscv64", "", ()),
           ("ppc64el", "", ()),
           # Debian 13's arm64 busybox is built with pointer authentication (PAC): through the
           # entry, it runs with the shipped model (max,pauth-impdef=on); bench.cpu_model
           # compares it with QEMU's default.
           ("arm64-trixie", "PAC, shipped model", ())]


def make_data(path: Path, megabytes: int) -> None:
    """Text-like data that compresses about as well as real files do."""
    rng = random.Random(7)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
             for _ in range(5000)]
    with open(path, "w") as f:
        written = 0
        while written < megabytes * 1_000_000:
            line = " ".join(rng.choice(words) for _ in range(12)) + "\n"
            f.write(line)
            written += len(line)


def timed(ns: PrivateBinfmt, argv: list[str], repeat: int) -> float:
    def run() -> None:
        r = ns.exec(*argv, timeout=3600)
        assert r.returncode == 0, (argv, r.stderr)
    return median(trials(run, repeat))


def exec_cost(ns: PrivateBinfmt, busybox: str, count: int) -> float:
    """One exec of `busybox true`, from a loop inside the namespace (no nsenter per exec)."""
    script = f'i=0; while [ $i -lt {count} ]; do {busybox} true; i=$((i+1)); done'
    start = time.perf_counter()
    r = ns.exec("sh", "-c", script, timeout=3600)
    assert r.returncode == 0, r.stderr
    return (time.perf_counter() - start) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--execs", type=int, default=200)
    args = parser.parse_args()
    # Under /var/lib, root's: multiarchd registers no file from under /tmp.
    work = Path(tempfile.mkdtemp(prefix="multiarchd-emul-", dir="/var/lib"))
    work.chmod(0o755)
    data = work / "data.txt"
    make_data(data, args.megabytes)
    raw = data.read_bytes()
    (work / "data.txt.bz2").write_bytes(bz2.compress(raw))
    (work / "data.txt.gz").write_bytes(gzip.compress(raw))
    ns = PrivateBinfmt()
    try:
        # The files that carry a CPU model go to a directory of this run's, not the host's.
        state = work / "state"
        state.mkdir(mode=0o755)
        once = subprocess.run([str(Path(sys.executable).parent / "multiarchd"), "--once",
                               "--config", str(DEFAULT_POLICY), "--binfmt-dir",
                               ns.path], capture_output=True, text=True,
                              env=dict(os.environ, STATE_DIRECTORY=str(state)))
        assert once.returncode == 0, once.stderr
        jobs = {
            "bunzip2": ["bunzip2", "-c", str(work / "data.txt.bz2")],
            "gunzip": ["gunzip", "-c", str(work / "data.txt.gz")],
            "sha256sum": ["sha256sum", str(data)],
        }
        results: dict[str, dict[str, float]] = {}
        for target, label, env in TARGETS:
            bb = str(CACHE / target / "bin" / "busybox")
            if not os.path.exists(bb):
                print(f"(no {bb}: run dev/setup)")
                continue
            arch = ns.exec(*env, bb, "uname", "-m").stdout.strip()
            row = {job: timed(ns, [*env, bb, *argv], args.repeat) for job, argv in jobs.items()}
            row["exec"] = exec_cost(ns, " ".join((*env, bb)), args.execs)
            results[f"{target} ({label or arch})"] = row
        native = results[next(iter(results))]
        print(f"busybox on {args.megabytes} MB of generated text, median of {args.repeat} "
              f"(exec: mean of {args.execs}); ratio = time / native time")
        print(f"{'':40}" + "".join(f"{j:>20}" for j in (*jobs, "exec of `true`")))
        for name, row in results.items():
            cells = []
            for job in (*jobs, "exec"):
                value = row[job]
                shown = f"{value * 1000:.2f} ms" if job == "exec" else f"{value:.2f} s"
                cells.append(f"{shown} ({value / native[job]:.1f}x)")
            print(f"{name:40}" + "".join(f"{c:>20}" for c in cells))
        print("origin's figure, for comparison: bzip2 19.7 s native, 143.4 s emulated (7.3x)")
    finally:
        ns.close()
        subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    main()
