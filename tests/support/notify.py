"""An sd_notify listener: a datagram socket that a program's NOTIFY_SOCKET points at, and the
assignments it sent, read as they come (never a fixed sleep)."""

from __future__ import annotations

import select
import socket
import time
from pathlib import Path

from .closing import Closing


class NotifyListener(Closing):
    def __init__(self, directory: Path, name: str = "notify") -> None:
        self.path = directory / f"{name}-{time.monotonic_ns()}.sock"
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(str(self.path))
        self.messages: list[str] = []  # one assignment per item, in order

    def fileno(self) -> int:
        return self.socket.fileno()

    def receive(self) -> None:
        """Read one datagram (call when select says the socket is readable)."""
        self.messages.extend(self.socket.recv(65536).decode().split("\n"))

    def wait_for(self, wanted: str, timeout: float) -> None:
        """Until an assignment equal to `wanted` arrives."""
        deadline = time.monotonic() + timeout
        while wanted not in self.messages:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.socket], [], [], left)[0]:
                raise AssertionError(f"no {wanted} on {self.path}: {self.messages}")
            self.receive()

    def value(self, key: str) -> str | None:
        """The last value sent for `key` (e.g. X_NSPAWN_LEADER_PID), or None."""
        found = [m.split("=", 1)[1] for m in self.messages if m.startswith(f"{key}=")]
        return found[-1] if found else None

    def close(self) -> None:
        self.socket.close()
        self.path.unlink(missing_ok=True)
