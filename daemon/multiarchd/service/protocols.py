"""What the service needs from the world, as small protocols: the adapters (glib_loop, inotify,
systemd_glue) implement them for real, and the unit tests with fakes and a virtual clock."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Protocol, TypeVar

from ..core.messages import Message
from ..core.result import Result
from .watches import Watch

Clock = Callable[[], float]  # monotonic seconds
T = TypeVar("T")


class Timers(Protocol):
    def call_later(self, seconds: float, fn: Callable[[], None]) -> int:
        """Run fn once after `seconds`; a handle for cancel()."""
    def cancel(self, handle: int) -> None: ...


class Loop(Timers, Protocol):
    """The main loop: every callback runs on its one thread, so runs never overlap."""

    def every(self, seconds: float, fn: Callable[[], None]) -> int: ...
    def call_soon_threadsafe(self, fn: Callable[[], None]) -> None: ...
    def on_signal(self, signum: signal.Signals, fn: Callable[[], None]) -> None: ...
    def on_mount_change(self, fn: Callable[[], None]) -> None:
        """fn whenever this process's mount table changes (from now on)."""
    def run(self) -> None: ...
    def quit(self) -> None: ...


class Background(Protocol):
    """Work off the main loop: work() on a worker thread, then then(its result) back on the
    main loop."""

    def run(self, work: Callable[[], T], then: Callable[[T], None]) -> None: ...


class Watcher(Protocol):
    """Filesystem watches; events reach the callback given at construction, on any thread, as
    (path, kind): created, deleted, moved, modified (a file being written), closed (a file
    written and closed), or changed (something in a directory)."""

    def start(self) -> None: ...
    def update(self, watches: set[Watch]) -> bool:
        """Watch exactly these; whether any watch was added (a change made before it was in
        place went unseen)."""
    def stop(self) -> None: ...


class Notifier(Protocol):
    """sd_notify, never blocking or raising: None when sent, else why not."""

    def __call__(self, *assignments: str) -> str | None: ...


class Log(Protocol):
    def emit(self, message: Message) -> None: ...


class Bus(Protocol):
    """The service on D-Bus: connect() publishes it (now or, retrying, later; the callback it
    was made with hears of every change); after_run() tells subscribers what changed: a run
    (None when no run could happen: the state changed all the same)."""

    @property
    def connected(self) -> bool: ...
    def connect(self) -> object: ...
    def after_run(self, result: Result | None, changed: bool) -> None: ...
