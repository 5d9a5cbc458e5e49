"""Byte strings as text, in the one escape binfmt_misc and the policy share: `\\xHH` (and `\\\\` in
the policy). The kernel's register line (model/registration.py) and a custom entry's magic and
mask in the policy (policy/fields.py) both go through here."""

from __future__ import annotations

# Bytes that may stand unescaped in a register line's magic and mask: printable ASCII except
# the delimiter and the backslash. Everything else is written as \xHH, which the kernel
# unescapes.
_LITERAL = frozenset(range(0x21, 0x7F)) - {ord(":"), ord("\\")}
_TEXT = tuple(chr(b) if b in _LITERAL else f"\\x{b:02x}" for b in range(256))  # each byte's


def encode_bytes(data: bytes) -> str:
    """bytes -> text the kernel's register line takes (and decode_bytes reads back)."""
    return "".join(map(_TEXT.__getitem__, data))


def decode_bytes(text: str) -> bytes:
    """`\\x7fMYF` -> bytes: `\\xHH` escapes and `\\\\`; every other character is one byte."""
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            if text[i + 1:i + 2] == "\\":
                out.append(0x5C)
                i += 2
                continue
            hexpart = text[i + 2:i + 4]
            if text[i + 1:i + 2] != "x" or len(hexpart) != 2 or \
                    any(h not in "0123456789abcdefABCDEF" for h in hexpart):
                raise ValueError(f"bad escape {text[i:i + 4]!r} at character {i + 1}: only "
                                 "\\xHH (two hex digits) and \\\\ are allowed")
            out.append(int(hexpart, 16))
            i += 4
            continue
        if ord(c) > 0xFF:
            raise ValueError(f"character {c!r} is not a byte; write it as \\xHH escapes")
        out.append(ord(c))
        i += 1
    return bytes(out)
