"""One mounted binfmt_misc instance: every entry read, and every change made (through raw.py).

Facts this relies on (Linux 6.x; entryfile.py says what an entry file reads as): writing `0`/`1`
to an entry disables/enables it, `-1` removes it. The directory lists entries newest first,
which tells the registration order (the newest enabled match wins). Inode numbers do not: the
kernel hands them out in per-CPU batches.
"""

from __future__ import annotations

import os

from ..model.errors import AccidentalPrivate, WrongTable
from ..model.registration import Registration
from ..model.observed import Observed
from . import raw
from .entryfile import parse_entry
from .owner import accidental_mount, mounted_own, not_private, own_instance
from .raw import DEFAULT_PATH
from .refusals import KernelError, explain, explain_unopened

__all__ = ["DEFAULT_PATH", "BinfmtTable"]


MOUNT = ("/usr/bin/mount", "/bin/mount")  # util-linux's, merged /usr or not
SAFE_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


class BinfmtTable:
    """One mounted binfmt_misc instance."""

    def __init__(self, path: str = DEFAULT_PATH) -> None:
        self.path = path
        # What the last read() found, as bytes: the boot record keeps other tools' entries so.
        self.raw: tuple[tuple[tuple[str, bytes], ...], str] = ((), "")

    def mounted(self) -> bool:
        return os.path.exists(os.path.join(self.path, "register"))

    def own(self) -> bool:
        """Whether the instance mounted here is this user namespace's own, not one inherited
        from an outer namespace (owner.py; asked only for --private: it may give this
        namespace an instance). WrongTable in the initial user namespace, which has none but
        the host's."""
        why = not_private(self.path)
        if why is not None:
            raise WrongTable(why)
        return own_instance(self.path)

    def mount(self, private: bool = False) -> None:
        """Mount binfmt_misc at the path, as systemd's own mount unit does; callers do this only
        when nothing is mounted there, or for `private` when what is there is inherited (a new
        instance over it, in this mount namespace only; nothing is ever unmounted). In a user
        namespace of its own that makes a private table: AccidentalPrivate unless `private`
        (asked for on purpose), which the initial namespace cannot have (WrongTable)."""
        import subprocess  # (rarely needed: not on the boot path where systemd mounts it)
        why = not_private(self.path) if private else accidental_mount(self.path)
        if why is not None:
            raise (WrongTable if private else AccidentalPrivate)(why)
        # By its own path, with a PATH of root's: never a `mount` found where PATH points.
        mount = next((m for m in MOUNT if os.path.exists(m)), MOUNT[0])
        subprocess.run(
            [mount, "-t", "binfmt_misc", "-o", "nosuid,nodev,noexec", "binfmt_misc", self.path],
            check=True, capture_output=True, text=True, env={"PATH": SAFE_PATH, "LC_ALL": "C"},
        )
        if private:
            mounted_own(self.path)

    def read(self) -> Observed:
        self.raw = raw.read_all(self.path)
        files, status = self.raw
        entries = [parse_entry(name, data, len(files) - newest_first)
                   for newest_first, (name, data) in enumerate(files)]
        entries.sort(key=lambda e: e.order)
        return Observed(entries=tuple(entries), enabled=status.strip() == "enabled")

    def register(self, reg: Registration) -> None:
        self._write("register", reg.register_line(), "register", reg.name, reg.interpreter)

    def remove(self, name: str) -> None:
        self._write(name, "-1", "remove", name, None)

    def set_enabled(self, name: str, enabled: bool) -> None:
        self._write(name, "1" if enabled else "0", "enable" if enabled else "disable", name,
                    None)

    def _write(self, file: str, text: str, action: str, name: str, interp: str | None) -> None:
        # raw.write refuses `status` (-1 there removes every entry) and anything but a register
        # line to `register`: ValueError, a bug of ours, not the kernel's refusal.
        try:
            raw.write(self.path, file, text)
        except OSError as e:
            err = e.errno or 0
            why = explain_unopened(action, name, err, os.path.join(self.path, file), interp) \
                if isinstance(e, raw.NotOpened) else explain(action, name, err, interp)
            raise KernelError(name, action, err, why) from e
