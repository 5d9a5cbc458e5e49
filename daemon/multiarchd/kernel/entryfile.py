"""Parsing one binfmt_misc entry file, as bytes (Linux 6.x): `enabled|disabled`,
`interpreter PATH`, `flags: XYZ`, then `offset N`, `magic HEX` and `mask HEX` (M type) or
`extension .EXT` (E type).

Any entry can be read, whoever registered it and whatever bytes its name and interpreter hold:
fields are taken exactly (no stripping, so what multiarchd registered reads back equal), bytes
that are not UTF-8 are kept as os.fsdecode keeps them, and nothing here raises.
"""

from __future__ import annotations

from ..model.flags import Flags
from ..model.registration import Registration
from ..model.observed import Entry


def _fsdecode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _hex(data: bytes) -> bytes:
    try:
        return bytes.fromhex(data.decode("ascii"))
    except ValueError:
        return b""


def parse_entry(name: str, data: bytes, order: int = 0) -> Entry:
    """Parse the bytes of one entry file."""
    lines = data.split(b"\n")
    fields: dict[bytes, bytes] = {}
    for line in lines[1:]:
        key, sep, value = line.partition(b" ")
        if sep and key not in fields:
            fields[key.rstrip(b":")] = value
    extension = fields.get(b"extension")
    mask = fields.get(b"mask")
    offset = fields.get(b"offset", b"0")
    reg = Registration(
        name=name,
        interpreter=_fsdecode(fields.get(b"interpreter", b"")),
        flags=Flags.parse(fields.get(b"flags", b"").decode("ascii", "replace"), strict=False),
        magic=_hex(fields.get(b"magic", b"")),
        mask=_hex(mask) if mask is not None else None,
        offset=int(offset) if offset.isdigit() else 0,
        extension=_fsdecode(extension[1:]) if extension is not None else None,
    )
    return Entry(registration=reg, enabled=lines[0] == b"enabled", order=order)
