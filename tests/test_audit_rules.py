"""The audit's rules (core/audit.py), pure: what each kind of entry is judged, from facts given
here (tests/test_audit.py plants them in a real table)."""

from __future__ import annotations

from multiarchd.catalog import load_catalog
import glob
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from multiarchd.core.audit import AuditFacts, Severity, audit
from multiarchd.core.headers import SCRIPT, Header, could_take, elf
from multiarchd.core.probes import build
from multiarchd.model.flags import Flags
from multiarchd.model.host import FileId, FileState
from multiarchd.model.registration import Registration
from multiarchd.model.observed import Entry, Observed

from tests.support.fuzz import examples

CATALOG = load_catalog()
X86 = CATALOG.arches["x86_64"]
FACTS = AuditFacts(native=(("any static x86_64 program", build(X86)),),
                   emulators=frozenset({"/usr/bin/qemu-arm-static", "qemu-arm-static"}),
                   headers=(elf(X86), elf(CATALOG.arches["i386"]), SCRIPT))


def entry(name: str, interpreter: str, flags: str = "", arch: str = "arm",
          enabled: bool = True, order: int = 1) -> Entry:
    a = CATALOG.arches[arch]
    return Entry(Registration(name, interpreter, Flags.parse(flags), a.magic, a.mask), enabled,
                 order)


def kinds(*entries: Entry, facts: AuditFacts = FACTS,
          opened: dict[str, FileId] | None = None) -> list[tuple[str, str, str]]:
    return [(f.entry, f.kind, f.severity.value)
            for f in audit(Observed(entries), facts, opened)]


def test_a_known_emulator_with_its_package_flags_is_fine() -> None:
    assert kinds(entry("qemu-arm", "/usr/bin/qemu-arm-static", "OCF")) == []
    assert kinds(entry("multiarch-arm", "/var/lib/multiarchd/cpu/arm", "PF")) == []


def test_native_magic_is_high_and_medium_while_disabled() -> None:
    assert kinds(entry("x", "/usr/bin/qemu-arm-static", arch="x86_64")) == \
        [("x", "native-magic", "high")]
    assert kinds(entry("x", "/usr/bin/qemu-arm-static", arch="x86_64", enabled=False)) == \
        [("x", "native-magic", "medium")]


def test_o_or_c_on_an_unknown_interpreter() -> None:
    assert kinds(entry("o", "/opt/thing", "O")) == [("o", "unknown-interpreter-flags", "medium")]
    assert kinds(entry("c", "/opt/thing", "OC")) == [("c", "unknown-interpreter-flags", "high")]
    assert kinds(entry("p", "/opt/thing", "PF")) == []  # nothing given that it could misuse


def test_an_interpreter_replaced_under_an_f_entry_of_ours() -> None:
    e = entry("multiarch-arm", "/usr/bin/qemu-arm-static", "PF")
    facts = AuditFacts(FACTS.native, {}, {"/usr/bin/qemu-arm-static": "2:new"}, FACTS.emulators)
    assert kinds(e, facts=facts, opened={"multiarch-arm": "1:old"}) == \
        [("multiarch-arm", "interpreter-replaced", "medium")]
    assert kinds(e, facts=facts, opened={"multiarch-arm": "2:new"}) == []


def test_untrusted_interpreter_and_gone_interpreter() -> None:
    facts = AuditFacts(FACTS.native, {"/home/u/q": (FileState.UNTRUSTED, "owned by uid 1000"),
                                      "/gone": (FileState.MISSING, "")}, {}, FACTS.emulators)
    assert kinds(entry("u", "/home/u/q", "PF"), facts=facts) == \
        [("u", "untrusted-interpreter", "medium")]
    assert kinds(entry("g", "/gone", "PF"), facts=facts) == [("g", "interpreter-gone", "medium")]
    [f] = audit(Observed((entry("c", "/home/u/q", "OCF"),)), facts)
    assert (f.kind, f.severity) == ("untrusted-credentials", Severity.HIGH)
    assert "owned by uid 1000" in f.reason and f.fix


