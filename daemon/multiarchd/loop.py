"""The event loop: GLib's main loop (pydbus needs it). The only module besides the D-Bus face
that imports gi. Everything that wakes the daemon comes through here."""

from __future__ import annotations

import signal
from collections.abc import Callable

from gi.repository import GLib


class Loop:
    def __init__(self) -> None:
        self.loop = GLib.MainLoop()

    def call_later(self, seconds: float, fn: Callable[[], None]) -> int:
        """Run fn once after `seconds`; returns a handle for cancel()."""
        def once() -> bool:
            fn()
            return False
        return int(GLib.timeout_add(max(0, int(seconds * 1000)), once))

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
        GLib.idle_add(once)

    def on_signal(self, signum: signal.Signals, fn: Callable[[], None]) -> None:
        def handler() -> bool:
            fn()
            return True
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signum, handler)

    def on_priority_data(self, fd: int, fn: Callable[[], None]) -> None:
        """fn whenever fd signals POLLPRI (the mount table changing, for /proc/self/mountinfo)."""
        def handler(_fd: int, _cond: int) -> bool:
            fn()
            return True
        GLib.unix_fd_add_full(GLib.PRIORITY_DEFAULT, fd, GLib.IOCondition.PRI | GLib.IOCondition.ERR,
                              handler)

    def run(self) -> None:
        self.loop.run()

    def quit(self) -> None:
        self.loop.quit()
