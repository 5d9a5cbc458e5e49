"""Lines from a pipe, waited for with a bound: raw reads and a buffer of our own, because a
buffered readline() would keep lines that select() then no longer sees."""

from __future__ import annotations

import os
import select
import time
from typing import IO, Any


class Lines:
    def __init__(self, pipe: IO[Any]) -> None:
        self.fd = pipe.fileno()
        self._buffer = b""

    def next(self, timeout: float) -> str | None:
        """The next whole line (without its newline); None if none came within timeout or the
        pipe closed."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return None
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode(errors="replace")
