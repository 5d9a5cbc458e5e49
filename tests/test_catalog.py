"""The catalog is ELF facts: every row agrees with itself, with Debian's qemu and with real binaries."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import pytest

from multiarchd.catalog import load_catalog
from multiarchd.host.facts import host_arch
from multiarchd.model.catalog import Arch

from tests.support.paths import BUSYBOXES

QEMU_12 = """aarch64 aarch64_be alpha arm armeb cris hexagon hppa i386 loongarch64 m68k microblaze
microblazeel mips mips64 mips64el mipsel mipsn32 mipsn32el nios2 or1k ppc ppc64 ppc64le riscv32
riscv64 s390x sh4 sh4eb sparc sparc32plus sparc64 x86_64 xtensa xtensaeb""".split()

CATALOG = load_catalog()


def matching(header: bytes) -> list[Arch]:
    """The catalog's architectures whose binfmt_misc match takes a file with this header."""
    return [a for a in CATALOG.arches.values() if a.matches(header)]


def test_every_debian_12_qemu_arch_is_in_the_catalog() -> None:
    assert sorted(CATALOG.arches) == sorted(QEMU_12)
    assert len(CATALOG.arches) == 35


def test_installed_qemu_user_static_has_nothing_the_catalog_lacks() -> None:
    installed = {os.path.basename(p)[5:-7] for p in glob.glob("/usr/bin/qemu-*-static")}
    assert installed, "qemu-user-static is not installed: run dev/setup"
    assert installed <= set(CATALOG.arches)


@pytest.mark.parametrize("alias,arch", [
    ("amd64", "x86_64"), ("arm64", "aarch64"), ("armhf", "arm"), ("armel", "arm"),
    ("386", "i386"), ("i686", "i386"), ("ppc64el", "ppc64le"), ("loong64", "loongarch64"),
    ("mips64le", "mips64el"), ("s390x", "s390x"),
])
def test_aliases(alias: str, arch: str) -> None:
    assert CATALOG.canonical(alias) == arch


@pytest.mark.parametrize("name", sorted(CATALOG.arches))
def test_magic_is_the_elf_header_the_row_describes(name: str) -> None:
    a = CATALOG.arches[name]
    assert len(a.magic) == len(a.mask) >= 20
    assert a.magic[:4] == b"\x7fELF"
    assert a.magic[4] == {32: 1, 64: 2}[a.bits]
    assert a.magic[5] == {"little": 1, "big": 2}[a.endian]
    assert int.from_bytes(a.magic[18:20], a.endian) == a.machine
    assert int.from_bytes(a.magic[16:18], a.endian) == 2  # ET_EXEC (mask lets ET_DYN through)


def test_no_two_arches_claim_the_same_binary() -> None:
    from multiarchd.model.registration import Registration
    from multiarchd.model.flags import Flags
    regs = {n: Registration(n, "/x", Flags(), a.magic, a.mask) for n, a in CATALOG.arches.items()}
    clashes = [(a, b) for a in regs for b in regs if a < b and regs[a].overlaps(regs[b])]
    assert clashes == []


def test_real_busybox_headers_match_exactly_one_entry(busybox: dict[str, Path]) -> None:
    for b in BUSYBOXES.values():  # every one dev/setup fetches, not only `busybox`'s
        header = b.path.read_bytes()[:64]
        assert [a.name for a in matching(header)] == [b.arch], b.dir


def test_native_binaries_match_the_host_family() -> None:
    header = Path("/bin/sh").resolve().read_bytes()[:64]
    matched = [a.name for a in matching(header)]
    assert matched == [host_arch(CATALOG)]


@pytest.mark.parametrize("machine,arch", [
    ("x86_64", "x86_64"), ("i686", "i386"), ("aarch64", "aarch64"), ("armv7l", "arm"),
    ("ppc64le", "ppc64le"), ("s390x", "s390x"), ("riscv64", "riscv64"),
])
def test_host_arch_from_uname(machine: str, arch: str) -> None:
    assert host_arch(CATALOG, machine) == arch


def test_emulators_and_their_hosts() -> None:
    emus = CATALOG.emulators
    assert set(emus) == {"qemu", "fex", "box64", "box86", "rosetta"}
    assert emus["qemu"].runs("s390x", "x86_64")
    assert emus["fex"].runs("x86_64", "aarch64") and not emus["fex"].runs("x86_64", "riscv64")
    assert emus["box64"].runs("x86_64", "riscv64") and not emus["box64"].runs("i386", "aarch64")
    assert emus["rosetta"].candidates("x86_64")[0] == "/media/rosetta/rosetta"
    assert emus["qemu"].candidates("arm")[0] == "/usr/bin/qemu-arm-static"
