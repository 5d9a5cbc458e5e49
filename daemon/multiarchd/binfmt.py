"""The kernel's binfmt_misc table: read every entry, and the only code that writes to it.

Facts this relies on (Linux 6.x): an entry file reads as `enabled|disabled`, `interpreter PATH`,
`flags: XYZ`, then `offset N`, `magic HEX` and `mask HEX` (M type) or `extension .EXT` (E type).
Writing `0`/`1` to an entry disables/enables it, `-1` removes it. The directory lists entries
newest first, which tells the registration order (the newest enabled match wins). Inode numbers
do not: the kernel hands them out in per-CPU batches.
"""

from __future__ import annotations

import errno
import os
import subprocess
from dataclasses import dataclass

from .entry import RESERVED_NAMES, Registration
from .flags import Flags

DEFAULT_PATH = "/proc/sys/fs/binfmt_misc"


@dataclass(frozen=True)
class Entry:
    registration: Registration
    enabled: bool
    order: int  # registration order: larger is newer

    @property
    def name(self) -> str:
        return self.registration.name


@dataclass(frozen=True)
class Observed:
    """Everything the kernel holds right now."""

    entries: tuple[Entry, ...]
    enabled: bool = True  # the global `status` switch

    def get(self, name: str) -> Entry | None:
        return next((e for e in self.entries if e.name == name), None)


class KernelError(Exception):
    """A write the kernel refused, explained in words."""

    def __init__(self, name: str, action: str, err: int, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.action = action
        self.errno = err


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


def explain(action: str, reg_name: str, err: int, interpreter: str | None = None) -> str:
    """What the kernel refused and why, in words an admin can act on."""
    what = f"{action} of {reg_name}"
    if err == errno.EEXIST:
        return f"{what} refused: an entry with that name already exists (EEXIST)"
    if err == errno.EINVAL:
        return f"{what} refused: the kernel found the register line malformed (EINVAL)"
    if err == errno.ENOENT:
        if action == "register":
            return (f"{what} refused: interpreter {interpreter} does not exist, and the F flag "
                    "opens it now (ENOENT); install the emulator or fix the path")
        return f"{what} failed: no such entry (ENOENT); someone removed it meanwhile"
    if err == errno.EACCES:
        return (f"{what} refused: interpreter {interpreter} is not executable (EACCES); "
                "check its mode and the mount's noexec")
    if err == errno.EPERM:
        return (f"{what} refused: not permitted (EPERM); multiarchd needs CAP_SYS_ADMIN "
                "over this binfmt_misc instance (run as root)")
    if err == errno.ELOOP:
        return f"{what} refused: the interpreter would run itself (ELOOP)"
    return f"{what} failed: {os.strerror(err)} ({errno.errorcode.get(err, err)})"


class BinfmtTable:
    """One mounted binfmt_misc instance."""

    def __init__(self, path: str = DEFAULT_PATH) -> None:
        self.path = path

    def mounted(self) -> bool:
        return os.path.exists(os.path.join(self.path, "register"))

    def mount(self) -> None:
        """Mount binfmt_misc at the path; callers do this only when nothing is mounted there."""
        subprocess.run(
            ["mount", "-t", "binfmt_misc", "binfmt_misc", self.path],
            check=True, capture_output=True, text=True,
        )

    def read(self) -> Observed:
        entries = []
        names = [n for n in os.listdir(self.path) if n not in RESERVED_NAMES]
        for newest_first, name in enumerate(names):
            try:
                with open(os.path.join(self.path, name)) as f:
                    text = f.read()
            except FileNotFoundError:
                continue  # removed between listing and reading
            entries.append(parse_entry(name, text, len(names) - newest_first))
        entries.sort(key=lambda e: e.order)
        with open(os.path.join(self.path, "status")) as f:
            enabled = f.read().strip() == "enabled"
        return Observed(entries=tuple(entries), enabled=enabled)

    def register(self, reg: Registration) -> None:
        self._write("register", reg.register_line(), "register", reg.name, reg.interpreter)

    def remove(self, name: str) -> None:
        self._control(name, "-1", "remove")

    def set_enabled(self, name: str, enabled: bool) -> None:
        self._control(name, "1" if enabled else "0", "enable" if enabled else "disable")

    def _control(self, name: str, value: str, action: str) -> None:
        # Never `status` (-1 there removes every entry) nor `register`.
        if name in RESERVED_NAMES or "/" in name:
            raise ValueError(f"refusing to write to {name!r}")
        self._write(name, value, action, name, None)

    def _write(self, file: str, text: str, action: str, name: str, interp: str | None) -> None:
        try:
            fd = os.open(os.path.join(self.path, file), os.O_WRONLY)
            try:
                os.write(fd, text.encode())
            finally:
                os.close(fd)
        except OSError as e:
            raise KernelError(name, action, e.errno or 0, explain(action, name, e.errno or 0,
                                                                  interp)) from e
