"""A QEMU user-mode executable that starts with `-cpu MODEL` of its own: QEMU's image, unchanged,
plus a few instructions the kernel runs first. Pure: bytes in, bytes out.

Why this and not a helper: the kernel runs an entry's interpreter with no arguments and no
environment of its own, and with `F` that file must work where neither its path nor QEMU's
exists (a chroot with no /proc, a container). A helper that copies QEMU into a memfd and
execveat()s it works there but costs a copy per exec (25 ms against 12 ms measured for a trivial
program); this file costs nothing per exec: it is QEMU, whose first act is to put two words in
front of its own arguments.

How: one of QEMU's PT_NOTE program headers (notes nothing needs at run time) becomes a PT_LOAD
of a new segment at the end of the file, holding the stub and its two strings; the entry point
moves to the stub. The stub moves argc and argv[0] two words down the initial stack (which
keeps its 16-byte alignment), writes pointers to "-cpu" and MODEL after argv[0], and jumps to
QEMU's own entry. Nothing else is touched: the register the kernel hands to _start (rdx on
x86-64, x0 on arm64) is left as it was. The kernel's binfmt_misc puts the program's path (and,
with `P`, its own argv[0]) after these, so QEMU sees `qemu -cpu MODEL PROGRAM ...`, just as if
an admin had typed it.
"""

from __future__ import annotations

import re
import struct

STUB_VERSION = 1  # part of what a written image is keyed by: a change makes them again
ALIGN = 0x10000  # the largest page size of the hosts below (arm64 with 64 KiB pages)
PT_LOAD, PT_NOTE = 1, 4
PF_X, PF_R = 1, 4
EM_X86_64, EM_AARCH64 = 62, 183
# A QEMU CPU model and its properties, as `-cpu` takes them: name[,prop=value]...
MODEL_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(,[A-Za-z0-9._-]+(=[A-Za-z0-9._-]+)?)*")
MAX_MODEL = 200


class CannotCarry(Exception):
    """This image cannot carry a model (the message says why); QEMU's own model is used."""


def _x86_64(model_at: int, cpu_at: int, entry_at: int) -> bytes:
    """Offsets are from the stub's first byte; rip-relative values from each instruction's end."""
    code = bytearray()
    code += bytes.fromhex("488b0424")          # mov rax, [rsp]        argc
    code += bytes.fromhex("488b4c2408")        # mov rcx, [rsp+8]      argv[0]
    code += bytes.fromhex("4883ec10")          # sub rsp, 16
    code += bytes.fromhex("4883c002")          # add rax, 2
    code += bytes.fromhex("48890424")          # mov [rsp], rax
    code += bytes.fromhex("48894c2408")        # mov [rsp+8], rcx
    code += bytes.fromhex("488d0d") + struct.pack("<i", cpu_at - (len(code) + 7))
    #                                            lea rcx, [rip+"-cpu"]
    code += bytes.fromhex("48894c2410")        # mov [rsp+16], rcx
    code += bytes.fromhex("488d0d") + struct.pack("<i", model_at - (len(code) + 7))
    #                                            lea rcx, [rip+MODEL]
    code += bytes.fromhex("48894c2418")        # mov [rsp+24], rcx
    code += b"\xe9" + struct.pack("<i", entry_at - (len(code) + 5))  # jmp QEMU's entry
    return bytes(code)


