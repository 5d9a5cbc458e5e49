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
HELP = frozenset({"help", "?"})  # words by which QEMU lists what it has and runs nothing


def not_a_model(model: str) -> str | None:
    """Why `model` is no CPU model for QEMU's -cpu (None: it is one, as far as its spelling
    goes; whether this QEMU has it, only a run says)."""
    if not MODEL_RULE.fullmatch(model) or len(model) > MAX_MODEL:
        return "is not a QEMU CPU model"
    if model.split(",", 1)[0] in HELP or any(p in HELP for p in model.split(",")[1:]):
        return "asks QEMU for a list instead of running programs"
    return None


class CannotCarry(Exception):
    """This image cannot carry a model (the message says why); QEMU's own model is used."""


class Broken(CannotCarry):
    """The file is no whole executable for this host (cut short, headers past its end): it
    would not run with or without a model."""


MAX_IMAGE = 32 << 20  # 2.5 times Debian's qemu-aarch64-static: a larger file is not copied
# (the image is held three times while made, under the unit's MemoryHigh=160M)
EHDR, PHDR = 64, struct.Struct("<IIQQQQQQ")  # ELF64 header size; one program header
ET_EXEC, ET_DYN = 2, 3
# How far the stub's jump reaches: x86-64's jmp rel32, arm64's b (26 bits of words).
REACH = {EM_X86_64: 1 << 31, EM_AARCH64: 1 << 27}


def oversized(size: int) -> CannotCarry:
    return CannotCarry(f"it is {size >> 20} MiB, more than the {MAX_IMAGE >> 20} MiB a QEMU "
                       "carrying a model may be")


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


def _headers(image: bytes) -> tuple[int, int, list[tuple[int, ...]]]:
    """(e_machine, e_entry, program headers) of a whole little-endian ELF64 executable of a
    machine with start-up code, or CannotCarry (Broken) and why not: each field is checked
    before anything relies on it, so whatever bytes are at an interpreter's path are refused,
    never met with another exception."""
    if image[:4] != b"\x7fELF":
        raise CannotCarry("not an ELF file")
    if len(image) < EHDR:
        raise Broken(f"cut short: {len(image)} bytes, less than an ELF header")
    if image[4:6] != b"\x02\x01":
        raise CannotCarry("not a little-endian 64-bit ELF file")
    kind, machine, _, entry, phoff = struct.unpack_from("<HHIQQ", image, 16)
    phentsize, phnum = struct.unpack_from("<HH", image, 54)
    if kind not in (ET_EXEC, ET_DYN):
        raise Broken(f"not an executable (ELF type {kind})")
    if machine not in STUBS:
        raise CannotCarry(f"no start-up code for ELF machine {machine} (hosts: x86-64, arm64)")
    if phentsize != PHDR.size or phnum == 0:
        raise Broken(f"its program headers ({phnum} of {phentsize} bytes) are not an "
                     "executable's")
    if phoff + phnum * PHDR.size > len(image):
        raise Broken(f"cut short: its program headers end at byte {phoff + phnum * PHDR.size}, "
                     f"past its end ({len(image)} bytes)")
    headers = [PHDR.unpack_from(image, phoff + i * PHDR.size) for i in range(phnum)]
    for what, _flags, offset, vaddr, _p, filesz, memsz, _a in headers:
        if what == PT_LOAD and (offset + filesz > len(image) or vaddr + memsz >= 1 << 63):
            raise Broken(f"cut short: a segment ends at byte {offset + filesz}, past its end "
                         f"({len(image)} bytes)" if offset + filesz > len(image) else
                         f"a segment ends at address {vaddr + memsz:#x}, past user space")
    if not any(h[0] == PT_LOAD and h[3] <= entry < h[3] + h[6] for h in headers):
        raise Broken(f"its entry point {entry:#x} is in no segment it loads")
    return machine, entry, headers


def with_cpu_model(image: bytes, model: str, trailer: bytes = b"") -> bytes:
    """QEMU's `image` (a little-endian ELF64 executable for this host) that runs as if started
    with `-cpu model`, then `trailer` (the caller's; nothing reads it). CannotCarry, or Broken
    for a file that is no whole executable, and why: never another exception, whatever the
    bytes."""
    if not_a_model(model):
        raise CannotCarry(f"{model!r} is not a CPU model QEMU's -cpu takes")
    if len(image) > MAX_IMAGE:
        raise oversized(len(image))
    machine, entry, headers = _headers(image)
    loads = [i for i, h in enumerate(headers) if h[0] == PT_LOAD]
    notes = [i for i, h in enumerate(headers) if h[0] == PT_NOTE and i > max(loads)]
    if not notes:
        raise CannotCarry("no note header after the loaded segments to carry the model in")
    end = max(headers[i][3] + headers[i][6] for i in loads)  # vaddr + memsz
    offset = -(-len(image) // ALIGN) * ALIGN
    vaddr = -(-end // ALIGN) * ALIGN
    if abs(entry - vaddr) + STUB_SIZE >= REACH[machine] or entry % 4 and machine == EM_AARCH64:
        raise CannotCarry(f"its entry point {entry:#x} is out of the start-up code's reach "
                          f"from {vaddr:#x}")
    strings = b"-cpu\0" + model.encode() + b"\0"
    code = STUBS[machine](STUB_SIZE + 5, STUB_SIZE, entry - vaddr)
    assert len(code) <= STUB_SIZE
    segment = code.ljust(STUB_SIZE, b"\0") + strings
    # One buffer of the final size (the image is up to MAX_IMAGE: no copy more than needed).
    out = bytearray(offset + len(segment) + len(trailer))
    out[:len(image)] = image
    out[offset:] = segment + trailer
    phoff, = struct.unpack_from("<Q", image, 32)
    PHDR.pack_into(out, phoff + notes[-1] * PHDR.size, PT_LOAD, PF_R | PF_X, offset, vaddr,
                   vaddr, len(segment), len(segment), ALIGN)
    struct.pack_into("<Q", out, 24, vaddr)
    return bytes(out)


def carried_model(image: bytes) -> str | None:
    """The model an image made by with_cpu_model carries (None for any other file, whatever
    its bytes): what `status` shows is read from the file the kernel runs, not from what was
    meant."""
    try:
        _machine, entry, headers = _headers(image)
    except CannotCarry:
        return None
    for kind, _flags, offset, vaddr, _p, filesz, _m, _a in headers:
        if kind == PT_LOAD and vaddr == entry and filesz > STUB_SIZE + 5:
            seg = image[offset + STUB_SIZE:offset + filesz]
            if seg.startswith(b"-cpu\0"):
                return seg[5:].split(b"\0", 1)[0].decode(errors="replace")
    return None
