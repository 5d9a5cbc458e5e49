"""Parsing one binfmt_misc entry file (Linux 6.x): `enabled|disabled`, `interpreter PATH`,
`flags: XYZ`, then `offset N`, `magic HEX` and `mask HEX` (M type) or `extension .EXT` (E type)."""

from __future__ import annotations

from ..model.flags import Flags
from ..model.registration import Registration
from ..model.table import Entry


def parse_entry(name: str, text: str, order: int = 0) -> Entry:
    """Parse the text of one entry file."""
    lines = text.splitlines()
    if not lines or lines[0] not in ("enabled", "disabled"):
        raise ValueError(f"{name}: entry file does not start with enabled/disabled: {text!r}")
    fields: dict[str, str] = {}
    for line in lines[1:]:
        key, _, value = line.partition(" ")
        fields[key.rstrip(":")] = value.strip()
    extension = fields.get("extension")
    mask = fields.get("mask")
    reg = Registration(
        name=name,
        interpreter=fields.get("interpreter", ""),
        flags=Flags.parse(fields.get("flags", "")),
        magic=bytes.fromhex(fields.get("magic", "")),
        mask=bytes.fromhex(mask) if mask is not None else None,
        offset=int(fields.get("offset", "0")),
        extension=extension[1:] if extension is not None else None,
    )
    return Entry(registration=reg, enabled=lines[0] == "enabled", order=order)