def _aarch64(model_at: int, cpu_at: int, entry_at: int) -> bytes:
    def adr(reg: int, pc: int, target: int) -> int:
        off = target - pc
        return 0x10000000 | (off & 3) << 29 | ((off >> 2) & 0x7FFFF) << 5 | reg

    words = [0xF94003E9,   # ldr x9, [sp]           argc
             0xF94007EA,   # ldr x10, [sp, #8]      argv[0]
             0xD10043FF,   # sub sp, sp, #16
             0x91000929,   # add x9, x9, #2
             0xF90003E9,   # str x9, [sp]
             0xF90007EA]   # str x10, [sp, #8]
    words += [adr(11, 4 * len(words), cpu_at),     # adr x11, "-cpu"
              0xF9000BEB]                           # str x11, [sp, #16]
    words += [adr(11, 4 * len(words), model_at),   # adr x11, MODEL
              0xF9000FEB]                           # str x11, [sp, #24]
    words += [0x14000000 | ((entry_at - 4 * len(words)) >> 2) & 0x3FFFFFF]  # b QEMU's entry
    return struct.pack(f"<{len(words)}I", *words)


STUBS = {EM_X86_64: _x86_64, EM_AARCH64: _aarch64}
STUB_SIZE = 64  # both fit; the strings follow at this offset


def with_cpu_model(image: bytes, model: str) -> bytes:
    """QEMU's `image` (a little-endian ELF64 executable for this host) that runs as if started
    with `-cpu model`."""
    if not MODEL_RULE.fullmatch(model) or len(model) > MAX_MODEL:
        raise CannotCarry(f"{model!r} is not a CPU model QEMU's -cpu takes")
    if image[:4] != b"\x7fELF" or image[4:6] != b"\x02\x01":
        raise CannotCarry("not a little-endian 64-bit ELF file")
    machine, = struct.unpack_from("<H", image, 18)
    stub = STUBS.get(machine)
    if stub is None:
        raise CannotCarry(f"no start-up code for ELF machine {machine} (hosts: x86-64, arm64)")
    entry, phoff = struct.unpack_from("<QQ", image, 24)
    phentsize, phnum = struct.unpack_from("<HH", image, 54)
    headers = [struct.unpack_from("<IIQQQQQQ", image, phoff + i * phentsize)
               for i in range(phnum)]
    loads = [i for i, h in enumerate(headers) if h[0] == PT_LOAD]
    notes = [i for i, h in enumerate(headers) if h[0] == PT_NOTE and i > max(loads, default=-1)]
    if not loads or not notes:
        raise CannotCarry("no note header after the loaded segments to carry the model in")
    end = max(headers[i][3] + headers[i][6] for i in loads)  # vaddr + memsz
    offset = -(-len(image) // ALIGN) * ALIGN
    vaddr = -(-end // ALIGN) * ALIGN
    strings = b"-cpu\0" + model.encode() + b"\0"
    code = stub(STUB_SIZE + 5, STUB_SIZE, entry - vaddr)
    assert len(code) <= STUB_SIZE
    segment = code.ljust(STUB_SIZE, b"\0") + strings
    out = bytearray(image.ljust(offset, b"\0") + segment)
    struct.pack_into("<IIQQQQQQ", out, phoff + notes[-1] * phentsize, PT_LOAD, PF_R | PF_X,
                     offset, vaddr, vaddr, len(segment), len(segment), ALIGN)
    struct.pack_into("<Q", out, 24, vaddr)
    return bytes(out)


def carried_model(image: bytes) -> str | None:
    """The model an image made by with_cpu_model carries (None for any other file): what
    `status` shows is read from the file the kernel runs, not from what was meant."""
    if image[:4] != b"\x7fELF" or len(image) < 64:
        return None
    entry, = struct.unpack_from("<Q", image, 24)
    phoff, = struct.unpack_from("<Q", image, 32)
    phentsize, phnum = struct.unpack_from("<HH", image, 54)
    for i in range(phnum):
        kind, _flags, offset, vaddr, _p, filesz, _m, _a = struct.unpack_from(
            "<IIQQQQQQ", image, phoff + i * phentsize)
        if kind == PT_LOAD and vaddr == entry and filesz > STUB_SIZE + 5:
            seg = image[offset + STUB_SIZE:offset + filesz]
            if seg.startswith(b"-cpu\0"):
                return seg[5:].split(b"\0", 1)[0].decode(errors="replace")
    return None
