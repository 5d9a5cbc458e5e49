"""Real-world end to end: an arm64 Debian minbase root, whose second stage (every package's
maintainer scripts, run by arm64 binaries) completes in a chroot under emulation through entries
multiarchd registered with F, without any emulator copied into the root. Slow: about 2 minutes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.fullns import run_in_full_userns
from tests.support.paths import BIN, BUSYBOX_CACHE

pytestmark = pytest.mark.kernel

TARBALL = BUSYBOX_CACHE.parent / "bookworm-arm64-minbase.tgz"


def test_debootstrap_second_stage_in_a_foreign_chroot(tmp_path: Path) -> None:
    assert TARBALL.is_file(), f"{TARBALL} is missing: run dev/setup"
    root = tmp_path / "root"
    first = subprocess.run(["debootstrap", "--foreign", "--arch=arm64", "--variant=minbase",
                            f"--unpack-tarball={TARBALL}", "bookworm", str(root)],
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    policy = tmp_path / "arches.yaml"
    policy.write_text("defaults: {flags: [F, P]}\narches: {arm64: {}}\n")
    script = f"""set -e
mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
{BIN}/multiarchd --once --config {policy} --log-target stderr
grep -qx 'flags: PF' /proc/sys/fs/binfmt_misc/multiarch-aarch64
# debootstrap's container mode: no device nodes to make, as in any user namespace
container=lxc chroot {root} /debootstrap/debootstrap --second-stage
chroot {root} /bin/uname -m
"""
    r = run_in_full_userns(["sh", "-c", script], timeout=1500)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "I: Base system installed successfully." in r.stdout
    assert r.stdout.strip().splitlines()[-1] == "aarch64"
    status = (root / "var/lib/dpkg/status").read_text()
    assert status.count("Status: install ok installed") > 80
    assert "Architecture: arm64" in status
    emulators = [p for p, _dirs, files in os.walk(root) for f in files if f.startswith("qemu-")]
    assert emulators == [], "an emulator was copied into the root"
