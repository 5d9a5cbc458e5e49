"""Just enough inotify to wait for, and timestamp, the kernel's events on one directory (the
binfmt_misc table shows every write to it as one): the tests wait on these, never on a clock."""

from __future__ import annotations

import ctypes
import os
import select
import struct
import time
from collections.abc import Callable
from pathlib import Path

from .closing import Closing

IN_MODIFY, IN_MOVED_TO, IN_DELETE = 0x2, 0x80, 0x200
_libc = ctypes.CDLL(None, use_errno=True)


class Inotify(Closing):
    """Just enough inotify to timestamp the kernel's events on one directory."""

    def __init__(self, path: str, events: int = IN_MODIFY | IN_DELETE) -> None:
        self.fd = _libc.inotify_init1(os.O_CLOEXEC)
        if _libc.inotify_add_watch(self.fd, path.encode(), events) < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {path}")

    def close(self) -> None:
        os.close(self.fd)

    def drain(self) -> None:
        while select.select([self.fd], [], [], 0)[0]:
            os.read(self.fd, 65536)

    def wait(self, name: str, mask: int, timeout: float = 10.0) -> float:
        """Until an event of `mask` on `name` comes (the kernel merges like events not read
        yet: wait, then look at what changed); when it was read."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                raise TimeoutError(f"no event on {name}")
            data = os.read(self.fd, 65536)
            now = time.perf_counter()
            i = 0
            while i < len(data):
                _wd, ev, _cookie, size = struct.unpack_from("iIII", data, i)
                got = data[i + 16:i + 16 + size].rstrip(b"\0").decode()
                i += 16 + size
                if ev & mask and got == name:
                    return now


def wait_for_file(path: str, done: Callable[[str], bool], timeout: float = 30.0) -> str:
    """The text of a file replaced by rename (as the metrics file is), once done(text)."""
    directory, name = os.path.split(path)
    deadline = time.monotonic() + timeout
    with Inotify(directory, IN_MOVED_TO) as renamed:
        while True:
            text = Path(path).read_text() if os.path.exists(path) else ""
            if done(text):
                return text
            renamed.wait(name, IN_MOVED_TO, max(0.0, deadline - time.monotonic()))
