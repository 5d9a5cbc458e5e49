"""What an entry's magic would take of this host's own programs, judged from the bytes every
such program starts with rather than from a few files' (core/audit.py asks). Pure.

A header is a pattern: at each byte, the bits every program of the kind has (`base`) and the
bits that vary from one to the next (`free`). An entry's magic and mask could take one of
them if at each byte it looks at, base and magic agree on every bit the mask keeps and the
pattern does not leave free: whatever OSABI, type or class bits the mask ignores.

- An ELF program of each architecture this machine runs itself: `\\x7fELF`, its class, byte
  order and EV_CURRENT; any OSABI, ABI version and padding (the kernel reads none of them: SYSV
  and GNU/Linux programs both run); type ET_EXEC or ET_DYN; its e_machine; e_version 1.
- A script: `#!`, then anything (`#!/bin/sh`, `#! /usr/bin/env`, `#!` alone).

Past the pattern, programs differ (addresses, code, the interpreter's path): an entry that
looks at no bit the pattern fixes but at bytes past it is judged by the first bytes of real
programs instead (host/audit_facts.py); one that looks at no byte at all takes every file.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass

from ..model.catalog import Arch
from ..model.registration import Registration

ET_EXEC = 2  # ET_DYN is 3: one bit apart, left free


@dataclass(frozen=True)
class Header:
    """The first bytes every program of one kind shares, and those that vary."""

    what: str  # "x86_64 programs", for a finding's reason
    base: bytes
    free: bytes  # per byte, the bits that vary (0xff: any byte)

    def allows(self, at: int, value: int) -> bool:
        """Whether a program of this kind may have `value` at byte `at` (any, past the
        pattern)."""
        return at >= len(self.base) or (value ^ self.base[at]) & ~self.free[at] & 0xFF == 0


@functools.lru_cache(maxsize=None)
def elf(arch: Arch) -> Header:
    """Every ELF program of `arch` the kernel runs, as its first 24 bytes can be (made once:
    the audit asks at every run)."""
    order = "<" if arch.endian == "little" else ">"
    ident = b"\x7fELF" + bytes([2 if arch.bits == 64 else 1, 1 if order == "<" else 2, 1])
    base = ident + bytes(9) + struct.pack(order + "HHI", ET_EXEC, arch.machine, 1)
    kind = b"\x01\x00" if order == "<" else b"\x00\x01"  # ET_EXEC or ET_DYN
    free = bytes(7) + b"\xff" * 9 + kind + bytes(6)
    return Header(f"{arch.name} programs", base, free)


SCRIPT = Header("scripts (#!)", b"#!", bytes(2))


def could_take(reg: Registration, header: Header) -> bool:
    """Whether the M entry `reg` could take some program of `header`'s kind. An entry that
    looks at no bit the pattern fixes but past it is not judged by it (the module says why)."""
    if reg.extension is not None:
        return False
    mask = reg.mask if reg.mask is not None else b"\xff" * len(reg.magic)
    start, size = reg.offset, len(header.base)
    inside = max(0, min(len(reg.magic), size - start))  # the bytes the pattern covers
    if inside == 0:
        return not any(mask)
    # As whole integers, the bytes under the pattern at once (every entry, every run).
    window = slice(start, start + inside)
    keep = int.from_bytes(mask[:inside]) & ~int.from_bytes(header.free[window])
    if not keep:
        return not any(mask[inside:])
    return (int.from_bytes(reg.magic[:inside]) ^ int.from_bytes(header.base[window])) & keep == 0
