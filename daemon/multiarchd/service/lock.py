"""One daemon per table: an flock on a file under the runtime directory, named for the
binfmt_misc instance (its device), holding the holder's PID so that a second daemon can say
which one is already there."""

from __future__ import annotations

import fcntl
import os

from ..host import keep


class TableLock:
    def __init__(self, binfmt_dir: str, runtime_dir: str | None = None) -> None:
        self.binfmt_dir = binfmt_dir
        self.runtime_dir = runtime_dir or keep.runtime_dir()
        self.fd: int | None = None
        self.path = ""

    def take(self) -> str | None:
        """None when this process keeps the table (or it is not mounted yet, so there is
        nothing to keep); else why not, naming the daemon that does."""
        if self.fd is not None:
            return None
        try:
            device = os.stat(os.path.join(self.binfmt_dir, "register")).st_dev
        except OSError:
            return None  # not mounted: taken when it is
        self.path = os.path.join(self.runtime_dir, f"table-{device:x}.lock")
        try:
            os.makedirs(self.runtime_dir, mode=0o755, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o644)
        except OSError:
            self.fd = -1  # no runtime directory of ours here (a test's namespace): go on
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            return (f"another multiarchd (pid {holder}) already keeps the binfmt_misc table at "
                    f"{self.binfmt_dir} (lock {self.path}); stop it first, one is enough")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return None
