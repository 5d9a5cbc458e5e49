"""Probe programs, as bytes (host/probing.py runs them): for each catalog architecture, a
minimal static ELF executable, made at run time, that does nothing but exit with status 42
(PROBE_STATUS) through the Linux exit system call of that architecture.

Each probe is an ELF header, one PT_LOAD program header and a few instructions, built from the
catalog's ELF facts (class, byte order, e_machine) so that the catalog's own binfmt_misc magic
matches it. The instructions are hand-encoded; the test suite runs every probe directly under
Debian's qemu-<arch>-static and through binfmt_misc.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass

from ..model.catalog import Arch

PROBE_STATUS = 42
BASE = 0x400000  # load address: a multiple of every architecture's page size


@dataclass(frozen=True)
class Code:
    words: tuple[int, ...]  # instructions, in order
    width: int = 4  # bytes per instruction (2: sh, m68k, cris; 3: xtensa)
    order: str | None = None  # instruction byte order, when not the data's (aarch64_be)
    flags: int = 0  # e_flags


@dataclass(frozen=True)
class Verdict:
    """What running one architecture's probe showed."""

    arch: str
    result: str  # ok, failed, untested
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.result == "ok"


def _w(*words: int) -> tuple[int, ...]:
    return words


# exit(42) per architecture: load the argument, load the syscall number, trap.
CODE: dict[str, Code] = {
    # mov edi, 42; mov eax, 60 (exit); syscall  -- as raw bytes, x86 has no fixed width
    "x86_64": Code(_w(0xBF, 0x2A, 0, 0, 0, 0xB8, 60, 0, 0, 0, 0x0F, 0x05), width=1),
    # mov ebx, 42; mov eax, 1 (exit); int 0x80
    "i386": Code(_w(0xBB, 0x2A, 0, 0, 0, 0xB8, 1, 0, 0, 0, 0xCD, 0x80), width=1),
    # movz x0, #42; movz x8, #93 (exit); svc #0
    "aarch64": Code(_w(0xD2800540, 0xD2800BA8, 0xD4000001)),
    "aarch64_be": Code(_w(0xD2800540, 0xD2800BA8, 0xD4000001), order="little"),
    # mov r0, #42; mov r7, #1 (exit); svc #0  (EABI version 5)
    "arm": Code(_w(0xE3A0002A, 0xE3A07001, 0xEF000000), flags=0x05000000),
    "armeb": Code(_w(0xE3A0002A, 0xE3A07001, 0xEF000000), flags=0x05000000),
    # lda $16, 42($31); lda $0, 1($31) (exit); call_pal callsys
    "alpha": Code(_w(0x221F002A, 0x201F0001, 0x00000083)),
    # moveq 0, r10; addq 42, r10; moveq 1, r9 (exit); break 13
    "cris": Code(_w(0xA240, 0xA22A, 0x9241, 0xE93D), width=2),
    # r0 = #42; r6 = #93 (exit); trap0(#1)  -- each its own packet
    "hexagon": Code(_w(0x7820C540, 0x7820CBA6, 0x5400C004), flags=0x67),  # v67
    # ldi 42, %r26; ldi 1, %r20 (exit); ble 0x100(%sr2, %r0); nop
    "hppa": Code(_w(0x341A0054, 0x34140002, 0xE4008200, 0x08000240), flags=0x210),
    # addi.w $a0, $zero, 42; addi.w $a7, $zero, 93 (exit); syscall 0
    "loongarch64": Code(_w(0x0280A804, 0x0281740B, 0x002B0000), flags=0x43),
    # moveq #1, %d0 (exit); moveq #42, %d1; trap #0
    "m68k": Code(_w(0x7001, 0x722A, 0x4E40), width=2),
    # addik r5, r0, 42; addik r12, r0, 1 (exit); brki r14, 0x8
    "microblaze": Code(_w(0x30A0002A, 0x31800001, 0xB9CC0008)),
    "microblazeel": Code(_w(0x30A0002A, 0x31800001, 0xB9CC0008)),
    # addiu $a0, $zero, 42; addiu $v0, $zero, <exit>; syscall
    "mips": Code(_w(0x2404002A, 0x24020FA1, 0x0000000C), flags=0x70001001),  # o32: 4001
    "mipsel": Code(_w(0x2404002A, 0x24020FA1, 0x0000000C), flags=0x70001001),
    "mips64": Code(_w(0x2404002A, 0x240213C2, 0x0000000C), flags=0x80000001),  # n64: 5058
    "mips64el": Code(_w(0x2404002A, 0x240213C2, 0x0000000C), flags=0x80000001),
    "mipsn32": Code(_w(0x2404002A, 0x240217AA, 0x0000000C), flags=0x80000021),  # n32: 6058
    "mipsn32el": Code(_w(0x2404002A, 0x240217AA, 0x0000000C), flags=0x80000021),
    # movi r4, 42; movi r2, 93 (exit); trap
    "nios2": Code(_w(0x01000A84, 0x00801744, 0x003B683A)),
    # l.addi r3, r0, 42; l.addi r11, r0, 93 (exit); l.sys 1; l.nop
    "or1k": Code(_w(0x9C60002A, 0x9D60005D, 0x20000001, 0x15000000)),
    # li r3, 42; li r0, 1 (exit); sc  (ppc64: ELFv2, so the entry is code, not a descriptor)
    "ppc": Code(_w(0x3860002A, 0x38000001, 0x44000002)),
    "ppc64": Code(_w(0x3860002A, 0x38000001, 0x44000002), flags=2),
    "ppc64le": Code(_w(0x3860002A, 0x38000001, 0x44000002), flags=2),
    # addi a0, zero, 42; addi a7, zero, 93 (exit); ecall
    "riscv32": Code(_w(0x02A00513, 0x05D00893, 0x00000073)),
    "riscv64": Code(_w(0x02A00513, 0x05D00893, 0x00000073)),
    # lghi %r2, 42; svc 1 (exit)
    "s390x": Code(_w(0xA7, 0x29, 0x00, 0x2A, 0x0A, 0x01), width=1),
    # mov #42, r4; mov #1, r3 (exit); trapa #0x17; nop
    "sh4": Code(_w(0xE42A, 0xE301, 0xC317, 0x0009), width=2),
    "sh4eb": Code(_w(0xE42A, 0xE301, 0xC317, 0x0009), width=2),
    # mov 42, %o0; mov 1, %g1 (exit); ta 0x10 (0x6d on sparc64)
    "sparc": Code(_w(0x9010202A, 0x82102001, 0x91D02010)),
    "sparc32plus": Code(_w(0x9010202A, 0x82102001, 0x91D02010), flags=0x100),
    "sparc64": Code(_w(0x9010202A, 0x82102001, 0x91D0206D)),
    # movi a6, 42; movi a2, 118 (exit); syscall  -- 24-bit, field order depends on byte order
    "xtensa": Code(_w(0x62, 0xA0, 0x2A, 0x22, 0xA0, 0x76, 0x00, 0x50, 0x00), width=1),
    "xtensaeb": Code(_w(0x26, 0x0A, 0x2A, 0x22, 0x0A, 0x76, 0x00, 0x05, 0x00), width=1),
}


