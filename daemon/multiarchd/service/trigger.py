"""The trigger: pokes carry no data and coalesce into one run; and which events poke it.

A poke asks for a run once events have been quiet for its debounce (an editor saving in several
steps), but never later than max_delay after the first poke of a burst. requeue(after) asks for a
run no later than `after` seconds from now (what the reconciler's Step says). One timer carries
both: it is armed for the earlier of the two, and a run clears them all.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

from ..model.options import Config, Options
from ..policy.places import read_as_policy
from .protocols import Clock, Timers
from .watches import is_policy, policy_dirs


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
        self.requeued = False  # the last firing was (also) a requeue falling due

    def poke(self, quiet: float) -> None:
        now = self.clock()
        if self._first is None or self._quiet_due is None:
            self._first = now
            self._quiet_due = now + quiet
        else:
            self._quiet_due = min(max(self._quiet_due, now + quiet), self._first + self.max_delay)
        self._arm(now)

    def now(self) -> None:
        """Fire at once (what was asked for explicitly: the start, SIGHUP, D-Bus), as a timer
        falling due would: the same rules decide whether a run happens."""
        if self._handle is not None:
            self.timers.cancel(self._handle)
        self._fired()

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
        now = self.clock()
        # A requeue that is not due yet survives a firing that ran nothing (fire() ran no run
        # when nothing requeued meanwhile); a run requeues for itself.
        later = self._requeue_due if self._requeue_due is not None and \
            self._requeue_due > now else None
        self.requeued = self._requeue_due is not None and later is None
        self._handle = self._armed_for = None
        self._first = self._quiet_due = self._requeue_due = None
        self.fire()
        if later is not None and self._requeue_due is None:
            self.requeue(later - now)


class Wakeups:
    """Which events ask for a run, and after what quiet. A policy file wants the editor's quiet
    time, and one written in place is not applied before its writer closes it (up to
    max_delay), so that half a policy is never applied; the table and interpreters want a short
    one. Events from the table alone, after which it is still as the last run left it (that
    run's own writes, seen late), ask for no run."""

    def __init__(self, trigger: Trigger, options: Options, config: Config, clock: Clock) -> None:
        self.trigger = trigger
        self.options = options
        self.config = config
        self.clock = clock
        self._writing: dict[str, float] = {}  # policy files open for writing, since when
        self._closed: dict[str, float] = {}  # policy files last closed after writing, when
        self._table_only = True  # since the last firing, only the table's events asked
        self.followed: frozenset[str] = frozenset()  # watches.followed() of the watches in place

    def poke(self, quiet: float | None = None, table: bool = False) -> None:
        if not table:
            self._table_only = False
        self.trigger.poke(self.options.debounce if quiet is None else quiet)

    def ask(self) -> None:
        """An explicit ask (the start, SIGHUP, D-Bus): a run now, unless a policy file is being
        written (then once it is closed, as for any event)."""
        self._table_only = False
        self.trigger.now()

    def file_changed(self, path: str, kind: str) -> None:
        policy = path in policy_dirs(self.config) or \
            read_as_policy(path, self.config.policy_path)
        if not policy and is_policy(path, self.config) and path not in self.followed:
            # Only files the policy is read from (and its directories) count as the policy's:
            # an editor's swap file beside it (Vim's stays open, written now and then), a
            # backup, a log appended there would keep the quiet from coming, or hold a save
            # until max_delay; they ask for no run at all. What is watched there by name (an
            # interpreter kept under the policy's directory) is followed as anywhere else. A
            # file renamed over the policy is told by the policy's name; any rename beside it
            # may change what the policy's path leads to (the kubelet swaps the `..data` link a
            # ConfigMap's files are read through), and renames are few.
            if kind != "moved" or os.path.dirname(path) not in policy_dirs(self.config):
                return
            policy = True
        if not policy:
            table = os.path.dirname(path) == self.config.binfmt_dir.rstrip("/")
            self.poke(self.options.table_debounce, table=table)
            return
        if kind == "changed":
            # Something in a policy directory changed: its own event says whether it is the
            # policy's (a file closed beside the policy says this too, every time).
            return
        now = self.clock()
        just_closed = now - self._closed.get(path, -math.inf) < self.options.debounce
        if kind == "modified" and not just_closed:
            self._writing.setdefault(path, now)
        elif kind in ("closed", "deleted", "moved"):
            self._writing.pop(path, None)
            if kind == "closed":
                # An editor sets the mode after closing (Vim does): watchdog tells that as
                # "modified" too, which is no new writer when it comes right after the close.
                self._closed[path] = now
        self.poke(self.options.debounce)

    def due(self, table_as_left: Callable[[], bool]) -> bool:
        """At the trigger's firing: whether to run now."""
        now = self.clock()
        if any(now - since < self.options.max_delay for since in self._writing.values()):
            self.poke(self.options.debounce)  # a writer is still at it: look again shortly
            return False
        self._writing.clear()  # a writer that never closes gets its run after max_delay
        self._closed.clear()
        table_only, self._table_only = self._table_only, True
        return not (table_only and not self.trigger.requeued and table_as_left())
