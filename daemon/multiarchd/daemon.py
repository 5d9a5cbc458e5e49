"""The long-running service: one reconciler, woken by triggers that carry no data.

Watchers (policy directory, binfmt_misc table, interpreter files), SIGHUP, the safety timer and
D-Bus calls only poke; pokes within the debounce window coalesce into one run, and runs never
overlap (they all happen on the loop's thread). A run re-reads everything (see reconcile.py).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import BinaryIO

from . import __version__
from .binfmt import BinfmtTable
from .catalog import load_catalog
from .desired import State
from .entry import OWNED_PREFIX, Registration
from .errors import NotMounted, PolicyRejected
from .events import Event, Record, change_records, conflict_record, problem_records
from .host import candidate_paths, host_arch, native
from .loop import Loop
from .memory import Memory
from .options import Options
from .plan import Plan
from .probes import Verdict
from .reconcile import Config, Result, ensure_mounted, evaluate, reconcile_once
from .report import Status, overall, with_verdicts
from .systemd_glue import Log, notify, watchdog_interval
from .verify import resolve, verify
from .watch import Watch, Watcher


@dataclass
class Daemon:
    config: Config
    options: Options
    loop: Loop
    log: Log
    state: str = "starting"
    last: Result | None = None
    last_reconcile: float = 0.0  # wall-clock time of the last run
    listeners: list[Callable[[Result, bool], None]] = field(default_factory=list)
    _memory: Memory = field(init=False)
    _watcher: Watcher = field(init=False)
    _pending: int | None = None
    _first_poke: float = 0.0
    _due: float = 0.0
    _retry: int | None = None
    _retries: int = 0
    _release: int | None = None
    _problems: tuple[str, ...] = ()
    _conflicts: frozenset[str] = frozenset()
    _mountinfo: BinaryIO | None = None
    _ready: bool = False
    _why: str = ""  # why the last run could not happen
    _verdicts: dict[str, tuple[Registration, Verdict]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._memory = Memory(self.options.repair_limit, self.options.repair_window)
        self._watcher = Watcher(self._on_file_event)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self.log.emit(Record(Event.STARTED, f"multiarchd {__version__} starting; policy "
                             f"{self.config.policy_path}, table {self.config.binfmt_dir}"))
        self._watcher.start()
        self.loop.on_signal(signal.SIGHUP, self.reload)
        self.loop.on_signal(signal.SIGTERM, self.stop)
        self.loop.on_signal(signal.SIGINT, self.stop)
        self.loop.every(self.options.safety_interval, self.poke)
        found, why = native()
        if found is None:
            self.log.emit(Record(Event.STARTED, f"cannot tell native architectures by running "
                                 f"probes here ({why}); the catalog's family table decides"))
        interval = watchdog_interval()
        if interval:
            self.loop.every(interval, lambda: notify("WATCHDOG=1"))
        self.run_now()

    def ready(self) -> None:
        """Tell systemd we are up: after the first run (and, with D-Bus, after the bus name).
        Only once: a reconnect to the bus later is not a new start."""
        if not self._ready:
            self._ready = True
            notify("READY=1", f"STATUS={self.status_line()}")

    def reload(self) -> None:
        now_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        notify("RELOADING=1", f"MONOTONIC_USEC={now_usec}")
        self.run_now()
        notify("READY=1", f"STATUS={self.status_line()}")

    def stop(self) -> None:
        notify("STOPPING=1")
        self.log.emit(Record(Event.STOPPED, "multiarchd stopping; registrations stay in place"))
        self._watcher.stop()
        self.loop.quit()

    # -- what the D-Bus face (or anyone) asks ----------------------------------------------------
    @property
    def host_arch(self) -> str:
        return host_arch(load_catalog())

    @property
    def policy_path(self) -> str:
        return self.config.policy_path

    def statuses(self) -> tuple[Status, ...]:
        return self.last.report.statuses if self.last else ()

    def reconcile_now(self) -> str:
        """Apply now; the state after it. A rejected policy is an error, not a state."""
        result = self.run_now()
        if result is None:
            raise NotMounted(self._why)
        if result.rejected:
            raise PolicyRejected("; ".join(str(p) for p in result.report.problems))
        return self.state

    def plan_now(self) -> Plan:
        policy, want, _, todo = evaluate(self.config, memory=self._memory)
        if want is None:
            raise PolicyRejected("; ".join(str(p) for p in policy.problems))
        return todo

    def test(self, names: list[str]) -> list[tuple[str, str, str]]:
        """Run the probes of these (default: every registered) architectures now."""
        catalog = load_catalog()
        arches = resolve(names, catalog) if names else [
            s.name for s in self.statuses()
            if s.kind == "arch" and s.state in (State.ACTIVE, State.VERIFIED, State.ERROR)
            and s.entry in self._registered()]
        verdicts = verify(arches, catalog, self.config.binfmt_dir)
        self._remember(verdicts)
        if self.last:
            self.last = replace(self.last, report=with_verdicts(self.last.report,
                                                                self._valid_verdicts()))
        return [(v.arch, v.result, v.message) for v in verdicts]

    # -- verification -----------------------------------------------------------------------------
    def _registered(self) -> dict[str, Registration]:
        want = self.last.desired if self.last else None
        return {w.entry: w.registration for w in want.wants if w.registration} if want else {}

    def _remember(self, verdicts: list[Verdict]) -> None:
        registered = self._registered()
        for v in verdicts:
            reg = registered.get(OWNED_PREFIX + v.arch)
            if reg is not None:
                self._verdicts[v.arch] = (reg, v)

    def _valid_verdicts(self) -> dict[str, Verdict]:
        """Verdicts still about what is registered now."""
        registered = self._registered()
        return {arch: v for arch, (reg, v) in self._verdicts.items()
                if registered.get(OWNED_PREFIX + arch) == reg}

    def _verify(self, result: Result) -> Result:
        """Probe every active architecture not yet proven in its current registration."""
        if result.desired is None or not result.policy.verify:
            return result
        valid = self._valid_verdicts()
        todo = [s.name for s in result.report.statuses
                if s.kind == "arch" and s.state is State.ACTIVE and s.name not in valid]
        if todo:
            self._remember(verify(todo, load_catalog(), self.config.binfmt_dir))
            for v in self._valid_verdicts().values():
                if not v.ok and v.arch in todo and v.result == "failed":
                    self.log.emit(Record(Event.PROBE_FAILED, f"{v.arch}: probe failed: "
                                         f"{v.message}", {"MULTIARCH_ARCH": v.arch,
                                                          "MULTIARCH_ENTRY": OWNED_PREFIX + v.arch,
                                                          "MULTIARCH_ACTION": "verify"}))
        return replace(result, report=with_verdicts(result.report, self._valid_verdicts()))

    # -- triggers -------------------------------------------------------------------------------
    def poke(self, debounce: float | None = None) -> None:
        """Something may have changed: run soon. Bursts coalesce into one run.

        The run waits until events have been quiet for `debounce` (an editor saving in several
        steps), but never longer than max_delay after the first event.
        """
        now = time.monotonic()
        quiet = self.options.debounce if debounce is None else debounce
        if self._pending is None:
            self._first_poke = now
            self._due = now + quiet
        else:
            due = min(max(self._due, now + quiet), self._first_poke + self.options.max_delay)
            if due == self._due:
                return
            self.loop.cancel(self._pending)
            self._due = due
        self._pending = self.loop.call_later(max(0.0, self._due - now), self._fire)

    def _on_file_event(self, path: str) -> None:
        """From a watcher thread: a policy file needs the editor's quiet time, others do not."""
        policy_dir = os.path.dirname(os.path.abspath(self.config.policy_path))
        quiet = self.options.debounce if path.startswith(policy_dir) else self.options.table_debounce
        self.loop.call_soon_threadsafe(lambda: self.poke(quiet))

    def _fire(self) -> None:
        self._pending = None
        self.run_now()

    # -- one run --------------------------------------------------------------------------------
    def run_now(self) -> Result | None:
        try:
            mounted = ensure_mounted(self.config) if self.options.mount else \
                BinfmtTable(self.config.binfmt_dir).mounted()
        except Exception as e:  # noqa: BLE001 - a failed mount must not kill the daemon
            self._wait_for_mount(f"cannot mount binfmt_misc at {self.config.binfmt_dir}: {e}")
            return None
        if not mounted:
            self._wait_for_mount(f"binfmt_misc is not mounted at {self.config.binfmt_dir}")
            return None
        try:
            # Mounting was settled just above; the run itself need not look again.
            result = reconcile_once(self.config, memory=self._memory, mount=False)
        except NotMounted as e:
            self._wait_for_mount(str(e))
            return None
        except OSError as e:
            # An unreadable table or policy directory: say so, keep running, and try again.
            self._why = f"reconcile failed: {e}"
            self.log.emit(Record(Event.KERNEL_REFUSED, f"{self._why}; will retry"))
            self.state = "degraded"
            notify(f"STATUS=degraded: reconcile failed: {e}")
            self._retry = self._retry or self.loop.call_later(self.options.retry_base,
                                                               self._retry_now)
            return None
        self.last = result  # what _verify asks about is this run's registrations
        result = self._verify(result)
        self.last, self.last_reconcile = result, time.time()
        self._tell(result)
        self._schedule_retries(result)
        self._watcher.update(self._watches(result))
        changed = bool(result.report.outcomes)
        for listener in self.listeners:
            listener(result, changed)
        return result

    def _tell(self, result: Result) -> None:
        for record in change_records(result.report.outcomes, result.drift):
            self.log.emit(record)
        problems = tuple(str(p) for p in result.report.problems)
        if problems != self._problems:  # say it once per distinct policy, not every run
            if problems:
                for record in problem_records(result.report.problems, result.rejected):
                    self.log.emit(record)
            elif self._problems:
                self.log.emit(Record(Event.POLICY_ACCEPTED, "policy accepted; applying it"))
            self._problems = problems
        for entry in sorted(result.conflicts - self._conflicts):
            times = self._memory.repairs.get(entry, ())
            self.log.emit(conflict_record(entry, len(times), self.options.repair_window))
        self._conflicts = result.conflicts
        state = overall(result.report)
        if state != self.state or result.report.outcomes:
            notify(f"STATUS={self._status_line(result)}")
        self.state = state

    def status_line(self) -> str:
        return self._status_line(self.last) if self.last else self.state

    def _status_line(self, result: Result) -> str:
        if result.rejected:
            return f"policy error, keeping the last good registrations: {result.report.problems[0]}"
        return f"{overall(result.report)}: {result.report.summary()}"

    def _schedule_retries(self, result: Result) -> None:
        if self._retry is not None:
            self.loop.cancel(self._retry)
            self._retry = None
        if result.report.failures:
            delay = min(self.options.retry_base * 2 ** self._retries, self.options.safety_interval)
            self._retries += 1
            self._retry = self.loop.call_later(delay, self._retry_now)
        else:
            self._retries = 0
        release = self._memory.next_release(time.monotonic())
        if release is not None and self._release is None:
            self._release = self.loop.call_later(release + 0.01, self._released)

    def _retry_now(self) -> None:
        self._retry = None
        self.poke()

    def _released(self) -> None:
        self._release = None
        self.poke()

    def _wait_for_mount(self, why: str) -> None:
        self._why = why
        if self.state != "waiting":
            self.log.emit(Record(Event.KERNEL_REFUSED, f"{why}; waiting for it to appear"))
            notify(f"STATUS=waiting: {why}")
        self.state = "waiting"
        if self._mountinfo is None:
            # The mount table signals POLLPRI on every change: no polling needed.
            self._mountinfo = open("/proc/self/mountinfo", "rb")  # noqa: SIM115 - kept open
            self.loop.on_priority_data(self._mountinfo.fileno(), self.poke)

    # -- what to watch --------------------------------------------------------------------------
    def _watches(self, result: Result) -> set[Watch]:
        policy_dir = os.path.dirname(os.path.abspath(self.config.policy_path))
        watches = {Watch(self.config.binfmt_dir)}
        if os.path.isdir(policy_dir):
            # The directory, not the file: editors and config tools replace files by rename.
            watches.add(Watch(policy_dir, recursive=True))
        else:
            watches.add(Watch(os.path.dirname(policy_dir),
                              frozenset({os.path.basename(policy_dir)})))
        # Interpreters in use (a package upgrade replaces them) and every place an emulator may
        # appear (installing one makes its architectures available).
        paths = set(candidate_paths(result.policy, load_catalog()))
        for want in result.desired.wants if result.desired else ():
            if want.registration is not None:
                paths.add(os.path.realpath(want.registration.interpreter))
        interpreters: dict[str, set[str]] = {}
        for path in paths:
            interpreters.setdefault(os.path.dirname(path), set()).add(os.path.basename(path))
        watches.update(Watch(d, frozenset(names)) for d, names in interpreters.items()
                       if os.path.isdir(d))
        return watches