def magic(name: str, data: bytes, mask: bytes | None = None, offset: int = 0,
          enabled: bool = True, interpreter: str = "/opt/i") -> Entry:
    return Entry(Registration(name, interpreter, Flags(), data, mask, offset), enabled, 1)


# A static x86-64 program as GNU/Linux marks it (OSABI 3, as /sbin/ldconfig), masked loosely.
GNU_STATIC = (b"\x7fELF\x02\x01\x01\x03" + bytes(8) + b"\x03\x00\x3e\x00",
              b"\xff" * 5 + b"\xfe\xfe\xff" + b"\x00" * 8 + b"\xfe\xff\xff\xff")


def test_every_script_start_takes_this_hosts_scripts() -> None:
    for start in (b"#!/bin/sh", b"#!", b"#! /usr/bin/env", b"#!/usr/bin/python3", b"#"):
        assert kinds(magic("s", start)) == [("s", "native-magic", "high")], start
    assert kinds(magic("s", b"#!/bin/sh", enabled=False)) == [("s", "native-magic", "medium")]
    # a mask that ignores the bang, or a magic that only starts with '#' by the mask's leave
    assert kinds(magic("s", b"#?", b"\xff\x00")) == [("s", "native-magic", "high")]
    assert kinds(magic("s", b"\x23\x20", b"\xff\xde")) == [("s", "native-magic", "high")]
    [f] = audit(Observed((magic("s", b"#!/bin/sh"),)), FACTS)
    assert "matches this host's own programs (scripts (#!))" in f.reason


def test_every_native_elf_whatever_the_bytes_its_mask_ignores() -> None:
    assert kinds(magic("gnu", *GNU_STATIC)) == [("gnu", "native-magic", "high")]
    for osabi in range(256):  # any OSABI, ABI version, padding: the kernel reads none
        data = b"\x7fELF\x02\x01\x01" + bytes([osabi, osabi]) + bytes([osabi] * 7) + \
            b"\x02\x00\x3e\x00"
        assert kinds(magic("o", data)) == [("o", "native-magic", "high")], osabi
    x86 = X86.magic
    assert kinds(magic("cls", x86[:4] + b"\x01" + x86[5:], X86.mask[:4] + b"\x00" + X86.mask[5:])) \
        == [("cls", "native-magic", "high")]  # a class bit the mask ignores
    assert kinds(magic("i386", b"\x7fELF\x01\x01\x01\x03" + bytes(8) + b"\x02\x00\x03\x00")) \
        == [("i386", "native-magic", "high")]
    # only the OSABI byte looked at: every GNU/Linux program
    assert kinds(magic("b7", b"\x03", offset=7)) == [("b7", "native-magic", "high")]
    assert kinds(magic("all", b"\x00", b"\x00")) == [("all", "native-magic", "high")]


def test_foreign_and_unrelated_magics_are_not_native() -> None:
    for arch in ("arm", "aarch64", "s390x", "riscv64", "ppc64le", "mips64el"):
        a = CATALOG.arches[arch]
        assert kinds(magic(arch, a.magic, a.mask, interpreter="/usr/bin/qemu-arm-static")) == []
    assert kinds(magic("x32", X86.magic[:4] + b"\x01" + X86.magic[5:], X86.mask)) == []
    assert kinds(magic("dyn-be", b"\x7fELF\x02\x02\x01\x00" + bytes(8) + b"\x00\x03\x00\x3e")) \
        == []
    assert kinds(magic("mz", b"MZ")) == [] and kinds(magic("iso", b"CD001", offset=0x41)) == []
    assert kinds(magic("zip", b"PK\x03\x04")) == []


def test_an_entry_named_like_ours_is_known_by_what_it_runs() -> None:
    foreign = Entry(Registration("multiarch-x", "/opt/unknown", Flags.parse("OC"), b"XY"),
                    True, 1)
    assert kinds(foreign) == [("multiarch-x", "unknown-interpreter-flags", "high")]
    ours = AuditFacts(FACTS.native, emulators=FACTS.emulators, headers=FACTS.headers,
                      ours={"multiarch-x": "/opt/unknown"})
    assert kinds(foreign, facts=ours) == []
    made = AuditFacts(FACTS.native, emulators=FACTS.emulators, made="/var/lib/multiarchd/cpu")
    assert kinds(Entry(Registration("multiarch-x", "/var/lib/multiarchd/cpu/x",
                                    Flags.parse("OC"), b"XY"), True, 1), facts=made) == []
    assert kinds(Entry(Registration("other", "/var/lib/multiarchd/cpu/x",
                                    Flags.parse("OC"), b"XY"), True, 1), facts=made) == \
        [("other", "unknown-interpreter-flags", "high")]


