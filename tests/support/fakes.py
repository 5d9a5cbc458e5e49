"""The service's protocols, faked, on a virtual clock: nothing happens until the test moves time,
so a debounce, a back-off or a race is a few lines that run in microseconds, without root."""

from __future__ import annotations

import heapq
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from multiarchd.core.desired import Desired
from multiarchd.core.messages import Message
from multiarchd.core.plan import Action, Kind, Outcome, Plan
from multiarchd.core.report import Report
from multiarchd.core.result import Result
from multiarchd.model.options import Config
from multiarchd.model.policy import ForeignMode, Policy
from multiarchd.model.observed import Observed
from multiarchd.reconciler.history import History
from multiarchd.service.watches import Watch

T = TypeVar("T")


class FakeLoop:
    """Loop, Timers and Clock at once. Callbacks run only inside advance()."""

    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._cancelled: set[int] = set()
        self._handles = 0
        self.signals: dict[signal.Signals, Callable[[], None]] = {}
        self.mount_watchers: list[Callable[[], None]] = []
        self.running = False

    def __call__(self) -> float:
        return self.now

    def call_later(self, seconds: float, fn: Callable[[], None]) -> int:
        self._handles += 1
        heapq.heappush(self._timers, (self.now + seconds, self._handles, fn))
        return self._handles

    def cancel(self, handle: int) -> None:
        self._cancelled.add(handle)

    def every(self, seconds: float, fn: Callable[[], None]) -> int:
        def again() -> None:
            fn()
            self.call_later(seconds, again)
        return self.call_later(seconds, again)

    def call_soon_threadsafe(self, fn: Callable[[], None]) -> None:
        self.call_later(0.0, fn)

    def on_signal(self, signum: signal.Signals, fn: Callable[[], None]) -> None:
        self.signals[signum] = fn

    def on_mount_change(self, fn: Callable[[], None]) -> None:
        self.mount_watchers.append(fn)

    def run(self) -> None:
        self.running = True

    def run_until(self, done: Callable[[], bool]) -> None:
        while not done():
            assert self._timers, "waiting for something that nothing will do"
            self.advance(max(0.0, self._timers[0][0] - self.now))

    def quit(self) -> None:
        self.running = False

    def pending(self) -> list[float]:
        """When the timers still armed will fire."""
        return sorted(t for t, h, _ in self._timers if h not in self._cancelled)

    def advance(self, seconds: float) -> None:
        """Move the clock, running every timer that comes due, in order."""
        until = self.now + seconds
        while self._timers and self._timers[0][0] <= until:
            due, handle, fn = heapq.heappop(self._timers)
            if handle in self._cancelled:
                continue
            self.now = max(self.now, due)
            fn()
        self.now = until


class Inline:
    """Background work, done at once on the caller's thread."""

    def run(self, work: Callable[[], T], then: Callable[[T], None]) -> None:
        then(work())


class Answers:
    """A Reply (an answer owed to a D-Bus caller) that keeps what it was given."""

    def __init__(self) -> None:
        self.got: list[object] = []

    def value(self, value: object) -> None:
        self.got.append(value)

    def error(self, error: Exception) -> None:
        self.got.append(error)


class Deferred:
    """Background work held until the test lets it finish, as a hung probe would be."""

    def __init__(self) -> None:
        self.held: list[Callable[[], None]] = []

    def run(self, work: Callable[[], T], then: Callable[[T], None]) -> None:
        self.held.append(lambda: then(work()))

    def finish(self) -> None:
        held, self.held = self.held, []
        for job in held:
            job()


class FakeWatcher:
    def __init__(self, on_event: Callable[[str, str], None]) -> None:
        self.on_event = on_event  # call it to simulate an inotify event: (path, kind)
        self.started = self.stopped = False
        self.watches: set[Watch] = set()

    def start(self) -> None:
        self.started = True

    def update(self, watches: set[Watch]) -> bool:
        added, self.watches = bool(watches - self.watches), watches
        return added

    def stop(self) -> None:
        self.stopped = True


@dataclass
class Notes:
    """sd_notify, written down: one item per assignment."""

    sent: list[str] = field(default_factory=list)
    error: str | None = None  # set: every send fails with these words

    def __call__(self, *assignments: str) -> str | None:
        self.sent.extend(assignments)
        return self.error


@dataclass
class FakeLog:
    """A log that keeps what it is sent."""

    sent: list[Message] = field(default_factory=list)

    def emit(self, message: Message) -> None:
        self.sent.append(message)

    def texts(self) -> list[str]:
        return [m.message for m in self.sent]


class FakeBus:
    """The D-Bus link: the name is owned when the test says so (owned())."""

    def __init__(self, on_change: Callable[[], None]) -> None:
        self.on_change = on_change
        self.connects = 0
        self.connected = False
        self.runs: list[bool] = []  # after each run: whether it changed the table

    def connect(self) -> bool:
        self.connects += 1
        return False

    def owned(self) -> None:
        self.connected = True
        self.on_change()

    def after_run(self, result: Result | None, changed: bool) -> None:
        self.runs.append(changed)


@dataclass
class FakeTable:
    """binfmt_misc as far as mounting and looking go."""

    is_mounted: bool = True
    mounts: int = 0
    observed: Observed = Observed(())
    inherited: bool = False  # the table there is an outer namespace's, until a mount of ours

    def mounted(self) -> bool:
        return self.is_mounted

    def own(self) -> bool:
        return not self.inherited

    def mount(self, private: bool = False) -> None:
        self.mounts += 1
        self.is_mounted, self.inherited = True, False

    def read(self) -> Observed:
        return self.observed


def result(refusals: int = 0, changes: int = 0, terminal: bool = False) -> Result:
    """A run's result with this many kernel refusals (for good, with `terminal`) and
    successful changes."""
    outcomes = tuple(Outcome(Action(Kind.REGISTER, f"multiarch-x{i}", "wanted"), "refused",
                             terminal) for i in range(refusals))
    outcomes += tuple(Outcome(Action(Kind.REGISTER, f"multiarch-y{i}", "wanted"))
                      for i in range(changes))
    return Result(Policy(files=("arches.yaml",)), Desired((), ForeignMode.KEEP, ()), Plan(()),
                  Report((), (), (), outcomes))


class Script:
    """A run_once for the Reconciler that answers from a list (the last answer repeats); an
    exception in the list is raised."""

    def __init__(self, *answers: Result | Exception) -> None:
        self.answers = list(answers)
        self.runs = 0

    def __call__(self, config: Config, history: History, now: float) -> Result:
        self.runs += 1
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer
