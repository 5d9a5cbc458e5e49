"""One mounted binfmt_misc instance: read every entry, and the only code that writes to it.

Facts this relies on (Linux 6.x; entryfile.py says what an entry file reads as): writing `0`/`1`
to an entry disables/enables it, `-1` removes it. The directory lists entries newest first,
which tells the registration order (the newest enabled match wins). Inode numbers do not: the
kernel hands them out in per-CPU batches.
"""

from __future__ import annotations

import os

from ..model.registration import RESERVED_NAMES, Registration
from ..model.table import Observed
from .entryfile import parse_entry
from .refusals import KernelError, explain

DEFAULT_PATH = "/proc/sys/fs/binfmt_misc"
_ENTRY_MAX = 1 << 16  # an entry file is at most a page; read no more whatever it claims


class BinfmtTable:
    """One mounted binfmt_misc instance."""

    def __init__(self, path: str = DEFAULT_PATH) -> None:
        self.path = path

    def mounted(self) -> bool:
        return os.path.exists(os.path.join(self.path, "register"))

    def mount(self) -> None:
        """Mount binfmt_misc at the path, as systemd's own mount unit does; callers do this only
        when nothing is mounted there."""
        import subprocess  # (rarely needed: not on the boot path where systemd mounts it)
        subprocess.run(
            ["mount", "-t", "binfmt_misc", "-o", "nosuid,nodev,noexec", "binfmt_misc", self.path],
            check=True, capture_output=True, text=True,
        )

    def read(self) -> Observed:
        entries = []
        names = [n for n in os.listdir(self.path) if n not in RESERVED_NAMES]
        for newest_first, name in enumerate(names):
            try:
                with open(os.path.join(self.path, name), "rb") as f:
                    data = f.read(_ENTRY_MAX)
            except FileNotFoundError:
                continue  # removed between listing and reading
            entries.append(parse_entry(name, data, len(names) - newest_first))
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
                os.write(fd, os.fsencode(text))
            finally:
                os.close(fd)
        except OSError as e:
            raise KernelError(name, action, e.errno or 0, explain(action, name, e.errno or 0,
                                                                  interp)) from e