# -- the rule "could take one of this host's programs", against one byte at a time ------------

HEADERS = (elf(X86), elf(CATALOG.arches["i386"]), elf(CATALOG.arches["s390x"]), SCRIPT)


def witness(reg: Registration, header: Header) -> bytes | None:
    """A file `header` allows that the kernel's byte rule (Registration.matches) hands to
    `reg`, found one byte at a time over all 256 values; None if there is none."""
    mask = reg.mask if reg.mask is not None else b"\xff" * len(reg.magic)
    out = bytearray(header.base.ljust(reg.offset + len(reg.magic), b"\0"))
    for i, (m, k) in enumerate(zip(reg.magic, mask)):
        at = reg.offset + i
        value = next((v for v in range(256) if header.allows(at, v) and (v ^ m) & k == 0), None)
        if value is None:
            return None
        out[at] = value
    return bytes(out)


def looks(reg: Registration, header: Header) -> tuple[bool, bool]:
    """(whether reg looks at a bit the header fixes, whether it looks past the header)."""
    mask = reg.mask if reg.mask is not None else b"\xff" * len(reg.magic)
    fixed = any(k & ~header.free[reg.offset + i] & 0xFF for i, k in enumerate(mask)
                if reg.offset + i < len(header.base))
    past = any(k for i, k in enumerate(mask) if reg.offset + i >= len(header.base))
    return fixed, past


@st.composite
def registrations(draw: st.DrawFn) -> Registration:
    """Magics near the headers' (each byte theirs, or a bit off, or anything), any mask."""
    header = draw(st.sampled_from(HEADERS))
    offset = draw(st.sampled_from([0, 0, 0, 1, 4, 7, 16, 18, 20, 23, 24, 30]))
    size = draw(st.integers(1, 32))
    data = bytearray()
    for at in range(offset, offset + size):
        near = header.base[at] if at < len(header.base) else 0
        data.append(draw(st.sampled_from([near, near ^ 1, near ^ 0x80, draw(st.integers(0, 255))])))
    mask = draw(st.one_of(st.none(), st.lists(
        st.sampled_from([0xFF, 0xFF, 0xFE, 0x00, 0xDF, draw(st.integers(0, 255))]),
        min_size=size, max_size=size).map(bytes)))
    return Registration("r", "/opt/i", Flags(), bytes(data), mask, offset)


@settings(max_examples=examples(500))  # (each tries 256 values a byte, for four headers)
@given(registrations())
def test_could_take_is_the_byte_rule(reg: Registration) -> None:
    for header in HEADERS:
        found = witness(reg, header)
        if found is not None:
            assert reg.matches("f", found)  # the kernel's rule hands that file to the entry
        fixed, past = looks(reg, header)
        # Judged by the header unless it looks only past it (real programs differ there).
        expected = found is not None and (fixed or not past)
        assert could_take(reg, header) == expected, (reg, header.what)


def test_every_program_of_this_host_has_a_header_the_rule_allows() -> None:
    native = elf(X86)
    seen = 0
    for path in sorted(glob.glob("/usr/bin/*") + glob.glob("/usr/sbin/*"))[:2000]:
        try:
            with open(path, "rb") as f:
                head = f.read(24)
        except OSError:
            continue
        if os.access(path, os.X_OK) and head[:4] == b"\x7fELF" and head[18:20] == b"\x3e\x00":
            assert all(native.allows(i, b) for i, b in enumerate(head)), path
            seen += 1
        elif head[:2] == b"#!":
            assert all(SCRIPT.allows(i, b) for i, b in enumerate(head)), path
    assert seen > 100

