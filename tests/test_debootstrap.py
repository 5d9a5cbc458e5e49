"""Real-world end to end: an arm64 Debian minbase root, whose second stage (every package's
maintainer scripts, run by arm64 binaries) completes in a chroot under emulation through entries
multiarchd registered with F, without any emulator copied into the root; then that root, as an
arm64 image, is built on by podman with RUN steps that are arm64 programs. Slow: about 2
minutes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.fullns import run_in_full_userns
from tests.support.paths import BIN, BUSYBOX_CACHE
from tests.support.podman import shell_setup

pytestmark = pytest.mark.kernel

TARBALL = BUSYBOX_CACHE.parent / "bookworm-arm64-minbase.tgz"
CONTAINERFILE = """FROM localhost/minbase-arm64
RUN dpkg --print-architecture > /built && apt-get --version | head -n 1 >> /built
"""


def test_debootstrap_second_stage_in_a_foreign_chroot(tmp_path: Path) -> None:
    assert TARBALL.is_file(), f"{TARBALL} is missing: run dev/setup"
    root = tmp_path / "root"
    first = subprocess.run(["debootstrap", "--foreign", "--arch=arm64", "--variant=minbase",
                            f"--unpack-tarball={TARBALL}", "bookworm", str(root)],
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    policy = tmp_path / "arches.yaml"
    policy.write_text("defaults: {flags: [F, P]}\narches: {arm64: {}}\n")
    (tmp_path / "context").mkdir()
    (tmp_path / "context" / "Containerfile").write_text(CONTAINERFILE)
    script = f"""set -e
{shell_setup(tmp_path / "storage")}
mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
{BIN}/multiarchd --once --config {policy} --log-target stderr
grep -qx 'flags: PF' /proc/sys/fs/binfmt_misc/multiarch-aarch64
# debootstrap's container mode: no device nodes to make, as in any user namespace
container=lxc chroot {root} /debootstrap/debootstrap --second-stage
chroot {root} /bin/uname -m
# The root as an arm64 image, and a build on it whose RUN steps are arm64's dpkg and apt-get.
said={tmp_path}/podman.log  # shown only if a step fails
tar -C {root} -c . | podman import --arch arm64 - localhost/minbase-arm64 >$said 2>&1 || {{
    cat $said; exit 1; }}
podman build --arch arm64 $LIMITS -t localhost/minbase-built {tmp_path}/context >$said 2>&1 || {{
    cat $said; exit 1; }}
echo "image $(podman image inspect --format '{{{{.Architecture}}}}' localhost/minbase-built)"
podman run --rm --arch arm64 $LIMITS localhost/minbase-built cat /built
"""
    r = run_in_full_userns(["sh", "-c", script], timeout=1500)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "I: Base system installed successfully." in r.stdout
    lines = r.stdout.strip().splitlines()
    assert lines[-4:-2] == ["aarch64", "image arm64"], r.stdout[-3000:]
    assert lines[-2] == "arm64" and lines[-1].startswith("apt "), lines[-2:]  # dpkg, apt-get
    status = (root / "var/lib/dpkg/status").read_text()
    assert status.count("Status: install ok installed") > 80
    assert "Architecture: arm64" in status
    emulators = [p for p, _dirs, files in os.walk(root) for f in files if f.startswith("qemu-")]
    assert emulators == [], "an emulator was copied into the root"
