"""The trigger: pokes carry no data and coalesce into one run.

A poke asks for a run once events have been quiet for its debounce (an editor saving in several
steps), but never later than max_delay after the first poke of a burst. requeue(after) asks for a
run no later than `after` seconds from now (what the reconciler's Step says). One timer carries
both: it is armed for the earlier of the two, and a run clears them all.
"""

from __future__ import annotations

from collections.abc import Callable

from .protocols import Clock, Timers


class Trigger:
    def __init__(self, timers: Timers, clock: Clock, fire: Callable[[], None],
                 max_delay: float) -> None:
        self.timers = timers
        self.clock = clock
        self.fire = fire
        self.max_delay = max_delay
        self._first: float | None = None  # the first poke of this burst
        self._quiet_due: float | None = None
        self._requeue_due: float | None = None
        self._handle: int | None = None
        self._armed_for: float | None = None

    def poke(self, quiet: float) -> None:
        now = self.clock()
        if self._first is None or self._quiet_due is None:
            self._first = now
            self._quiet_due = now + quiet
        else:
            self._quiet_due = min(max(self._quiet_due, now + quiet), self._first + self.max_delay)
        self._arm(now)

    def requeue(self, after: float) -> None:
        now = self.clock()
        self._requeue_due = now + after
        self._arm(now)

    def _arm(self, now: float) -> None:
        due = min(d for d in (self._quiet_due, self._requeue_due) if d is not None)
        if due == self._armed_for:
            return
        if self._handle is not None:
            self.timers.cancel(self._handle)
        self._armed_for = due
        self._handle = self.timers.call_later(max(0.0, due - now), self._fired)

    def _fired(self) -> None:
        self._handle = self._armed_for = None
        self._first = self._quiet_due = self._requeue_due = None
        self.fire()
