"""An arm64 Debian image with sudo and an ordinary user allowed to use it, as a container user's
image would be: the minbase dev/setup downloads (bookworm-arm64-minbase.tgz), its second stage
run by arm64 binaries in a private table where multiarchd registered aarch64 with C, then
Debian's sudo:arm64 (dev/setup downloads it) installed, and the user `tester` (uid 1000) given
`NOPASSWD: ALL`. Made once (about two minutes), kept as a tar beside dev/setup's other
downloads; delete it to make it again.

    .venv/bin/python -m tests.support.sudo_image    # what dev/setup runs
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from .fullns import run_in_full_userns
from .paths import BIN, BUSYBOX_CACHE

CACHE = BUSYBOX_CACHE.parent
MINBASE = CACHE / "bookworm-arm64-minbase.tgz"
DEBS = CACHE / "debs" / "bookworm"
IMAGE = CACHE / "arm64-sudo" / "rootfs.tar"
USER, UID = "tester", 1000
# The policy the image is made under (and the test runs): aarch64 with C, as sudo needs.
POLICY = "defaults: {flags: [C, F, P]}\narches: {arm64: {}}\n"


def sudo_deb() -> Path:
    found = sorted(DEBS.glob("sudo_*_arm64.deb"))
    if not found:
        raise FileNotFoundError(f"no sudo:arm64 .deb in {DEBS}: run dev/setup")
    return found[-1]


def build_image() -> Path:
    """The image's tar, made unless it is there already."""
    if IMAGE.is_file():
        return IMAGE
    if not MINBASE.is_file():
        raise FileNotFoundError(f"{MINBASE} is missing: run dev/setup")
    deb = sudo_deb()
    IMAGE.parent.mkdir(parents=True, exist_ok=True)
    # Under root's own directory: the chroot's files must not sit below a world-writable /tmp.
    with tempfile.TemporaryDirectory(dir=IMAGE.parent) as work:
        root = Path(work) / "root"
        first = subprocess.run(["debootstrap", "--foreign", "--arch=arm64", "--variant=minbase",
                                f"--unpack-tarball={MINBASE}", "bookworm", str(root)],
                               capture_output=True, text=True, timeout=600)
        if first.returncode != 0:
            raise RuntimeError("debootstrap's first stage failed: " + first.stderr[-2000:])
        policy = Path(work) / "arches.yaml"
        policy.write_text(POLICY)
        (root / "tmp" / deb.name).write_bytes(deb.read_bytes())
        script = f"""set -e
mount -t proc proc /proc
mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
CACHE_DIRECTORY={work}/cache RUNTIME_DIRECTORY={work}/run \\
    {BIN}/multiarchd --once --config {policy} --log-target stderr
grep -qx 'flags: POCF' /proc/sys/fs/binfmt_misc/multiarch-aarch64
container=lxc chroot {root} /debootstrap/debootstrap --second-stage
chroot {root} dpkg -i /tmp/{deb.name}
rm {root}/tmp/{deb.name}
chroot {root} useradd --create-home --uid {UID} --shell /bin/sh {USER}
echo '{USER} ALL=(ALL) NOPASSWD: ALL' > {root}/etc/sudoers.d/{USER}
chmod 0440 {root}/etc/sudoers.d/{USER}
"""
        r = run_in_full_userns(["sh", "-c", script], timeout=1800)
        (IMAGE.parent / "build.log").write_text(r.stdout)
        if r.returncode != 0:
            raise RuntimeError(f"making the sudo image failed (exit {r.returncode}); see "
                               f"{IMAGE.parent / 'build.log'}:\n" + r.stdout[-3000:])
        subprocess.run(["tar", "-C", str(root), "--numeric-owner", "--xattrs",
                        "--exclude=./var/cache/apt/archives/*.deb", "-cf", f"{IMAGE}.new", "."],
                       check=True)
        os.replace(f"{IMAGE}.new", IMAGE)
    return IMAGE


if __name__ == "__main__":
    print(f"arm64 image with sudo in {build_image()}")
