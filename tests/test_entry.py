"""Flags, register lines, overlap, and parsing the kernel's entry files (pure)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multiarchd.kernel.entryfile import parse_entry
from multiarchd.model.flags import Flags
from multiarchd.model.registration import Registration, printable

from tests.support.fuzz import examples


@pytest.mark.parametrize("given,normal", [
    ("", ""), ("FP", "PF"), ("C", "OC"), ("FCOP", "POCF"), ("PP", "P"),
])
def test_flags_are_normalised_to_kernel_order(given: str, normal: str) -> None:
    assert str(Flags.parse(given)) == normal


def test_unknown_flag_is_refused() -> None:
    with pytest.raises(ValueError, match="'X'"):
        Flags.parse("FX")


def test_register_line_escapes_what_the_kernel_would_misread() -> None:
    reg = Registration("multiarch-x", "/usr/bin/run", Flags.parse("F"),
                       magic=b"\x7fAB:\\ \n", mask=b"\xff" * 7, offset=3)
    line = reg.register_line()
    assert line == (":multiarch-x:M:3:\\x7fAB\\x3a\\x5c\\x20\\x0a:"
                    "\\xff\\xff\\xff\\xff\\xff\\xff\\xff:/usr/bin/run:F")


def test_register_line_for_an_extension() -> None:
    reg = Registration("multiarch-dos", "/usr/bin/wine", Flags(), extension="exe")
    assert reg.register_line() == ":multiarch-dos:E::exe::/usr/bin/wine:"


def _m(magic: bytes, mask: bytes | None = None, offset: int = 0) -> Registration:
    return Registration("n", "/i", Flags(), magic, mask, offset)


@pytest.mark.parametrize("a,b,overlap", [
    (_m(b"AB"), _m(b"AB"), True),
    (_m(b"AB"), _m(b"AC"), False),
    (_m(b"AB"), _m(b"AC", b"\xff\x00"), True),  # the mask ignores the differing byte
    (_m(b"AB"), _m(b"ABCD"), True),  # a prefix
    (_m(b"AB"), _m(b"B", offset=1), True),
    (_m(b"AB"), _m(b"C", offset=1), False),
    (_m(b"AB"), _m(b"Z", offset=5), True),  # disjoint ranges: one file can match both
    (_m(b"\x01"), _m(b"\x00", b"\xfe"), True),
    (Registration("n", "/i", Flags(), extension="exe"),
     Registration("m", "/i", Flags(), extension="exe"), True),
    (Registration("n", "/i", Flags(), extension="exe"), _m(b"MZ"), False),
])
def test_overlap(a: Registration, b: Registration, overlap: bool) -> None:
    assert a.overlaps(b) is overlap
    assert b.overlaps(a) is overlap


def test_parse_magic_entry() -> None:
    text = (b"enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: PF\noffset 0\n"
            b"magic 7f454c460201010000000000000000000200b700\n"
            b"mask ffffffffffffff00fffffffffffffffffeffffff\n")
    e = parse_entry("qemu-aarch64", text, order=7)
    assert e.enabled and e.order == 7
    assert e.registration == Registration(
        "qemu-aarch64", "/usr/bin/qemu-aarch64-static", Flags.parse("FP"),
        bytes.fromhex("7f454c460201010000000000000000000200b700"),
        bytes.fromhex("ffffffffffffff00fffffffffffffffffeffffff"), 0)


def test_parse_extension_entry_without_flags() -> None:
    e = parse_entry("dos", b"disabled\ninterpreter /usr/bin/wine\nflags: \nextension .exe\n")
    assert not e.enabled
    assert e.registration == Registration("dos", "/usr/bin/wine", Flags(), extension="exe")


def test_fields_are_read_exactly_as_bytes() -> None:
    e = parse_entry("x\udcff", b"enabled\ninterpreter /opt/q \xff\x0b \nflags: \nextension .e\x85\n")
    assert e.registration.interpreter == "/opt/q \udcff\x0b "  # nothing stripped
    assert e.registration.extension == "e\udc85"
    assert os.fsencode(e.registration.interpreter) == b"/opt/q \xff\x0b "


@settings(max_examples=examples(2000))
@given(st.text(), st.binary(max_size=600))
def test_any_bytes_in_any_entry_are_read_never_raise(name: str, data: bytes) -> None:
    e = parse_entry(name, data)
    assert set(str(e.registration.flags)) <= set("POCF")  # only what the kernel knows
    # whatever was read can be shown (escaped) and sent: its register line and its match
    for text in (e.registration.register_line(), e.registration.describe_match()):
        printable(text).encode("utf-8")


def test_unknown_flags_of_a_newer_kernel_are_ignored() -> None:
    e = parse_entry("x", b"enabled\ninterpreter /i\nflags: PFZ\nextension .x\n")
    assert e.registration.flags == Flags.parse("PF")


@settings(max_examples=examples(1000))
@given(st.binary(min_size=1, max_size=16), st.data(), st.integers(0, 8),
       st.binary(max_size=40))
def test_a_match_is_the_kernel_s_byte_by_byte_rule(magic: bytes, data: st.DataObject,
                                                   offset: int, header: bytes) -> None:
    """binfmt_misc's rule: each byte of the header at the offset, masked, equals the masked
    magic byte (matches() computes it on whole integers)."""
    mask = data.draw(st.none() | st.binary(min_size=len(magic), max_size=len(magic)))
    if data.draw(st.booleans()):  # often a header that does match, but for the masked bits
        header = header[:offset].ljust(offset, b"\0") + bytes(
            m | (~k & 0xff & h) for m, k, h in zip(magic, mask or b"\xff" * len(magic),
                                                   data.draw(st.binary(min_size=len(magic),
                                                                       max_size=len(magic)))))
    reg = Registration("x", "/q", Flags.parse(""), magic, mask, offset)
    window = header[offset:offset + len(magic)]
    expected = len(window) == len(magic) and all(
        h & k == m & k for h, m, k in zip(window, magic, mask or b"\xff" * len(magic)))
    assert reg.matches("x", header) == expected
