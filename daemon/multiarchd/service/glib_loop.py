"""The main loop: GLib's (pydbus needs it), as the Loop protocol. The only module besides the
D-Bus adapter that imports gi. Everything that wakes the daemon comes through here."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import BinaryIO

from gi.repository import GLib


# Everything that leads to a run (timers, watcher events, the mount table) outranks D-Bus, which
# GLib dispatches at the default priority: no caller can delay a repair.
_FIRST = GLib.PRIORITY_HIGH


class GLibLoop:
    def __init__(self) -> None:
        self.loop = GLib.MainLoop()
        self._mountinfo: BinaryIO | None = None
        self._quitting = False

    def call_later(self, seconds: float, fn: Callable[[], None]) -> int:
        """Run fn once after `seconds`; returns a handle for cancel()."""
        def once() -> bool:
            fn()
            return False
        return int(GLib.timeout_add(max(0, int(seconds * 1000)), once, priority=_FIRST))

    def every(self, seconds: float, fn: Callable[[], None]) -> int:
        def again() -> bool:
            fn()
            return True
        if seconds >= 1 and float(seconds).is_integer():
            # Whole seconds let GLib batch wake-ups with other timers.
            return int(GLib.timeout_add_seconds(int(seconds), again))
        return int(GLib.timeout_add(int(seconds * 1000), again))

    def cancel(self, handle: int) -> None:
        GLib.source_remove(handle)

    def call_soon_threadsafe(self, fn: Callable[[], None]) -> None:
        def once() -> bool:
            fn()
            return False
        GLib.idle_add(once, priority=_FIRST)

    def on_signal(self, signum: signal.Signals, fn: Callable[[], None]) -> None:
        def handler() -> bool:
            fn()
            return True
        GLib.unix_signal_add(_FIRST, signum, handler)

    def on_mount_change(self, fn: Callable[[], None]) -> None:
        """fn whenever the mount table changes: /proc/self/mountinfo signals POLLPRI then, so
        nothing polls."""
        if self._mountinfo is None:
            self._mountinfo = open("/proc/self/mountinfo", "rb")  # noqa: SIM115 - kept open

        def handler(_fd: int, _cond: int) -> bool:
            fn()
            return True
        GLib.unix_fd_add_full(_FIRST, self._mountinfo.fileno(),
                              GLib.IOCondition.PRI | GLib.IOCondition.ERR, handler)

    def run_until(self, done: Callable[[], bool]) -> None:
        """Also returns once quit() was called (SIGTERM while probes run), done or not."""
        context = self.loop.get_context()
        while not done() and not self._quitting:
            context.iteration(True)

    def run(self) -> None:
        self.loop.run()

    def quit(self) -> None:
        self._quitting = True
        self.loop.quit()
