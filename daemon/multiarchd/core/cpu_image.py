"""A QEMU user-mode executable that ends its own options and, started with a setuid program's
credentials, ignores the caller's QEMU_* variables: QEMU's image, unchanged, plus a few
instructions the kernel runs first (and `-cpu MODEL` where the policy asks for one). Pure:
bytes in, bytes out.

Why: the kernel runs an entry's interpreter with no arguments and no environment of its own,
and with `C` it runs QEMU with the credentials of the setuid program it was asked to run. QEMU
obeys whoever started it: a QEMU_* variable (QEMU_LOG_FILENAME, QEMU_LD_PREFIX, ...) or a
program's name that starts with `-` (binfmt_misc hands QEMU the name as given to execve, then
argv[0] with P) would be read with root's rights. So the image puts `--` after its own words,
and drops every QEMU_* string from the environment when the auxiliary vector says AT_SECURE
(the kernel sets it when the credentials changed), before QEMU reads either.

Why this and not a helper: with `F` the file must work where neither its path nor QEMU's exists
(a chroot with no /proc, a container). A helper that copies QEMU into a memfd and execveat()s it
works there but costs a copy per exec (25 ms against 12 ms measured for a trivial program); this
file costs a walk of the initial stack: it is QEMU, whose first act is to rewrite its own
arguments.

How: one of QEMU's PT_NOTE program headers (notes nothing needs at run time) becomes a PT_LOAD
of a new segment at the end of the file, holding the stub, a mark and its strings; the entry
point moves to the stub (what it does: core/startup.py). The kernel's binfmt_misc
puts the program's path (and, with `P`, its own argv[0]) after these, so QEMU sees
`qemu [-cpu MODEL] -- PROGRAM ...`, just as if an admin had typed it.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable

from .startup import EM_AARCH64, EM_X86_64, GUARD_MARK, STUB_SIZE, STUBS

STUB_VERSION = 2  # part of what a written image is keyed by: a change makes them again
ALIGN = 0x10000  # the largest page size of the hosts STUBS serves (arm64 with 64 KiB pages)
PT_LOAD, PT_NOTE = 1, 4
PF_X, PF_R = 1, 4
HOSTS = frozenset({"x86_64", "aarch64"})  # those STUBS has code for, by the catalog's names
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
    """This image cannot be made (the message says why): QEMU's own model is used, and C is
    refused (core/desired.without_guard)."""


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


MAX_WORDS = 4096  # what is read of a stub's segment for its mark and words (a model: 200)


def _headers(image: bytes, size: int | None = None) -> tuple[int, int, list[tuple[int, ...]]]:
    """(e_machine, e_entry, program headers) of a whole little-endian ELF64 executable of a
    machine with start-up code, or CannotCarry (Broken) and why not: each field is checked
    before anything relies on it, so whatever bytes are at an interpreter's path are refused,
    never met with another exception. `size`: the file's, where `image` holds only its first
    bytes (its headers must be among them; its segments are checked against the file)."""
    total = len(image) if size is None else size
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
        if what == PT_LOAD and (offset + filesz > total or vaddr + memsz >= 1 << 63):
            raise Broken(f"cut short: a segment ends at byte {offset + filesz}, past its end "
                         f"({total} bytes)" if offset + filesz > total else
                         f"a segment ends at address {vaddr + memsz:#x}, past user space")
    if not any(h[0] == PT_LOAD and h[3] <= entry < h[3] + h[6] for h in headers):
        raise Broken(f"its entry point {entry:#x} is in no segment it loads")
    return machine, entry, headers


def with_cpu_model(image: bytes, model: str | None, trailer: bytes = b"") -> bytes:
    """QEMU's `image` (a little-endian ELF64 executable for this host) that runs as if started
    with `-cpu model --` (`--` alone for None), with no QEMU_* variable under AT_SECURE, then
    `trailer` (the caller's; nothing reads it). CannotCarry, or Broken for a file that is no
    whole executable, and why: never another exception, whatever the bytes."""
    if model is not None and not_a_model(model):
        raise CannotCarry(f"{model!r} is not a CPU model QEMU's -cpu takes")
    if len(image) > MAX_IMAGE:
        raise oversized(len(image))
    machine, entry, headers = _headers(image)
    loads = [i for i, h in enumerate(headers) if h[0] == PT_LOAD]
    notes = [i for i, h in enumerate(headers) if h[0] == PT_NOTE and i > max(loads)]
    if not notes:
        raise CannotCarry("no note header after the loaded segments to carry the start-up "
                          "code in")
    end = max(headers[i][3] + headers[i][6] for i in loads)  # vaddr + memsz
    offset = -(-len(image) // ALIGN) * ALIGN
    vaddr = -(-end // ALIGN) * ALIGN
    if abs(entry - vaddr) + STUB_SIZE >= REACH[machine] or entry % 4 and machine == EM_AARCH64:
        raise CannotCarry(f"its entry point {entry:#x} is out of the start-up code's reach "
                          f"from {vaddr:#x}")
    # The mark, then the words in the order QEMU reads them: [-cpu MODEL] --
    strings = GUARD_MARK
    words = []
    for word in (["-cpu", model] if model is not None else []) + ["--"]:
        words.append(STUB_SIZE + len(strings))
        strings += word.encode() + b"\0"
    code = STUBS[machine](words, entry - vaddr)
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


def _stub_words(image: bytes, size: int | None = None,
                read: Callable[[int, int], bytes] | None = None) -> list[bytes] | None:
    """The words the stub of an image made by with_cpu_model puts first (None for any other
    file, whatever its bytes). `size`, `read`: for a file of which `image` holds the first
    bytes only (its headers), its size and a way to read n bytes at an offset, for the stub's
    few bytes (not a map of the file: one cut short while mapped would kill the reader)."""
    try:
        _machine, entry, headers = _headers(image, size)
    except CannotCarry:
        return None
    for kind, _flags, offset, vaddr, _p, filesz, _m, _a in headers:
        if kind == PT_LOAD and vaddr == entry and filesz > STUB_SIZE + len(GUARD_MARK):
            at, length = offset + STUB_SIZE, min(filesz - STUB_SIZE, MAX_WORDS)
            seg = image[at:at + length] if read is None else read(at, length)
            if seg.startswith(GUARD_MARK):
                return seg[len(GUARD_MARK):].split(b"\0")[:3]
    return None


def is_guarded(image: bytes, size: int | None = None,
               read: Callable[[int, int], bytes] | None = None) -> bool:
    """Whether `image` is one with_cpu_model made, with this start-up code: a QEMU the audit
    trusts with C (`size`, `read`: as for _stub_words)."""
    return _stub_words(image, size, read) is not None


def carried_model(image: bytes) -> str | None:
    """The model an image made by with_cpu_model carries (None for any other file, or for
    QEMU's own): what `status` shows is read from the file the kernel runs, not from what was
    meant."""
    words = _stub_words(image)
    return words[1].decode(errors="replace") if words and words[0] == b"-cpu" else None
