"""A running `multiarchd` for tests and benchmarks: its stderr log and its sd_notify messages,
read as they come, and start_daemon(), the one way to start it (on a private table, inside its
namespace or not, with or without a private bus and journal).

Waiting is on those events with a bounded timeout, never a fixed sleep: every change the daemon
makes is logged, every run that changes state sends STATUS=, and reloads send RELOADING=/READY=.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .binfmt import PrivateBinfmt
from .bus import PrivateBus
from .journal import PrivateJournal
from .notify import NotifyListener
from .paths import BIN

TIMEOUT = 15.0


class DaemonProcess:
    def __init__(self, argv: Sequence[str | Path], tmp: Path, env: dict[str, str] | None = None,
                 prefix: Sequence[str] = (), log_target: str = "stderr") -> None:
        self.notify = NotifyListener(tmp)
        full_env = dict(os.environ)
        full_env["NOTIFY_SOCKET"] = str(self.notify.path)
        full_env.update(env or {})  # a test may name another socket
        full_env.pop("JOURNAL_STREAM", None)
        self.proc = subprocess.Popen([*prefix, *map(str, argv), "--log-target", log_target],
                                     stderr=subprocess.PIPE, env=full_env)
        assert self.proc.stderr is not None
        self._stderr = self.proc.stderr
        self._partial = b""
        self.lines: list[str] = []

    @property
    def messages(self) -> list[str]:
        """sd_notify assignments, one per item."""
        return self.notify.messages

    # -- reading --------------------------------------------------------------------------------
    def _pump(self, timeout: float) -> bool:
        """Read whatever arrives within timeout; False if nothing did."""
        fds: list[int] = [self.notify.fileno()]
        if not self._stderr.closed:
            fds.append(self._stderr.fileno())
        ready, _, _ = select.select(fds, [], [], timeout)
        for r in ready:
            if r == self.notify.fileno():
                self.notify.receive()
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
        return self.proc.returncode


@contextmanager
def start_daemon(tmp: Path, config: Path, binfmt: PrivateBinfmt | None = None,
                 *extra: str | Path, bus: PrivateBus | None = None,
                 journal: PrivateJournal | None = None, inside: bool = False,
                 env: dict[str, str] | None = None, prefix: Sequence[str] = (),
                 ready: bool = True, dbus: bool = False) -> Iterator[DaemonProcess]:
    """`multiarchd --config CONFIG` on `binfmt` (its --binfmt-dir, or with inside=True run in
    its namespace, where exec goes through it: what probes need), publishing on `bus` (else
    --no-dbus), logging to `journal` (else stderr); by default once READY=1 has come (and the
    name is published on `bus`)."""
    argv: list[str | Path] = [BIN / "multiarchd", "--config", config, *extra]
    if bus is None and not dbus:  # dbus=True: on whatever bus the environment names
        argv.append("--no-dbus")
    if binfmt is not None and inside:
        prefix = (*prefix, *binfmt.enter())
    elif binfmt is not None:
        argv += ["--binfmt-dir", binfmt.path]
    if journal is not None:
        prefix = (*prefix, *journal.enter())
    # The lock that keeps a second daemon off a table, and what it keeps between starts, live
    # in the test's own directory.
    env = dict({"RUNTIME_DIRECTORY": str(tmp / "run"), "CACHE_DIRECTORY": str(tmp / "cache")},
               **(env or {}), **(bus.env if bus else {}))
    d = DaemonProcess(argv, tmp, env, prefix, "journal" if journal else "stderr")
    try:
        if ready:
            d.wait_notify("READY=1")
            if bus is not None:  # READY does not wait for the bus: the tests that use it do
                d.wait_log("D-Bus: io.github.multiarchd1 published")
        yield d
    finally:
        d.stop()
