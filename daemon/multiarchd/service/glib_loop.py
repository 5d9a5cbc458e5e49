"""The main loop: GLib's (pydbus needs it), as the Loop protocol. The only module outside the
D-Bus adapters (dbus/) that imports gi. Everything that wakes the daemon comes through here."""

from __future__ import annotations

import heapq
import itertools
import math
import os
import signal
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import BinaryIO

# GLib 2.74 (Debian 12) keeps small blocks (every GVariant) in its slice allocator for good, and
# GDBus builds the whole of each incoming call out of them before anyone can look at it (170 MB
# for one call of a million names, refused right after): through malloc they can be given back
# (dbus/server.py). GLib reads this when it is loaded, so before gi is imported.
os.environ.setdefault("G_SLICE", "always-malloc")

from gi.repository import GLib  # noqa: E402


# Everything that leads to a run (timers, watcher events, the mount table) outranks D-Bus, which
# GLib dispatches at the default priority: no caller can delay a repair.
_FIRST = GLib.PRIORITY_HIGH


class _Calls(GLib.Source):  # type: ignore[misc]
    """One source for every timer and every call handed over from another thread. A GLib source
    per timer or call, as timeout_add and idle_add make, leaves about 100 bytes behind each time
    with Debian 12's PyGObject: memory that grows with every repair. This one is made once."""

    def __init__(self) -> None:
        super().__init__()
        self.soon: deque[Callable[[], None]] = deque()  # appended to from any thread
        self.live: dict[int, Callable[[], None]] = {}  # timers not fired nor cancelled
        self.heap: list[tuple[float, int]] = []  # (due, handle); cancelled ones left behind
        self.handles = itertools.count(1)

    def add(self, seconds: float, fn: Callable[[], None], handle: int | None = None) -> int:
        handle = next(self.handles) if handle is None else handle
        self.live[handle] = fn
        heapq.heappush(self.heap, (time.monotonic() + max(0.0, seconds), handle))
        return handle

    def cancel(self, handle: int) -> None:
        self.live.pop(handle, None)
        if len(self.heap) > 2 * len(self.live) + 64:  # drop what was cancelled, now and then
            self.heap = [e for e in self.heap if e[1] in self.live]
            heapq.heapify(self.heap)

    def _due(self) -> float | None:
        while self.heap and self.heap[0][1] not in self.live:
            heapq.heappop(self.heap)
        return self.heap[0][0] if self.heap else None

    def prepare(self) -> tuple[bool, int]:
        if self.soon:
            return True, 0
        due = self._due()
        if due is None:
            return False, -1
        left = due - time.monotonic()
        return (True, 0) if left <= 0 else (False, max(1, math.ceil(left * 1000)))

    def check(self) -> bool:
        due = self._due()
        return bool(self.soon) or (due is not None and due <= time.monotonic())

    def dispatch(self, _callback: object, _args: object) -> bool:
        # Only what was handed over before this turn: what arrives meanwhile waits for the next
        # one, so the timers below (repairs, the watchdog ping) get their turn whatever the
        # other threads keep handing over.
        for _ in range(len(self.soon)):
            _call(self.soon.popleft())
        now = time.monotonic()
        while (due := self._due()) is not None and due <= now:
            fn = self.live.pop(heapq.heappop(self.heap)[1])
            _call(fn)
        return True  # kept for the life of the loop


def _call(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception:  # noqa: BLE001 - as GLib does with a failing callback: say it, go on
        traceback.print_exc()


class GLibLoop:
    def __init__(self) -> None:
        self.loop = GLib.MainLoop()
        self._mountinfo: BinaryIO | None = None
        self._quitting = False
        self._calls = _Calls()
        self._calls.set_priority(_FIRST)
        self._calls.attach(self.loop.get_context())

    def call_later(self, seconds: float, fn: Callable[[], None]) -> int:
        """Run fn once after `seconds`; returns a handle for cancel()."""
        return self._calls.add(seconds, fn)

    def every(self, seconds: float, fn: Callable[[], None]) -> int:
        handle = next(self._calls.handles)

        def again() -> None:
            self._calls.add(seconds, again, handle)  # first: fn may cancel it
            fn()
        return self._calls.add(seconds, again, handle)

    def cancel(self, handle: int) -> None:
        self._calls.cancel(handle)

    def call_soon_threadsafe(self, fn: Callable[[], None]) -> None:
        self._calls.soon.append(fn)
        self.loop.get_context().wakeup()

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
