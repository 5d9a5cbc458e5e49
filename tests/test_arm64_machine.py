"""The case multiarchd exists for: an aarch64 machine (Debian arm64 booted under
qemu-system-aarch64, systemd as PID 1, the .deb built from this tree installed) that runs amd64
and i386 programs and container images through the entries multiarchd registered with the arm64
build of QEMU; and armhf decided by the machine: native on a CPU that runs AArch32 at EL0,
foreign on one that does not (QEMU 7.2's a64fx, as Fujitsu's A64FX: AArch64 only).

Everything asserted is what the guest itself printed on its results port
(tests/support/guest_check.sh). Slow: the first run on a machine builds the guest's root (a few
minutes, cached); each boot then takes about a minute of TCG."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import armvm
from tests.support.paths import BUSYBOX_CACHE

pytestmark = pytest.mark.vm

GUEST_CHECK = Path(__file__).parent / "support" / "guest_check.sh"
# Debian's busybox-static, as the guest finds them beside its check script.
BUSYBOXES = {"amd64": BUSYBOX_CACHE / "native" / "bin" / "busybox",
             "i386": BUSYBOX_CACHE / "i386" / "bin" / "busybox",
             "armhf": BUSYBOX_CACHE / "armhf" / "bin" / "busybox"}
AARCH64, X86_64, I386, ARM = "183", "62", "3", "40"  # ELF e_machine


@pytest.fixture(scope="module")
def disk(deb: Path) -> Path:
    return armvm.disk_for(deb)


def results(said: str) -> list[list[str]]:
    return [line.split()[1:] for line in said.splitlines() if line.startswith("RESULT ")]


def one(rows: list[list[str]], key: str, *more: str) -> str:
    [value] = [" ".join(r[1 + len(more):]) for r in rows if r[:1 + len(more)] == [key, *more]]
    return value


def boot(disk: Path, tmp_path: Path, cpu: str, boots: int, podman: bool,
         timeout: float) -> list[list[str]]:
    files = {f"busybox-{a}": p for a, p in BUSYBOXES.items()}
    files["boots"] = tmp_path / "boots"
    files["boots"].write_text(f"{boots}\n")
    if podman:
        files["podman"] = files["boots"]
    checks = armvm.check_disk(tmp_path / "checks.tar", GUEST_CHECK.read_text(), files)
    said, console = armvm.boot(disk, checks, cpu, tmp_path, timeout)
    ends = said.count("=== end of boot")
    assert ends == boots, (f"the guest finished {ends} of {boots} boots; it said:\n{said[-3000:]}"
                           f"\nits console:\n{console[-3000:]}")
    print(said)  # the transcript, for whoever reads the test's output
    return results(said)


def by_boot(rows: list[list[str]]) -> list[list[list[str]]]:
    boots: list[list[list[str]]] = []
    for r in rows:
        if r[0] == "boot":
            boots.append([])
        boots[-1].append(r)
    return boots


def test_an_aarch64_machine_runs_amd64_and_i386_programs_and_images(
        disk: Path, tmp_path: Path) -> None:
    first, second = by_boot(boot(disk, tmp_path, "cortex-a72", boots=2, podman=True,
                                 timeout=1200))
    for n, rows in enumerate((first, second), 1):
        assert one(rows, "uname") == "aarch64"
        assert one(rows, "early-result") == "success", n
        assert one(rows, "early-exit-status") == "0", n
        assert one(rows, "early-before-sysinit") == "yes", n
        assert one(rows, "service") == "active", n
        entries = {r[1]: r[2:] for r in rows if r[0] == "entry"}
        assert "multiarch-aarch64" not in entries  # native
        assert "multiarch-arm" not in entries  # a Cortex-A72 runs AArch32 programs itself
        for name in ("x86_64", "i386", "s390x", "ppc64le", "riscv64", "mips64el"):
            interpreter, machine = entries[f"multiarch-{name}"]
            assert machine == AARCH64, f"{name}'s emulator {interpreter} is not an arm64 build"
        assert one(rows, "state", "aarch64") == "native"
        assert one(rows, "state", "arm") == "native"
        assert one(rows, "state", "x86_64") == "verified"  # its probe ran, through QEMU
        assert one(rows, "state", "i386") == "verified"
        assert one(rows, "test-exit") == "0"
        assert one(rows, "dbus-state") == 's "converged"'
        assert one(rows, "busybox", "amd64") == "x86_64"
        assert one(rows, "busybox", "i386") == "i686"
        # A 32-bit arm program the CPU runs itself sees the kernel's own machine (QEMU's arm
        # would say armv7l).
        assert one(rows, "busybox", "armhf") == "aarch64"
        assert one(rows, "image", "amd64") == "amd64"
        assert one(rows, "podman", "amd64") == "x86_64"
        assert one(rows, "image", "386") == "386"
        assert one(rows, "podman", "386") == "i686"
    assert one(first, "early-replayed") == "0"  # the first boot of a machine: a full run
    assert one(second, "early-replayed") == "1"


def test_armhf_is_foreign_on_an_aarch64_cpu_without_aarch32(disk: Path, tmp_path: Path) -> None:
    [rows] = by_boot(boot(disk, tmp_path, "a64fx", boots=1, podman=False, timeout=900))
    assert one(rows, "uname") == "aarch64"
    entries = {r[1]: r[2:] for r in rows if r[0] == "entry"}
    assert "multiarch-aarch64" not in entries
    assert entries["multiarch-arm"] == ["/usr/bin/qemu-arm-static", AARCH64]
    assert one(rows, "state", "arm") == "verified"
    assert one(rows, "busybox", "armhf") == "armv7l"  # QEMU's arm, not the CPU
    assert one(rows, "busybox", "amd64") == "x86_64"
