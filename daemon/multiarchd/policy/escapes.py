"""Byte strings in the policy (custom magic and mask): `\\xHH` escapes and `\\\\`."""

from __future__ import annotations


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
