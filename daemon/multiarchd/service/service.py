"""The long-running service: the reconciler, woken by triggers that carry no data.

Watchers (policy directory, binfmt_misc table, interpreter files), SIGHUP, D-Bus calls and the
reconciler's own requeue only poke the trigger; pokes coalesce into one run, and runs never
overlap (they all happen on the loop's thread). What happens in a run is the reconciler's; this
module tells the world about it: journal messages, sd_notify, the bus (the D-Bus face).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from .. import __version__
from ..core.metrics import Counters
from ..core.messages import (Event, Message, change_messages, conflict_message, finding_message,
                             problem_messages, state_message)
from ..core.gate import nothing_to_release
from ..core.explain import Explanation, Program, explain, shebang
from ..core.plan import Outcome, Plan
from ..core.probes import Verdict
from ..core.report import DaemonState, Report, Status, overall
from ..core.result import Result
from ..kernel.owner import describe, private
from ..model.catalog import Catalog
from ..model.errors import NotHeld, NotMounted, PolicyRejected, Stopping, UnknownArchitecture
from ..model.options import Options
from ..model.problems import Problem
from ..model.reply import Reply
from ..names import OWNED_PREFIX
from ..reconciler.explain import observe, where
from ..reconciler.reconciler import Reconciler, Step
from .exporter import Exporter
from .node_features import NodeFeatures
from .protocols import Bus, Clock, Log, Loop, Notifier, Watcher
from .trigger import Trigger, Wakeups
from .verifier import Verifier
from .watches import followed, watches_for


@dataclass(frozen=True)
class Parts:
    """What a Service is made of: cli/wiring.py gives the real ones, the tests fakes."""

    reconciler: Reconciler
    verifier: Verifier
    options: Options
    catalog: Catalog
    host_arch: str
    loop: Loop
    clock: Clock
    watcher: Callable[[Callable[[str, str], None]], Watcher]  # made with the event handler
    notify: Notifier
    log: Log
    native_why: Callable[[], str] = lambda: ""  # why native arches cannot be found by running
    bus: Callable[[Service], Bus] | None = None  # None: no D-Bus (ready after the first run)
    lock: Callable[[], str | None] = lambda: None  # one daemon per table: None, or why not
    metrics: Exporter | None = None
    node_features: NodeFeatures | None = None  # writes the file the policy may name


class Service:
    def __init__(self, parts: Parts) -> None:
        self.reconciler = parts.reconciler
        self.config = parts.reconciler.config
        self.verifier = parts.verifier
        self.verifier.arrived = self._verdicts_arrived
        # Trials of new files run on the workers, as probes do: the loop goes on repairing and
        # answering (the entry stays as it is meanwhile), and runs again when an answer comes.
        self.reconciler.history.trials.off_loop(self.verifier.background.run,
                                                lambda: self.poke(0.0))
        self.options = parts.options
        self.catalog = parts.catalog
        self.host_arch = parts.host_arch
        self.loop = parts.loop
        self.clock = parts.clock
        self._sd_notify = parts.notify
        self._notify_error: str | None = None
        self.log = parts.log
        self.watchdog = parts.options.watchdog
        self.native_why = parts.native_why
        self.watcher = parts.watcher(self._on_file_event)
        self.trigger = Trigger(parts.loop, parts.clock, self._triggered, self.options.max_delay)
        self.wakeups = Wakeups(self.trigger, self.options, self.config, parts.clock)
        self.lock = parts.lock
        self.exit_code = 0
        self._make_bus = parts.bus
        self.bus: Bus | None = None
        self.state = DaemonState.STARTING
        self.last: Result | None = None  # the last run, with the verdicts so far
        self._unjudged: Result | None = None  # the same without verdicts
        self.last_reconcile = 0.0  # wall-clock time of the last run
        self._ready = False
        self._why = ""  # why the last run could not happen
        self._problems: tuple[str, ...] = ()
        self._status = ""  # the last STATUS= sent after a run
        # Entries of ours in a state said once (shadowed, held), and what was said.
        self._said: dict[str, str] = {}
        self._findings: set[str] = set()  # the audit's findings said so far (str of each)
        self._waiting: list[Callable[[Result | None], None]] = []  # for the next run
        self._testing: set[Reply[list[Verdict]]] = set()  # Test calls whose probes still run
        self.stopping = False
        self._conflicts: frozenset[str] = frozenset()
        self.metrics = parts.metrics  # the metrics file (opt-in), or None
        self.counters = Counters()
        self.node_features = parts.node_features

    def notify(self, *assignments: str) -> None:
        """sd_notify: a failure is said once (until sending works again), never raised."""
        error = self._sd_notify(*assignments)
        if error and error != self._notify_error:
            self.log.emit(Message(Event.NOTIFY_FAILED, f"{error}; going on without telling it"))
        self._notify_error = error

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self.log.emit(Message(Event.STARTED, f"multiarchd {__version__} starting; policy "
                             f"{self.config.policy_path}, table {self.config.binfmt_dir}, "
                             f"{self.table}"))
        # Watch before the first look (list-then-watch): a change at any instant after this
        # causes a run. The mount table too: binfmt_misc mounted again is a new table.
        self.watcher.start()
        self._watch(None)
        self.loop.on_mount_change(self.poke)
        self.loop.on_signal(signal.SIGHUP, self.reload)
        self.loop.on_signal(signal.SIGTERM, self.stop)
        self.loop.on_signal(signal.SIGINT, self.stop)
        why = self.native_why()
        if why:
            self.log.emit(Message(Event.NATIVE_UNKNOWN, f"cannot tell native architectures by "
                                 f"running probes here ({why}); the catalog's runs lists "
                                 "decide"))
        if self.watchdog:
            self.loop.every(self.watchdog, lambda: self.notify("WATCHDOG=1"))
        self.request_run(self._first_run)

    def _first_run(self, _result: Result | None) -> None:
        if self.exit_code:  # a second daemon on this table: it has stopped already
            return
        # The first run made the files it needed (CPU models) here and now, as --once does:
        # from now on they are made on the workers too.
        self.reconciler.history.trials.files_here = False
        # Ready when the table is applied: the bus (and the probes) come after, on their own;
        # the link retries while the bus is away, and reconciling goes on meanwhile.
        self.ready()
        if self._make_bus is not None:
            self.bus = self._make_bus(self)
            self.bus.connect()
            if not self.bus.connected:  # (when it comes, bus_changed says so)
                self.notify(f"STATUS={self.status_line()}")

    def ready(self) -> None:
        """Tell systemd we are up, once: a reconnect to the bus later is not a new start."""
        if not self._ready:
            self._ready = True
            self.notify("READY=1", f"STATUS={self.status_line()}")

    def bus_changed(self) -> None:
        """The bus link came up or went away: STATUS says which."""
        if self._ready:
            self.notify(f"STATUS={self.status_line()}")

    def reload(self, reply: Reply[None] | None = None) -> None:
        """SIGHUP or D-Bus Reload: RELOADING=1, a run through the trigger, READY=1 after it."""
        now_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.notify("RELOADING=1", f"MONOTONIC_USEC={now_usec}")

        def done(_result: Result | None) -> None:
            if not self.stopping:  # (a stop meanwhile: STOPPING=1 follows, not READY=1)
                self.notify("READY=1", f"STATUS={self.status_line()}")
            if reply is not None:
                reply.value(None)
        self.request_run(done)

    def stop(self) -> None:
        self.stopping = True
        waiting, self._waiting = self._waiting, []
        for then in waiting:  # callers waiting for a run (D-Bus): told, not left hanging
            then(None)
        for reply in list(self._testing):
            reply.error(Stopping("multiarchd is stopping; ask again once it is back"))
        self._testing.clear()
        self.notify("STOPPING=1")
        self.log.emit(Message(Event.STOPPED, "multiarchd stopping; registrations stay in place"))
        self.watcher.stop()
        self.loop.quit()

    # -- what the D-Bus face (or anyone) asks ---------------------------------------------------
    @property
    def policy_path(self) -> str:
        return self.config.policy_path

    @property
    def table(self) -> str:
        """Whose binfmt_misc table this is, in words (kernel/owner.py)."""
        return describe(self.config.binfmt_dir)

    @property
    def report(self) -> Report | None:
        return self.last.report if self.last else None

    def reconcile(self, reply: Reply[tuple[str, tuple[Outcome, ...]]]) -> None:
        """Apply now (through the trigger, as any run): the state after it, and what was done.
        A rejected policy is an error."""
        def done(result: Result | None) -> None:
            if result is None:
                reply.error(Stopping("multiarchd is stopping") if self.stopping else
                            NotMounted(self._why))
            elif result.rejected:
                reply.error(PolicyRejected.of(result.report.problems))
            else:
                reply.value((self.state, result.report.outcomes))
        self.request_run(self._once_tried(done))

    def plan_now(self) -> tuple[Plan, tuple[Problem, ...]]:
        return self.reconciler.plan()

    def test(self, names: list[str], reply: Reply[list[Verdict]]) -> None:
        """Run the probes of these (default: every registered) architectures; the verdicts go
        to `reply` when the probes end (they run on workers: the loop goes on serving)."""
        try:
            if not names and self.last and self.last.rejected:  # "what the policy registers"?
                raise PolicyRejected.of(self.last.report.problems)
            want = self.last.desired if self.last else None
            # Each architecture once, in the order first named: a list repeating one name is
            # one probe, and the verdicts come back in a list as long as that (not as the call).
            arches = list(dict.fromkeys(self.catalog.resolve(names))) if names else \
                want.registered_arches() if want else []
        except (PolicyRejected, UnknownArchitecture) as e:
            reply.error(e)
            return
        self._testing.add(reply)

        def done(verdicts: list[Verdict]) -> None:
            if reply in self._testing:
                self._testing.discard(reply)
                reply.value(verdicts)
        self.verifier.test(arches, self.last, done)

    def explain(self, name: str, header: bytes, executable: bool) -> Explanation:
        """Which entry of the table would run a file its caller read (D-Bus Explain), decided
        as `multiarchctl explain` does, on the table as it is and the last run's desired state
        (no run for it)."""
        observed, mounted = observe(self.config)
        here = where(self.config, self.host_arch, observed, mounted, script=shebang(header))
        want = self.last.desired if self.last else None
        return explain(Program(name, header, executable), observed, want, self.catalog, here)

    def release(self, name: str, reply: Reply[Status]) -> None:
        """Take the new interpreter file of an architecture `hold: true` keeps on the one
        registered before (core/gate.py): it is still tried on its probe first. The state after
        the run goes to `reply`."""
        try:
            [arch] = self.catalog.resolve([name])
        except UnknownArchitecture as e:
            reply.error(e)
            return
        entry = OWNED_PREFIX + arch
        want = self.last.desired.want(entry) if self.last and self.last.desired else None
        status = next((s for s in self.report.statuses if s.entry == entry), None) \
            if self.report else None
        refused = nothing_to_release(arch, want, status.state.value if status else None,
                                     status.message if status else "")
        if refused is not None:
            reply.error(NotHeld(refused))
            return
        self.reconciler.history.released.add(entry)

        def done(result: Result | None) -> None:
            now = next((s for s in result.report.statuses if s.entry == entry), None) \
                if result else None
            if now is None:
                reply.error(Stopping("multiarchd is stopping") if self.stopping else
                            NotMounted(self._why))
            else:
                reply.value(now)
        self.request_run(self._once_tried(done))

    # -- runs: every one through the trigger -----------------------------------------------------
    def request_run(self, then: Callable[[Result | None], None]) -> None:
        """A run asked for explicitly (the start, SIGHUP, D-Bus): through the trigger, so the
        same rules hold as for any event (not while a policy file is half written); `then` gets
        the run's result (None: no run could happen)."""
        self._waiting.append(then)
        self.wakeups.ask()

    def _once_tried(self, then: Callable[[Result | None], None]
                    ) -> Callable[[Result | None], None]:
        """`then` with the first run after which no trial is running, with what every run
        until then did: a caller who asked to apply is told what became of a new file, not
        that it is being tried. (A trial ends within its time limit; its answer brings a run.)"""
        done_before: list[Outcome] = []

        def done(result: Result | None) -> None:
            if result is not None and self.reconciler.history.trials.busy:
                done_before.extend(result.report.outcomes)
                self._waiting.append(done)
            elif result is not None and done_before:
                then(replace(result, report=replace(
                    result.report, outcomes=(*done_before, *result.report.outcomes))))
            else:
                then(result)
        return done

    # -- triggers -------------------------------------------------------------------------------
    def poke(self, quiet: float | None = None, table: bool = False) -> None:
        """Something may have changed: run soon (bursts coalesce)."""
        self.wakeups.poke(quiet, table)

    def _on_file_event(self, path: str, kind: str) -> None:
        """From a watcher thread: handled on the loop."""
        self.loop.call_soon_threadsafe(lambda: self.wakeups.file_changed(path, kind))

    def _triggered(self) -> None:
        if self.wakeups.due(self.reconciler.table_as_left):
            result = self._run()
            waiting, self._waiting = self._waiting, []
            for then in waiting:
                then(result)

    # -- one run --------------------------------------------------------------------------------
    def _run(self) -> Result | None:
        taken = self.lock()
        if taken is not None:  # a second daemon on this table: say whose it is, and leave
            self.log.emit(Message(Event.SECOND_DAEMON, taken))
            self.notify(f"STATUS={taken}")
            self.exit_code = 1
            self.stop()
            return None
        step = self.reconciler.run()
        self.trigger.requeue(step.requeue_after)
        if step.result is None:
            self._no_run(step)
            return None
        self._unjudged = step.result
        result = self.verifier.judge(step.result)  # probes start; their verdicts come later
        self.last, self.last_reconcile = result, time.time()
        c = self.counters
        self.counters = replace(c, runs=c.runs + 1, repairs=c.repairs + len(result.drift),
                                conflicts=c.conflicts + len(result.conflicts - self._conflicts),
                                kernel_refusals=c.kernel_refusals + len(result.report.failures))
        self._tell(result)
        if self._watch(result):
            # The run looked before these watches were in place (an emulator's directory made
            # just now): look once more, so that a change in between is not missed.
            self.poke(self.options.table_debounce)
        if self.bus is not None:
            self.bus.after_run(result, bool(result.report.outcomes))
        self._export()
        return result

    def _watch(self, result: Result | None) -> bool:
        """Watch what this run (or, before the first, the configuration) calls for; whether a
        watch was added."""
        watches = watches_for(self.config, result, self.catalog)
        self.wakeups.followed = followed(watches)
        return self.watcher.update(watches)

    def _export(self) -> None:
        if self.metrics is not None:
            self.metrics.export(self.state, self.last.report if self.last else None,
                                replace(self.counters, probe_failures=self.verifier.failures),
                                self.last_reconcile)
        if self.node_features is not None:
            self.node_features.publish(self.last, not private(self.config.binfmt_dir))

    def _verdicts_arrived(self) -> None:
        """Probes said something: the report (status, D-Bus) says it too."""
        if self._unjudged is None or self.last is None:
            return
        judged = self.verifier.apply(self._unjudged)
        if judged.report == self.last.report:
            return
        line = self._status_line(self.last)
        self.last = judged
        self.state = overall(judged.report)
        if self._status_line(judged) != line:
            self.notify(f"STATUS={self._status_line(judged)}")
        if self.bus is not None:
            self.bus.after_run(judged, False)
        self._export()

    def _no_run(self, step: Step) -> None:
        self._why = step.why
        before = self.state
        if step.waiting:
            if self.state is not DaemonState.WAITING:
                self.log.emit(Message(Event.WAITING, f"{step.why}; waiting for it to "
                                     "appear"))
                self._status = f"waiting: {step.why}"
                self.notify(f"STATUS={self._status}")
            self.state = DaemonState.WAITING  # the mount table wakes us (watched since start)
        else:
            self.log.emit(Message(Event.RUN_FAILED, f"{step.why}; will retry"))
            self.state = DaemonState.DEGRADED
            self._status = f"degraded: {step.why}"
            self.notify(f"STATUS={self._status}")
        if self.bus is not None and self.state != before:
            self.bus.after_run(None, False)  # State changed with no run: PropertiesChanged
        self._export()

    def _tell(self, result: Result) -> None:
        for message in change_messages(result.report.outcomes, result.drift):
            self.log.emit(message)
        problems = tuple(str(p) for p in result.report.problems)
        if problems != self._problems:  # say it once per distinct policy, not every run
            if problems:
                for message in problem_messages(result.report.problems, result.rejected,
                                              last_good=result.desired is not None):
                    self.log.emit(message)
            elif self._problems:
                self.log.emit(Message(Event.POLICY_ACCEPTED, "policy accepted; applying it"))
            self._problems = problems
        said = {}
        for st in result.report.statuses:
            told = state_message(st)
            if told is not None:
                said[st.entry] = told.message
                if self._said.get(st.entry) != told.message:  # once, when it starts
                    self.log.emit(told)
        self._said = said
        for f in result.report.findings:
            if str(f) not in self._findings:  # once while it lasts
                self.log.emit(finding_message(f))
        self._findings = {str(f) for f in result.report.findings}
        for entry in sorted(result.conflicts - self._conflicts):
            times = self.reconciler.history.repairs.get(entry, ())
            self.log.emit(conflict_message(entry, len(times), self.options.repair_window))
        self._conflicts = result.conflicts
        state, line = overall(result.report), self._status_line(result)
        if line != self._status or result.report.outcomes:  # (a new problem says so too)
            self.notify(f"STATUS={line}")
        self.state, self._status = state, line

    def status_line(self) -> str:
        if self.last:
            line = self._status_line(self.last)
        else:
            line = f"{self.state}: {self._why}" if self._why else self.state
        if self.bus is not None and not self.bus.connected:
            line += "; D-Bus unavailable (retrying)"
        return line

    def _status_line(self, result: Result) -> str:
        if result.rejected:
            return f"policy error, keeping the last good registrations: {result.report.problems[0]}"
        return f"{overall(result.report)}: {result.report.summary()}"

