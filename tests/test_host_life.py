"""A host's whole life, as an admin lives it, under a real systemd (PID 1 in a container with a
binfmt_misc table of its own): the .deb installed, a reboot (the early unit replays the boot
record), Debian's qemu-user-static downgraded and upgraded between two real versions while
foreign programs run, a reboot, remove, purge. What the kernel runs stays known across the
boots, the processes and the package operations."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.hostlife import (ForeignLoops, admin, apt, changes, check_kernel_files,
                                    installed, now_us, qemu_packages, settle)
from tests.support.nspawn import BootedContainer
from tests.test_systemd import state

pytestmark = pytest.mark.systemd


def converged(c: BootedContainer, when: str) -> None:
    assert state(c) == 's "converged"', when
    check_kernel_files(c, when, time.monotonic(), bound=0)


def test_install_reboot_downgrade_upgrade_under_load_reboot_remove_purge(
        deb: Path, tmp_path: Path) -> None:
    old, new = qemu_packages()
    # (a cgroup of its own: another container booting beside it keeps the shared payload
    # cgroup busy, and this one's cleanup would fail on it)
    c = BootedContainer(tmp_path, name="multiarchd-life", own_cgroup=True)
    try:
        if installed(c, "qemu-user-static") != new.version:  # a host not up to date
            admin(c, "dpkg", "-i", str(new.path))
        c.copy_in(deb, "/root/multiarchd.deb")
        apt(c, "install", "/root/multiarchd.deb")
        converged(c, "installed")

        c.reboot()
        early = c.run("journalctl", "-b", "-u", "multiarchd-early", "-p", "debug",
                      "-o", "cat").stdout
        assert "boot record replayed" in early, early
        converged(c, "rebooted (the boot record replayed)")

        # Downgrade and upgrade as apt does them (dpkg's .dpkg-new and .dpkg-tmp), every
        # interpreter file replaced under entries that foreign programs keep using.
        starts: dict[str, int] = {}
        with ForeignLoops(c) as loops:
            for step, package in (("downgrade", old), ("upgrade", new)):
                starts[step] = now_us()
                apt(c, "install", "--allow-downgrades", str(package.path))
                assert installed(c, "qemu-user-static") == package.version
                check_kernel_files(c, f"{step} of qemu-user-static to {package.version}",
                                   time.monotonic())
                settle(c)
        # Each operation's window lasts until the next begins (once the daemon has done with
        # it); the last, until the loops stop.
        windows = {"downgrade": (starts["downgrade"], starts["upgrade"]),
                   "upgrade": (starts["upgrade"], now_us())}
        assert (loops.failed, loops.first) == (0, []), f"{loops.failed} of {loops.runs} failed"
        assert loops.runs > 0
        for step, made in changes(c, windows).items():
            twice = {entry: said for entry, said in made.items() if len(said) > 1}
            assert not twice, f"the {step}: entries put in more than once by one package " \
                              f"operation: {twice}"

        c.reboot()
        converged(c, "rebooted after the upgrade")

        apt(c, "remove", "multiarchd")
        assert [n for n in c.table() if n.startswith("multiarch-")] == []
        assert (c.merged / "etc/multiarch/arches.yaml").exists(), "remove keeps the policy"
        apt(c, "purge", "multiarchd")
        assert installed(c, "multiarchd") == ""
        assert not (c.merged / "etc/multiarch").exists()
        assert [n for n in c.table() if n.startswith("multiarch-")] == []
    finally:
        c.close()
