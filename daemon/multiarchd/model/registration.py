"""One binfmt_misc registration (the content of an entry), its register line, and the kernel's
limits on names and magic."""

from __future__ import annotations

from dataclasses import dataclass

from ..names import OWNED_PREFIX
from .escapes import decode_bytes, encode_bytes
from .flags import Flags

STAND_IN = "~"  # multiarch-NAME~ stands in for multiarch-NAME while it is replaced
MAX_NAME = 255  # the kernel's limit on an entry name
MAX_MAGIC = 128 * 2  # magic bytes, and the limit on offset + magic length
MAX_REGISTER = 1920  # the kernel's limit on one write to `register`



def owned(name: str) -> bool:
    return name.startswith(OWNED_PREFIX)


def printable(text: str) -> str:
    """A name or path as it may be shown anywhere (a terminal, the journal, D-Bus): bytes that
    are not UTF-8 as \\xHH, control and other unprintable characters escaped."""
    if text.isprintable() and text.isascii():
        return text
    try:
        data = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate no file name decodes to
        data = text.encode("utf-8", "backslashreplace")
    text = data.decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


@dataclass(frozen=True)
class Registration:
    """The content of an entry. Two registrations are equal when the kernel would behave the same."""

    name: str
    interpreter: str
    flags: Flags
    magic: bytes = b""
    mask: bytes | None = None
    offset: int = 0
    extension: str | None = None  # set for an E (extension) entry, without the dot

    def __eq__(self, other: object) -> bool:
        # Field by field, the most telling first, with none of the tuples dataclass's own
        # builds: a daemon compares every entry with what it wants at every run.
        if not isinstance(other, Registration):
            return NotImplemented
        return self is other or (
            self.name == other.name and self.magic == other.magic and
            self.interpreter == other.interpreter and self.flags == other.flags and
            self.mask == other.mask and self.offset == other.offset and
            self.extension == other.extension)

    @property
    def kind(self) -> str:
        return "E" if self.extension is not None else "M"

    def register_line(self) -> str:
        """The line written to `register`: `:name:type:offset:magic:mask:interpreter:flags`."""
        if self.extension is not None:
            fields = [self.name, "E", "", self.extension, "", self.interpreter, str(self.flags)]
        else:
            mask = encode_bytes(self.mask) if self.mask is not None else ""
            fields = [
                self.name, "M", str(self.offset), encode_bytes(self.magic), mask,
                self.interpreter, str(self.flags),
            ]
        return ":" + ":".join(fields)

    @classmethod
    def from_line(cls, line: str) -> Registration:
        """The registration a register line (as register_line() writes it) describes."""
        _, name, kind, offset, magic, mask, interpreter, flags = line.split(line[0])
        if kind == "E":
            return cls(name, interpreter, Flags.parse(flags), extension=magic)
        return cls(name, interpreter, Flags.parse(flags), decode_bytes(magic),
                   decode_bytes(mask) if mask else None, int(offset or 0))

    def overlaps(self, other: Registration) -> bool:
        """Whether some file would match both entries (so the later-registered one wins)."""
        if self.extension is not None or other.extension is not None:
            return self.extension == other.extension
        a = {self.offset + i: (m, k) for i, (m, k) in enumerate(self._pairs())}
        for i, (m2, k2) in enumerate(other._pairs()):
            pos = other.offset + i
            if pos in a:
                m1, k1 = a[pos]
                if (m1 ^ m2) & k1 & k2:
                    return False
        return True

    def matches(self, name: str, header: bytes) -> bool:
        """Whether the kernel would hand the file `name` (its base name) starting with `header`
        to this entry."""
        if self.extension is not None:
            return name.rpartition(".")[1] == "." and name.rpartition(".")[2] == self.extension
        window = header[self.offset:self.offset + len(self.magic)]
        if len(window) != len(self.magic):
            return False
        # As one integer each (the audit asks this of every entry and program at every run).
        mask = int.from_bytes(self.mask) if self.mask is not None else -1
        return int.from_bytes(window) & mask == int.from_bytes(self.magic) & mask

    def _pairs(self) -> list[tuple[int, int]]:
        mask = self.mask if self.mask is not None else b"\xff" * len(self.magic)
        return list(zip(self.magic, mask))

    def describe_match(self) -> str:
        if self.extension is not None:
            return f"extension .{printable(self.extension)}"
        return f"magic {self.magic.hex()} at offset {self.offset}"
