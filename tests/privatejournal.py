"""A private systemd-journald: its own mount namespace with tmpfs on /run/systemd and /run/log,
so that what the test's programs log lands here, readable with `journalctl -o json`."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

JOURNALD = "/lib/systemd/systemd-journald"
_HOLD = ("mount -t tmpfs tmpfs /run/systemd && mkdir /run/systemd/journal && "
         "mount -t tmpfs tmpfs /run/log && echo ready && exec sleep infinity")


class PrivateJournal:
    def __init__(self, tmp: Path, timeout: float = 15.0) -> None:
        self.holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private",
                                        "sh", "-c", _HOLD], stdout=subprocess.PIPE, text=True)
        assert self.holder.stdout is not None
        ready, _, _ = select.select([self.holder.stdout], [], [], timeout)
        assert ready and self.holder.stdout.readline().strip() == "ready", "no private /run"
        # journald says READY=1 on NOTIFY_SOCKET once its sockets are up.
        sock_path = tmp / f"journald-notify-{time.monotonic_ns()}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(str(sock_path))
            self.journald = subprocess.Popen(
                self.enter(JOURNALD), env=dict(os.environ, NOTIFY_SOCKET=str(sock_path)),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                ready, _, _ = select.select([sock], [], [], max(0.0, left))
                assert ready, "systemd-journald did not become ready"
                if "READY=1" in sock.recv(4096).decode().split("\n"):
                    break
        sock_path.unlink()

    def enter(self, *argv: str) -> list[str]:
        return ["nsenter", "-t", str(self.holder.pid), "--mount", "--", *argv]

    def records(self, *matches: str) -> list[dict[str, Any]]:
        """Every record so far (after journald has written all it received)."""
        subprocess.run(self.enter("journalctl", "--sync"), check=True, timeout=30)
        out = subprocess.run(self.enter("journalctl", "-o", "json", "--no-pager", *matches),
                             capture_output=True, text=True, check=True, timeout=30).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def close(self) -> None:
        for proc in (self.journald, self.holder):
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        if self.holder.stdout:
            self.holder.stdout.close()
