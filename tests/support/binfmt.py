"""A private binfmt_misc instance: a user and mount namespace with binfmt_misc mounted in it.

Linux 6.7+ gives every user namespace that mounts binfmt_misc its own instance. A holder process
keeps the namespace open; the test reaches the instance through /proc/PID/root and runs programs
inside the namespace with nsenter, so their exec uses our table, not the host's.
"""

from __future__ import annotations

import os
import subprocess

from .closing import Closing
from .holder import NamespaceHolder

HOST_BINFMT = "/proc/sys/fs/binfmt_misc"
USERNS = ("--user", "--map-root-user", "--mount", "--propagation", "private")


class PrivateBinfmt(Closing):
    def __init__(self) -> None:
        try:
            self.holder = NamespaceHolder(USERNS, f"mount -t binfmt_misc binfmt_misc {HOST_BINFMT}")
        except RuntimeError:
            raise RuntimeError("could not mount a private binfmt_misc instance "
                               "(needs Linux 6.7+ and unprivileged user namespaces)") from None
        self.pid = self.holder.pid
        self.path = f"/proc/{self.pid}/root{HOST_BINFMT}"
        # Never write to the host's table: this must be a different superblock.
        host = HOST_BINFMT if os.path.isdir(HOST_BINFMT) else os.path.dirname(HOST_BINFMT)
        assert os.stat(self.path).st_dev != os.stat(host).st_dev, "not a private instance"

    def names(self) -> list[str]:
        return sorted(n for n in os.listdir(self.path) if n not in ("register", "status"))

    def read(self, name: str) -> str:
        with open(os.path.join(self.path, name)) as f:
            return f.read()

    def snapshot(self) -> dict[str, str]:
        """Every entry file's text, to compare a table byte for byte."""
        return {n: self.read(n) for n in self.names()}

    def write(self, name: str, text: str) -> None:
        """Write as another tool would (register lines, 0/1/-1 to an entry or to status).
        Only ever this private instance: the path goes through the namespace's own mount."""
        fd = os.open(os.path.join(self.path, name), os.O_WRONLY)
        try:
            os.write(fd, text.encode("latin-1"))
        finally:
            os.close(fd)

    def enter(self, *argv: str) -> list[str]:
        """argv run inside the namespace, where exec goes through this table."""
        return self.holder.enter(*argv, user=True)

    def exec(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.enter(*argv), capture_output=True, text=True, timeout=timeout)

    def close(self) -> None:
        # Ending the namespace's last process frees the instance; nothing is ever unmounted.
        self.holder.close()