@functools.lru_cache(maxsize=None)
def build(arch: Arch) -> bytes:
    """The probe ELF for `arch` (made once: the audit compares every entry with the native
    ones at every run)."""
    return program(arch, CODE[arch.name])


def program(arch: Arch, code: Code) -> bytes:
    """A static ELF executable for `arch` that runs `code` (with the catalog's magic)."""
    e = "<" if arch.endian == "little" else ">"
    i = "<" if (code.order or arch.endian) == "little" else ">"
    fmt = {1: "B", 2: "H", 4: "I"}[code.width]
    text = b"".join(struct.pack(i + fmt, w) for w in code.words)
    is64 = arch.bits == 64
    ehsize, phsize = (64, 56) if is64 else (52, 32)
    entry = BASE + ehsize + phsize
    size = ehsize + phsize + len(text)
    ident = b"\x7fELF" + bytes([2 if is64 else 1, 1 if arch.endian == "little" else 2, 1, 0]) \
        + bytes(8)
    if is64:
        header = ident + struct.pack(e + "HHIQQQIHHHHHH", 2, arch.machine, 1, entry, ehsize, 0,
                                     code.flags, ehsize, phsize, 1, 0, 0, 0)
        # PT_LOAD, R+X, offset 0, vaddr, paddr, filesz, memsz, align
        phdr = struct.pack(e + "IIQQQQQQ", 1, 5, 0, BASE, BASE, size, size, 0x10000)
    else:
        header = ident + struct.pack(e + "HHIIIIIHHHHHH", 2, arch.machine, 1, entry, ehsize, 0,
                                     code.flags, ehsize, phsize, 1, 0, 0, 0)
        phdr = struct.pack(e + "IIIIIIII", 1, 0, BASE, BASE, size, size, 5, 0x10000)
    return header + phdr + text
