#!/usr/bin/env python3
"""The project's origin benchmark, reproduced on this machine: a large bzip2 file decompressed
natively and by arm64's programs in an arm64 container, through multiarchd's entries.

The origin measured amd64's pbzip2 in a container on a 4-core aarch64 VM against the native
one: 143.4 s against 19.7 s, 7.3x. This is the other direction (arm64 on x86_64), with
Debian 12's QEMU 7.2 and this machine's cores, so the ratio is comparable in kind, not in value.

  - an arm64 Debian minbase root, its second stage run through multiarchd's entries (as
    tests/test_debootstrap.py does), with Debian's arm64 pbzip2 and bzip2 unpacked into it,
    imported into podman as an arm64 image;
  - text compressed natively to a bzip2 file of at least 50 MB (by default);
  - `pbzip2 -d` and `bzip2 -d` natively, then the same in the arm64 container (podman with
    runc, in a user namespace with a binfmt_misc of its own: the host's table is not touched).

Usage: .venv/bin/python -m bench.bzip2 [--megabytes 160]   (about 5 minutes on 2 cores)
Needs dev/setup (the arm64 minbase, podman, pbzip2); downloads arm64's pbzip2 and bzip2 once.
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.fullns import run_in_full_userns
from tests.support.paths import BIN, BUSYBOX_CACHE
from tests.support.podman import shell_setup

CACHE = BUSYBOX_CACHE.parent
TARBALL = CACHE / "bookworm-arm64-minbase.tgz"
ORIGIN = 143.4 / 19.7  # amd64 pbzip2 in a container on aarch64, against native


def arm64_debs() -> list[Path]:
    debs = CACHE / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    found = []
    for package in ("pbzip2", "bzip2"):
        have = sorted(debs.glob(f"{package}_*_arm64.deb"))
        if not have:
            subprocess.run(["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root",
                            f"{package}:arm64"], cwd=debs, check=True)
            have = sorted(debs.glob(f"{package}_*_arm64.deb"))
        found.append(have[-1])
    return found


def make_data(path: Path, megabytes: int) -> None:
    """Words in random order: bzip2 makes about 1 MB of 3 MB of it."""
    words = Path("/usr/share/dict/words").read_text().split() \
        if Path("/usr/share/dict/words").exists() else \
        [f"w{i:x}" for i in range(50_000)]
    rng = random.Random(7)
    with open(path, "w") as out:
        while out.tell() < megabytes << 20:
            out.write(" ".join(rng.choices(words, k=4096)) + "\n")


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=int, default=160,
                        help="of text, before compression (160: about 56 MB as bzip2)")
    args = parser.parse_args()
    assert TARBALL.is_file() and shutil.which("pbzip2"), "run dev/setup first"
    work = Path(tempfile.mkdtemp(prefix="multiarchd-bzip2-", dir="/var/lib"))
    work.chmod(0o755)
    try:
        root = work / "root"
        subprocess.run(["debootstrap", "--foreign", "--arch=arm64", "--variant=minbase",
                        f"--unpack-tarball={TARBALL}", "bookworm", str(root)], check=True,
                       capture_output=True)
        unpacked = work / "debs"
        for deb in arm64_debs():  # (not into the root: its /bin is a link a deb's ./bin replaces)
            subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True)
        for tool in ("pbzip2", "bzip2"):
            [binary] = [p for p in unpacked.rglob(tool) if p.is_file()]
            shutil.copy2(binary, root / "usr" / "bin" / tool)
        data = work / "data"
        make_data(data, args.megabytes)
        subprocess.run(["pbzip2", "-k", "-9", str(data)], check=True)
        size = (work / "data.bz2").stat().st_size
        native = {tool: timed([tool, "-d", "-c", str(work / "data.bz2")])
                  for tool in ("pbzip2", "bzip2")}
        policy = work / "arches.yaml"
        policy.write_text("arches: {arm64: {}}\n")
        script = f"""set -e
{shell_setup(work / "storage")}
mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
{BIN}/multiarchd --once --config {policy} >/dev/null 2>&1
container=lxc chroot {root} /debootstrap/debootstrap --second-stage >/dev/null
tar -C {root} -c . | podman import --arch arm64 - localhost/bench-arm64 >/dev/null 2>&1
for tool in pbzip2 bzip2; do
    start=$(date +%s%N)
    podman run --rm --arch arm64 $LIMITS -v {work}:/w localhost/bench-arm64 \\
        $tool -d -c /w/data.bz2 >/dev/null
    echo "$tool $(( ($(date +%s%N) - start) / 1000000 ))"
done
"""
        r = run_in_full_userns(["sh", "-c", script], timeout=7200)
        assert r.returncode == 0, r.stdout[-3000:]
        emulated = {tool: int(ms) / 1000 for tool, ms in
                    (line.split() for line in r.stdout.splitlines() if line[:1].isalpha())}
        print(f"{args.megabytes} MiB of text, {size / 2**20:.1f} MiB as bzip2 (-9, pbzip2), "
              "decompressed; the arm64 runs include starting the container")
        print(f"{'tool':8} {'native x86_64':>14} {'arm64 in a container':>22} {'ratio':>7}")
        for tool in ("pbzip2", "bzip2"):
            print(f"{tool:8} {native[tool]:12.2f} s {emulated[tool]:20.2f} s "
                  f"{emulated[tool] / native[tool]:6.1f}x")
        print(f"origin (amd64 pbzip2 on a 4-core aarch64 VM): 19.7 s native, 143.4 s in a "
              f"container, {ORIGIN:.1f}x: the same kind of figure, another direction and machine")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
