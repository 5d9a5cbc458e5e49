"""The calls waiting for the main loop: taken one caller after another, a few at a time, below
everything else the loop does.

Repairs and the watchdog outrank every caller: this source has the loop's lowest priority, so a
timer that is due (a repair, the watchdog ping) or a file event runs before the next call, and
each turn serves at most TURN calls (or TURN_SECONDS of them) before the loop looks again. A
caller (one connection) has at most PER_CALLER calls waiting or in progress, and everyone
together IN_ALL: past that a call is refused at once with LimitsExceeded. So no caller is kept
waiting longer than the calls queued before it take, IN_ALL at most, each of bounded cost (a
read is answered from the run's snapshot, a Plan in a few ms), and a flood by one caller
delays the others by one call per turn.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import deque
from collections.abc import Callable

from gi.repository import Gio, GLib

PER_CALLER = 16
IN_ALL = 1024
TURN = 8
TURN_SECONDS = 0.01


class FairCalls(GLib.Source):  # type: ignore[misc]
    """One source, made once (a GLib source per call leaks with Debian 12's PyGObject)."""

    def __init__(self, serve: Callable[[Gio.DBusMessage], None]) -> None:
        super().__init__()
        self.serve = serve  # on the main loop
        self._lock = threading.Lock()
        self._calls: dict[str, deque[Gio.DBusMessage]] = {}  # by caller, in turn order
        self._busy: dict[str, int] = {}  # by caller: calls waiting or in progress
        self._total = 0  # the sum of _busy
        self._answers: deque[Callable[[], None]] = deque()  # to our own questions
        self.set_priority(GLib.PRIORITY_LOW)
        self.attach(GLib.MainContext.default())

    def put(self, caller: str, call: Gio.DBusMessage) -> str | None:
        """From any thread: queue a call, or say why not."""
        with self._lock:
            if self._busy.get(caller, 0) >= PER_CALLER:
                return (f"{PER_CALLER} calls of this connection are waiting already (the "
                        "limit of every caller): wait for their answers")
            if self._total >= IN_ALL:
                return f"{IN_ALL} calls are waiting already (the limit of all callers together)"
            self._busy[caller] = self._busy.get(caller, 0) + 1
            self._total += 1
            self._calls.setdefault(caller, deque()).append(call)
        self.get_context().wakeup()
        return None

    def finished(self, caller: str) -> None:
        """One call of `caller` was answered."""
        with self._lock:
            if caller not in self._busy:
                return
            self._total -= 1
            left = self._busy[caller] - 1
            if left > 0:
                self._busy[caller] = left
            else:
                self._busy.pop(caller, None)

    def later(self, fn: Callable[[], None]) -> None:
        """From any thread: fn on the main loop, in this source's turn (an answer to one of
        our own questions)."""
        self._answers.append(fn)
        self.get_context().wakeup()

    def _next(self) -> Gio.DBusMessage | None:
        with self._lock:
            if not self._calls:
                return None
            caller = next(iter(self._calls))
            waiting = self._calls.pop(caller)
            call = waiting.popleft()
            if waiting:  # its next call after everyone else's
                self._calls[caller] = waiting
            return call

    def prepare(self) -> tuple[bool, int]:
        return bool(self._calls or self._answers), -1

    def check(self) -> bool:
        return bool(self._calls or self._answers)

    def dispatch(self, _callback: object, _args: object) -> bool:
        end = time.monotonic() + TURN_SECONDS
        for _ in range(TURN):
            if self._answers:
                _guarded(self._answers.popleft())
            elif (call := self._next()) is not None:
                _guarded(lambda: self.serve(call))
            if time.monotonic() >= end or not (self._calls or self._answers):
                break
        return True


def _guarded(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception:  # noqa: BLE001 - a bug in one call must not stop the others
        traceback.print_exc()
