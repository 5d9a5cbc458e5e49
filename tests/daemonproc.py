"""A running `multiarchd` for tests: its stderr log and its sd_notify messages, read as they come.

Waiting is on those events with a bounded timeout, never a fixed sleep: every change the daemon
makes is logged, every run that changes state sends STATUS=, and reloads send RELOADING=/READY=.
"""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

TIMEOUT = 15.0


class DaemonProcess:
    def __init__(self, argv: Sequence[str | Path], tmp: Path, env: dict[str, str] | None = None,
                 prefix: Sequence[str] = (), log_target: str = "stderr") -> None:
        self.notify_path = tmp / f"notify-{time.monotonic_ns()}.sock"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.notify_path))
        full_env = dict(os.environ, NOTIFY_SOCKET=str(self.notify_path), **(env or {}))
        full_env.pop("JOURNAL_STREAM", None)
        self.proc = subprocess.Popen([*prefix, *map(str, argv), "--log-target", log_target],
                                     stderr=subprocess.PIPE, env=full_env)
        assert self.proc.stderr is not None
        self._stderr = self.proc.stderr
        self._partial = b""
        self.lines: list[str] = []
        self.messages: list[str] = []  # sd_notify assignments, one per item

    # -- reading --------------------------------------------------------------------------------
    def _pump(self, timeout: float) -> bool:
        """Read whatever arrives within timeout; False if nothing did."""
        fds = [self.notify]
        if not self._stderr.closed:
            fds.append(self._stderr)  # type: ignore[arg-type]
        ready, _, _ = select.select(fds, [], [], timeout)
        for r in ready:
            if r is self.notify:
                data = self.notify.recv(65536).decode()
                self.messages.extend(data.split("\n"))
            else:
                chunk = os.read(self._stderr.fileno(), 65536)
                if not chunk:
                    self._stderr.close()
                    continue
                *done, self._partial = (self._partial + chunk).split(b"\n")
                self.lines.extend(line.decode() for line in done)
        return bool(ready)

    def wait(self, done: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0 or (not self._pump(left) and time.monotonic() >= deadline):
                raise AssertionError(f"timed out waiting for {what}\nlog:\n" +
                                     "\n".join(self.lines) + "\nnotify:\n" +
                                     "\n".join(self.messages))

    def mark(self) -> tuple[int, int]:
        """Where the log and the notify stream are now: later waits look only past it."""
        self._pump(0)
        return len(self.lines), len(self.messages)

    def _wait_first(self, seen: Callable[[], list[str]], what: str, timeout: float) -> str:
        found: list[str] = []

        def done() -> bool:
            found[:] = seen()
            return bool(found)
        self.wait(done, what, timeout)
        return found[0]

    def wait_log(self, pattern: str, since: tuple[int, int] = (0, 0),
                 timeout: float = TIMEOUT) -> str:
        rx = re.compile(pattern)
        return self._wait_first(lambda: [x for x in self.lines[since[0]:] if rx.search(x)],
                                f"log line /{pattern}/", timeout)

    def wait_notify(self, prefix: str, since: tuple[int, int] = (0, 0),
                    timeout: float = TIMEOUT) -> str:
        return self._wait_first(
            lambda: [m for m in self.messages[since[1]:] if m.startswith(prefix)],
            f"sd_notify {prefix}", timeout)

    def wait_until(self, condition: Callable[[], bool], what: str,
                   timeout: float = TIMEOUT) -> None:
        """Re-check condition each time the daemon says something (it logs every change)."""
        self.wait(condition, what, timeout)

    # -- control --------------------------------------------------------------------------------
    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def reload(self) -> None:
        """SIGHUP, then wait for the run it causes to finish (READY=1 after RELOADING=1)."""
        since = self.mark()
        self.signal(signal.SIGHUP)
        self.wait_notify("RELOADING=1", since)
        self.wait(lambda: "READY=1" in self.messages[self.messages.index("RELOADING=1", since[1]):],
                  "READY=1 after RELOADING=1")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        while not self._stderr.closed and self._pump(0.5):
            pass
        self.notify.close()
        self.notify_path.unlink(missing_ok=True)
        return self.proc.returncode
