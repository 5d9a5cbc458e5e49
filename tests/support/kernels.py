"""Debian's own kernels booted bare under qemu-system-* (TCG, no disk, no network), to see which
architectures' programs a kernel of each architecture runs by itself: the truth that the
catalog's `runs` lists are checked against (tests/test_family.py).

Each boot's initramfs holds the guest's static busybox, every catalog architecture's probe
(core/probes.py) and an /init that runs them all, binfmt_misc not even mounted, and prints each
exit status on the console. dev/setup downloads the kernels into the cache beside its busyboxes.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from multiarchd.catalog import load_catalog
from multiarchd.core.probes import PROBE_STATUS, build

from .paths import BUSYBOX_CACHE

KERNELS = BUSYBOX_CACHE.parent / "kernels"


@dataclass(frozen=True)
class Machine:
    name: str  # what the test calls it
    arch: str  # the catalog's name of the kernel's architecture
    kernel: str  # directory under KERNELS (dev/setup: Debian's architecture name)
    busybox: str  # directory under the busybox cache
    qemu: tuple[str, ...]  # qemu-system-* and its machine
    console: str


MACHINES = (
    Machine("x86_64", "x86_64", "amd64", "native", ("qemu-system-x86_64", "-M", "pc"), "ttyS0"),
    Machine("i386", "i386", "i386", "i386", ("qemu-system-i386", "-M", "pc"), "ttyS0"),
    Machine("aarch64-cortex-a72", "aarch64", "arm64", "arm64",
            ("qemu-system-aarch64", "-M", "virt,gic-version=3", "-cpu", "cortex-a72"), "ttyAMA0"),
    # A64FX has no AArch32 at all (QEMU 7.2's only such model)
    Machine("aarch64-a64fx", "aarch64", "arm64", "arm64",
            ("qemu-system-aarch64", "-M", "virt,gic-version=3", "-cpu", "a64fx"), "ttyAMA0"),
    Machine("arm", "arm", "armhf", "armhf",
            ("qemu-system-arm", "-M", "virt", "-cpu", "cortex-a15"), "ttyAMA0"),
    Machine("mips64el", "mips64el", "mips64el", "mips64el",
            ("qemu-system-mips64el", "-M", "malta", "-cpu", "5KEc"), "ttyS0"),
    Machine("ppc64le", "ppc64le", "ppc64el", "ppc64el",
            ("qemu-system-ppc64", "-M", "pseries", "-cpu", "power9"), "hvc0"),
    Machine("s390x", "s390x", "s390x", "s390x", ("qemu-system-s390x",), "ttysclp0"),
    Machine("riscv64", "riscv64", "riscv64", "riscv64",
            ("qemu-system-riscv64", "-M", "virt", "-bios", "default"), "ttyS0"),
)

INIT = """#!/bin/busybox sh
/bin/busybox mkdir -p /proc && /bin/busybox mount -t proc proc /proc
echo "family-check machine $(/bin/busybox uname -m)"
for p in /probe/*; do "$p" 2>/dev/null; echo "family-check probe ${p##*/} $?"; done
echo "family-check done"
/bin/busybox reboot -f
"""


def kernel_path(machine: Machine) -> Path:
    """The kernel dev/setup unpacked for the machine (one per directory)."""
    found = sorted((KERNELS / machine.kernel / "boot").glob("vmlinu*"))
    if not found:
        raise FileNotFoundError(f"no kernel in {KERNELS / machine.kernel}: run dev/setup")
    return found[-1]


def _cpio(files: dict[str, tuple[int, bytes]]) -> bytes:
    """A newc cpio archive (what every kernel takes as an initramfs, uncompressed)."""
    out = io.BytesIO()

    def member(ino: int, name: str, mode: int, data: bytes) -> None:
        raw = name.encode() + b"\0"
        out.write(b"070701" + b"".join(b"%08X" % v for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(raw), 0)))
        out.write(raw + b"\0" * (-(110 + len(raw)) % 4))
        out.write(data + b"\0" * (-len(data) % 4))

    dirs = sorted({os.path.dirname(n) for n in files} - {""})
    for i, d in enumerate(dirs, 1):
        member(i, d, 0o40755, b"")
    for i, (name, (mode, data)) in enumerate(sorted(files.items()), len(dirs) + 1):
        member(i, name, mode, data)
    member(0, "TRAILER!!!", 0, b"")
    return out.getvalue()


def initramfs(machine: Machine) -> bytes:
    catalog = load_catalog()
    busybox = (BUSYBOX_CACHE / machine.busybox / "bin" / "busybox").read_bytes()
    files = {"init": (0o100755, INIT.encode()), "bin/busybox": (0o100755, busybox)}
    for name, arch in catalog.arches.items():
        files[f"probe/{name}"] = (0o100755, build(arch))
    return _cpio(files)


def _console(machine: Machine) -> list[str]:
    """The guest's console on QEMU's stdout: a serial port, or pseries's hypervisor console."""
    if machine.console == "hvc0":
        return ["-chardev", "stdio,id=c0", "-device", "spapr-vty,chardev=c0"]
    return ["-serial", "stdio"]


@dataclass(frozen=True)
class Boot:
    machine: str  # what the guest's uname -m said
    ran: frozenset[str]  # architectures whose probe exited with PROBE_STATUS
    console: str


def boot(machine: Machine, timeout: float = 300) -> Boot:
    """Boot the machine's kernel with the probes and read what its console says."""
    with tempfile.TemporaryDirectory(prefix="multiarchd-kernel-") as tmp:
        initrd = Path(tmp) / "initramfs.cpio"
        initrd.write_bytes(initramfs(machine))
        r = subprocess.run(
            [*machine.qemu, "-m", "1024", "-nographic", "-no-reboot", "-nodefaults",
             *_console(machine), "-kernel", str(kernel_path(machine)), "-initrd", str(initrd),
             "-append", f"console={machine.console} panic=-1 quiet"],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    console = r.stdout.decode(errors="replace")
    if "family-check done" not in console:
        raise AssertionError(f"{machine.name} did not finish (exit {r.returncode}):\n"
                             f"{console[-3000:]}\n{r.stderr.decode(errors='replace')[-2000:]}")
    # (a line may start with the firmware's escape sequences)
    uname = re.search(r"family-check machine (\S+)", console)
    ran = re.findall(rf"family-check probe (\S+) {PROBE_STATUS}\b", console)
    return Boot(uname.group(1) if uname else "", frozenset(ran), console)


if __name__ == "__main__":
    import sys
    import time
    for m in MACHINES:
        if sys.argv[1:] and m.name not in sys.argv[1:]:
            continue
        t = time.monotonic()
        b = boot(m)
        print(f"{m.name}: uname {b.machine}, runs {sorted(b.ran)} "
              f"({time.monotonic() - t:.0f} s)", flush=True)
