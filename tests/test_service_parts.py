"""The service's rules, one part at a time, with fakes on a virtual clock: debounce, coalescing,
the maximum delay, retry back-off, conflict back-off and release, waiting for a mount, READY and
STATUS in order, probe bookkeeping. No root, no kernel, no sleeping: microseconds each."""

from __future__ import annotations

import errno
import signal
import struct
from dataclasses import replace
from pathlib import Path

import pytest

from multiarchd.catalog import load_catalog
from multiarchd.core.desired import Desired, Want
from multiarchd.core.messages import Event
from multiarchd.core.plan import Action, Kind, Outcome, Plan
from multiarchd.core.probes import Verdict
from multiarchd.core.report import State, build_report
from multiarchd.core.result import Result
from multiarchd.kernel.apply import apply
from multiarchd.kernel.refusals import KernelError
from multiarchd.model.errors import NotMounted
from multiarchd.model.flags import Flags
from multiarchd.model.options import Config, Options
from multiarchd.model.policy import ForeignMode, Policy
from multiarchd.model.registration import Registration
from multiarchd.model.observed import Entry, Observed
from multiarchd.reconciler.history import History
from multiarchd.reconciler.reconciler import Reconciler
from multiarchd.reconciler.run import ensure_mounted
from multiarchd.service.exporter import Exporter
from multiarchd.service.service import Parts, Service
from multiarchd.service.trigger import Trigger
from multiarchd.service.verifier import Verifier

from tests.support.fakes import (Answers, Deferred, FakeBus, FakeLoop, FakeTable, FakeWatcher,
                                 Inline, Notes, FakeLog, Script, result)

S390X = Registration("multiarch-s390x", "/usr/bin/qemu-s390x-static", Flags.parse("F"))
WANT = Desired((Want("s390x", "arch", "multiarch-s390x", S390X),), ForeignMode.KEEP, ())
HELD = Observed((Entry(S390X, True, 1),))
GONE = Observed(())


# -- the trigger ------------------------------------------------------------------------------
def trigger(max_delay: float = 1.0) -> tuple[Trigger, FakeLoop, list[float]]:
    loop = FakeLoop()
    fired: list[float] = []
    return Trigger(loop, loop, lambda: fired.append(loop.now), max_delay), loop, fired


def test_a_poke_runs_once_events_have_been_quiet() -> None:
    t, loop, fired = trigger()
    t.poke(0.05)
    loop.advance(0.049)
    assert fired == []
    loop.advance(0.001)
    assert fired == [pytest.approx(0.05)]


def test_a_burst_of_pokes_coalesces_into_one_run_after_the_last() -> None:
    t, loop, fired = trigger()
    for _ in range(3):
        t.poke(0.05)
        loop.advance(0.02)
    loop.advance(1)
    assert fired == [pytest.approx(0.09)]


def test_a_steady_stream_still_runs_at_the_maximum_delay() -> None:
    t, loop, fired = trigger(max_delay=1.0)
    while loop.now < 2.5:
        t.poke(0.05)
        loop.advance(0.03)
    assert fired[:2] == [pytest.approx(1.0, abs=0.03), pytest.approx(2.0, abs=0.06)]


def test_a_short_quiet_does_not_cut_short_a_longer_one() -> None:
    t, loop, fired = trigger()
    t.poke(0.05)  # a policy edit wants the editor's quiet
    loop.advance(0.01)
    t.poke(0.005)  # then a table event
    loop.advance(1)
    assert fired == [pytest.approx(0.05)]


def test_requeue_and_pokes_share_one_timer_and_a_run_clears_both() -> None:
    loop = FakeLoop()
    fired: list[float] = []

    def run() -> None:  # as the service's runs do: each says when to look again
        fired.append(loop.now)
        t.requeue(300.0)
    t = Trigger(loop, loop, run, 1.0)
    t.requeue(5.0)
    t.poke(0.05)
    assert loop.pending() == [pytest.approx(0.05)]
    loop.advance(10)
    assert fired == [pytest.approx(0.05)]  # the run covered the requeue too
    assert loop.pending() == [pytest.approx(300.05)]


def test_a_firing_that_runs_nothing_keeps_a_requeue_not_yet_due() -> None:
    t, loop, fired = trigger()  # (the table was as the run left it: no run)
    t.requeue(5.0)
    t.poke(0.05)
    loop.advance(10)
    assert fired == [pytest.approx(0.05), pytest.approx(5.0)]
    assert t.requeued


# -- the reconciler's next step ---------------------------------------------------------------
def reconciler(script: Script, table: FakeTable | None = None, standard_place: bool = False,
               options: Options = Options()) -> tuple[Reconciler, FakeLoop, FakeTable]:
    loop = FakeLoop()
    table = table or FakeTable()
    return (Reconciler(Config("arches.yaml", "binfmt"), options, table, clock=loop,
                       run_once=script, standard_place=standard_place), loop, table)


def test_kernel_refusals_are_retried_with_doubling_back_off_up_to_the_safety_timer() -> None:
    script = Script(*[result(refusals=1)] * 8, result(), result(refusals=1))
    r, _, _ = reconciler(script)
    waits = [r.run().requeue_after for _ in range(10)]
    assert waits == [5, 10, 20, 40, 80, 160, 300, 300, 300, 5]


def test_a_refusal_for_good_is_not_retried_until_the_policy_changes() -> None:
    r, _, _ = reconciler(Script(result(refusals=1, terminal=True)))
    assert [r.run().requeue_after for _ in range(3)] == [300, 300, 300]  # no back-off loop

    history = History()
    register = Action(Kind.REGISTER, "multiarch-s390x", "wanted", S390X)
    history.remember(WANT, GONE, (Outcome(register, "refused (EINVAL)", terminal=True),),
                   frozenset(), now=0.0)
    todo, _, skipped = history.hold_back(Plan((register,)), frozenset(), now=0.0)
    assert todo == Plan(()) and skipped == {"multiarch-s390x": "refused (EINVAL)"}
    other = Registration(S390X.name, S390X.interpreter, Flags.parse("FP"))
    edited = Desired((Want("s390x", "arch", S390X.name, other),), ForeignMode.KEEP, ())
    history.remember(edited, GONE, (), frozenset(), now=1.0)  # the policy changed
    assert history.hold_back(Plan((register,)), frozenset(), now=1.0)[0] == Plan((register,))


def test_apply_tells_refusals_for_good_from_passing_ones() -> None:
    class Refusing:
        def __init__(self, err: int) -> None:
            self.err = err

        def register(self, reg: Registration) -> None:
            raise KernelError(reg.name, "register", self.err, f"refused ({self.err})")

        def remove(self, name: str) -> None: ...

        def set_enabled(self, name: str, enabled: bool) -> None: ...

    register = Action(Kind.REGISTER, "multiarch-s390x", "wanted", S390X)
    for err, terminal in ((errno.EINVAL, True), (errno.ENAMETOOLONG, True),
                          (errno.ENOENT, False), (errno.EBUSY, False)):
        [outcome] = apply(Plan((register,)), Refusing(err))
        assert not outcome.ok and outcome.terminal is terminal


def test_a_failed_read_is_reported_and_retried_not_fatal() -> None:
    r, _, _ = reconciler(Script(OSError(errno.EIO, "Input/output error")))
    step = r.run()
    assert step.result is None and not step.waiting
    assert step.why == "reconcile failed: [Errno 5] Input/output error"
    assert step.requeue_after == 5


def test_not_mounted_means_waiting_and_only_binfmt_misc_own_place_is_mounted() -> None:
    r, _, table = reconciler(Script(result()), FakeTable(is_mounted=False))
    step = r.run()
    assert step.waiting and step.result is None and table.mounts == 0
    assert step.why == "binfmt_misc is not mounted at binfmt"
    r, _, table = reconciler(Script(result()), FakeTable(is_mounted=False), standard_place=True)
    assert r.run().result is not None and table.mounts == 1
    no_mount = Options(mount=False)
    r, _, table = reconciler(Script(result()), FakeTable(is_mounted=False), True, no_mount)
    assert r.run().waiting and table.mounts == 0
    r, _, _ = reconciler(Script(NotMounted("gone meanwhile")))
    assert r.run().waiting


def test_private_mounts_over_an_inherited_table_and_only_private_does() -> None:
    table = FakeTable(inherited=True)
    assert ensure_mounted(table, True, private=True) and table.mounts == 1 and table.own()
    table = FakeTable(inherited=True)
    assert ensure_mounted(table, True) and table.mounts == 0  # the table there is the one
    with pytest.raises(NotMounted, match="an outer user namespace's, not this one's own"):
        ensure_mounted(FakeTable(inherited=True), False, private=True)  # --no-mount: said
    table = FakeTable(inherited=True)
    r = Reconciler(Config("arches.yaml", "binfmt", private=True), Options(), table,
                   clock=FakeLoop(), run_once=Script(result()), standard_place=True)
    assert r.run().result is not None and table.mounts == 1


def test_a_fight_backs_off_after_the_limit_and_is_released_after_the_window() -> None:
    history = History(repair_limit=3, window=60.0)
    history.remember(WANT, HELD, (), frozenset(), now=0.0)  # it was right once
    repaired = (Outcome(Action(Kind.REGISTER, "multiarch-s390x", "drift", S390X)),)
    for now in (0.0, 1.0, 2.0):
        drift = history.drift(WANT, GONE)
        assert drift == {"multiarch-s390x"} and not history.blocked(drift, now)
        history.remember(WANT, HELD, repaired, drift, now)
    assert history.blocked(frozenset({"multiarch-s390x"}), 3.0) == {"multiarch-s390x"}
    assert history.next_release(3.0) == pytest.approx(57.0)

    # The reconciler asks to look again just after the release, not at the safety timer.
    r, loop, _ = reconciler(Script(result()))
    r.history = history
    loop.now = 3.0
    assert r.run().requeue_after == pytest.approx(57.01)
    assert not history.blocked(frozenset({"multiarch-s390x"}), 60.5)


def test_a_policy_edit_is_not_drift() -> None:
    history = History()
    history.remember(WANT, HELD, (), frozenset(), now=0.0)
    other = Registration("multiarch-s390x", "/usr/bin/qemu-s390x-static", Flags.parse("FP"))
    edited = Desired((Want("s390x", "arch", "multiarch-s390x", other),), ForeignMode.KEEP, ())
    assert history.drift(edited, HELD) == frozenset()


# -- the service ------------------------------------------------------------------------------
class Rig:
    """A Service with fake loop, watcher, notify and log, on a scripted reconciler."""

    def __init__(self, tmp: Path, script: Script, table: FakeTable | None = None,
                 options: Options = Options(mount=False), bus: bool = False,
                 background: Inline | Deferred | None = None,
                 metrics: Exporter | None = None, watchdog: float | None = None) -> None:
        self.loop = FakeLoop()
        self.notes = Notes()
        self.log = FakeLog()
        self.table = table or FakeTable()
        self.script = script
        self.probed: list[list[str]] = []
        config = Config(str(tmp / "etc" / "arches.yaml"), str(tmp / "binfmt"))
        reconciler = Reconciler(config, options, self.table, clock=self.loop, run_once=script)
        verifier = Verifier(self.probe, self.log, background or Inline())
        self.buses: list[FakeBus] = []

        def make_bus(service: Service) -> FakeBus:
            self.buses.append(FakeBus(service.bus_changed))
            return self.buses[-1]
        self.service = Service(Parts(
            reconciler, verifier, replace(options, watchdog=watchdog), load_catalog(), "x86_64",
            self.loop, self.loop, FakeWatcher, self.notes, self.log,
            bus=make_bus if bus else None, metrics=metrics))

    def probe(self, arches: list[str], runs: int = 1) -> list[Verdict]:
        self.probed.append(arches)
        return [Verdict(a, "ok", "probe ran") for a in arches]

    @property
    def watcher(self) -> FakeWatcher:
        assert isinstance(self.service.watcher, FakeWatcher)
        return self.service.watcher


def test_ready_comes_once_after_the_first_run_with_its_status(tmp_path: Path) -> None:
    rig = Rig(tmp_path, Script(result(changes=2)))
    rig.service.start()  # without D-Bus, ready at once
    rig.service.ready()  # a later call (a bus reconnect) is not a new start
    assert rig.notes.sent == ["STATUS=converged: 0 active", "READY=1",
                              "STATUS=converged: 0 active"]
    assert rig.watcher.started and rig.watcher.watches


def test_ready_does_not_wait_for_the_bus_and_status_says_where_it_is(tmp_path: Path) -> None:
    rig = Rig(tmp_path, Script(result(changes=2), result()), bus=True)
    rig.service.start()
    [bus] = rig.buses
    assert bus.connects == 1
    assert rig.notes.sent == ["STATUS=converged: 0 active", "READY=1",
                              "STATUS=converged: 0 active",  # ready before the bus is asked
                              "STATUS=converged: 0 active; D-Bus unavailable (retrying)"]
    bus.owned()
    assert rig.notes.sent[-1] == "STATUS=converged: 0 active"
    rig.service.poke()
    rig.loop.advance(1)
    assert bus.runs == [False]  # the first run came before the bus; this one changed nothing
    bus.owned()  # the bus came back: no second READY
    assert rig.notes.sent.count("READY=1") == 1


def test_waits_for_a_mount_without_polling_and_runs_when_it_appears(tmp_path: Path) -> None:
    rig = Rig(tmp_path, Script(result()), FakeTable(is_mounted=False))
    rig.service.start()
    assert rig.service.state == "waiting" and rig.script.runs == 0
    waiting = f"STATUS=waiting: binfmt_misc is not mounted at {tmp_path}/binfmt"
    assert rig.notes.sent == [waiting, "READY=1", waiting]
    assert len(rig.loop.mount_watchers) == 1
    rig.loop.mount_watchers[0]()  # some unrelated mount: still waiting, said once
    rig.loop.advance(1)
    assert rig.service.state == "waiting" and len(rig.notes.sent) == 3
    rig.table.is_mounted = True
    rig.loop.mount_watchers[0]()
    rig.loop.advance(0.05)
    assert rig.service.state == "converged" and rig.script.runs == 1
    assert len(rig.loop.mount_watchers) == 1


def test_file_events_poke_with_their_own_quiet_and_coalesce(tmp_path: Path) -> None:
    rig = Rig(tmp_path, Script(result()))
    rig.service.start()
    assert rig.script.runs == 1
    for _ in range(3):  # an editor saving in steps
        rig.watcher.on_event(str(tmp_path / "etc" / "arches.yaml"), "moved")
        rig.loop.advance(0.01)
    rig.loop.advance(0.039)  # 49 ms after the last save
    assert rig.script.runs == 1
    rig.loop.advance(0.001)
    assert rig.script.runs == 2
    rig.watcher.on_event(str(tmp_path / "binfmt" / "register"), "modified")  # a short quiet
    rig.loop.advance(0.005)
    assert rig.script.runs == 3


def test_a_policy_file_written_in_place_is_applied_once_closed(tmp_path: Path) -> None:
    rig = Rig(tmp_path, Script(result()))
    rig.service.start()
    policy = str(tmp_path / "etc" / "arches.yaml")
    rig.watcher.on_event(policy, "modified")  # truncated, half written ...
    rig.loop.advance(0.5)
    assert rig.script.runs == 1  # ... not applied while the writer has it open
    rig.watcher.on_event(policy, "closed")
    rig.loop.advance(0.05)
    assert rig.script.runs == 2
    rig.watcher.on_event(policy, "modified")  # a writer that never closes: max_delay bounds it
    rig.loop.advance(1.1)
    assert rig.script.runs == 3


def test_the_one_timer_carries_retries_and_the_safety_run(tmp_path: Path) -> None:
    rig = Rig(tmp_path, Script(result(refusals=1), result(refusals=1), result()))
    rig.service.start()
    assert rig.loop.pending() == [5.0]
    rig.loop.advance(5)
    assert rig.script.runs == 2 and rig.loop.pending() == [15.0]
    rig.loop.advance(10)
    assert rig.script.runs == 3 and rig.loop.pending() == [315.0]  # the safety timer


def test_reload_says_reloading_then_ready(tmp_path: Path) -> None:
    rig = Rig(tmp_path, Script(result()))
    rig.service.start()
    rig.notes.sent.clear()
    rig.loop.signals[signal.SIGHUP]()
    assert rig.notes.sent[0] == "RELOADING=1" and rig.notes.sent[1].startswith("MONOTONIC_USEC=")
    assert rig.notes.sent[2:] == ["READY=1", "STATUS=converged: 0 active"]
    assert rig.script.runs == 2


def test_sigterm_stops_watching_and_leaves_the_loop(tmp_path: Path) -> None:
    rig = Rig(tmp_path, Script(result()))
    rig.service.start()
    rig.loop.run()
    rig.loop.signals[signal.SIGTERM]()
    assert rig.notes.sent[-1] == "STOPPING=1"
    assert rig.watcher.stopped and not rig.loop.running
    assert rig.log.texts()[-1] == "multiarchd stopping; registrations stay in place"


def test_a_failed_run_says_degraded_and_is_retried(tmp_path: Path) -> None:
    rig = Rig(tmp_path, Script(OSError(errno.EACCES, "Permission denied"), result()))
    rig.service.start()
    assert rig.service.state == "degraded"
    assert rig.notes.sent[0] == "STATUS=degraded: reconcile failed: [Errno 13] Permission denied"
    rig.loop.advance(5)
    assert rig.service.state == "converged"


def test_a_run_that_meets_a_bug_says_degraded_answers_its_callers_and_is_retried(
        tmp_path: Path) -> None:
    """(A bad file once raised struct.error out of a run: nothing was repaired any more, the
    state stayed converged and a Reconcile waited for ever.)"""
    rig = Rig(tmp_path, Script(result(), struct.error("unpack_from requires a buffer"),
                               result()))
    rig.service.start()
    answered: list[Result | None] = []
    rig.service.request_run(answered.append)
    rig.loop.advance(1)
    assert answered == [None] and rig.service.state == "degraded"
    raised = next(n for n, line in enumerate(Path(Script.__call__.__code__.co_filename)
                                             .read_text().splitlines(), 1)
                  if line.strip() == "raise answer")  # (where Script raises it)
    assert rig.notes.sent[-1] == "STATUS=degraded: reconcile failed: error: unpack_from " \
        f"requires a buffer (a bug, at fakes.py:{raised}: please report it)"
    rig.loop.advance(5)
    assert rig.service.state == "converged"


# -- the verifier -----------------------------------------------------------------------------
def active(reg: Registration, verify: bool = True) -> Result:
    want = Desired((Want("s390x", "arch", reg.name, reg),), ForeignMode.KEEP, ())
    observed = Observed((Entry(reg, True, 1),))
    return Result(Policy(files=("p",), verify=verify), want, Plan(()),
                  build_report(want, observed))


def test_probes_run_once_per_registration_and_again_when_it_changes(tmp_path: Path) -> None:
    rig = Rig(tmp_path, Script(result()))
    verifier = rig.service.verifier
    judged = verifier.judge(active(S390X))
    assert rig.probed == [["s390x"]] and judged.report.statuses[0].state is State.VERIFIED
    assert verifier.judge(active(S390X)).report.statuses[0].state is State.VERIFIED
    assert rig.probed == [["s390x"]]
    replaced = Registration(S390X.name, S390X.interpreter, Flags.parse("FP"))
    verifier.judge(active(replaced))
    assert rig.probed == [["s390x"], ["s390x"]]
    verifier.judge(active(Registration(S390X.name, "/opt/q", Flags()), verify=False))
    assert len(rig.probed) == 2


def test_a_file_proven_on_another_kernel_or_failed_is_probed_as_often_as_a_new_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Verdicts are the kernel's: under a new one, a file proven before runs its probe RUNS
    times, as a new file's trial does (a crash that comes and goes depends on the kernel); so
    does one whose last verdict failed. Otherwise once: it was tried before it was registered."""
    from multiarchd import identity
    from multiarchd.host.probing import RUNS
    from multiarchd.service.proven import Proven
    emu = tmp_path / "emu"
    emu.write_bytes(b"a" * 100)
    reg = Registration("multiarch-s390x", str(emu), Flags.parse("F"), b"\x7fELF", None)
    kept = str(tmp_path / "verdicts.json")
    asked: list[tuple[list[str], int]] = []
    answer = "ok"

    def start() -> None:
        def probe(arches: list[str], runs: int) -> list[Verdict]:
            asked.append((arches, runs))
            return [Verdict(a, answer, "probe ran") for a in arches]
        Verifier(probe, FakeLog(), Inline(), proven=Proven(kept)).judge(active(reg))
    start()
    assert asked == [(["s390x"], 1)]  # nothing kept: once
    start()
    assert len(asked) == 1  # proven at an earlier start, on this kernel
    monkeypatch.setattr(identity, "kernel", lambda: "6.99.0 #1 SMP")
    answer = "failed"
    start()
    assert asked[-1] == (["s390x"], RUNS)  # proven on another kernel only
    answer = "untested"  # stopped with the service: what was kept stays
    start()
    assert asked[-1] == (["s390x"], RUNS)  # failed last time
    answer = "ok"
    start()
    assert asked[-1] == (["s390x"], RUNS)  # failed the time before
    start()
    assert len(asked) == 4  # proven now, on this kernel


def test_a_hung_probe_holds_up_nothing_and_its_verdict_shows_when_it_comes(
        tmp_path: Path) -> None:
    background = Deferred()
    rig = Rig(tmp_path, Script(active(S390X)), background=background)
    rig.service.start()  # the probe is running ... and hangs
    assert rig.notes.sent == ["STATUS=converged: 1 active", "READY=1",
                              "STATUS=converged: 1 active"]
    rig.service.poke()
    rig.loop.advance(1)  # runs go on meanwhile (and do not start the same probe again)
    assert rig.script.runs == 2 and len(background.held) == 1
    background.finish()
    assert rig.notes.sent[-1] == "STATUS=converged: 1 active (1 verified)"
    assert rig.service.report and rig.service.report.statuses[0].state is State.VERIFIED


def test_a_write_that_never_reads_back_is_counted_and_stopped() -> None:
    """Even multiarchd's own misunderstanding (the kernel gives back something else) cannot
    make it rewrite an entry more often than the repair limit allows."""
    history = History(repair_limit=3, window=60.0)
    odd = Registration(S390X.name, S390X.interpreter + " ", S390X.flags)  # what comes back
    misread = Observed((Entry(odd, True, 1),))
    register = (Outcome(Action(Kind.REGISTER, S390X.name, "wanted", S390X)),)
    for now in (0.0, 1.0, 2.0):
        assert not history.blocked(frozenset(history.unsettled), now)
        history.remember(WANT, misread, register, frozenset(), now)
    todo, _, why = history.hold_back(Plan(tuple(o.action for o in register)), frozenset(), 3.0)
    assert todo == Plan(()) and "gives back something else" in why["multiarch-s390x"]
    history.remember(WANT, HELD, register, frozenset(), 70.0)  # it reads back: settled
    assert history.unsettled == set()


def test_a_state_change_without_a_run_is_told_on_the_bus(tmp_path: Path) -> None:
    table = FakeTable()
    rig = Rig(tmp_path, Script(result()), table, bus=True)
    rig.service.start()
    [bus] = rig.buses
    table.is_mounted = False  # unmounted: the next run cannot happen
    rig.service.poke()
    rig.loop.advance(1)
    assert rig.service.state == "waiting" and bus.runs[-1] is False and len(bus.runs) == 1


def test_a_watch_added_after_a_run_is_followed_by_one_more_look(tmp_path: Path) -> None:
    # The run saw the emulator's directory missing and watches its nearest parent from now on;
    # what happened there between the run's look and the new watch is seen by one more run.
    emu = Registration("multiarch-s390x", str(tmp_path / "later" / "bin" / "qemu-s390x"),
                       Flags.parse("F"))
    wants = Desired((Want("s390x", "arch", "multiarch-s390x", emu),), ForeignMode.KEEP, ())
    rig = Rig(tmp_path, Script(replace(result(), desired=wants)))
    rig.service.start()
    assert rig.script.runs == 1
    assert any(w.directory == str(tmp_path) and "later" in (w.names or ())
               for w in rig.watcher.watches)
    rig.loop.advance(Options().table_debounce)
    assert rig.script.runs == 2
    rig.loop.advance(100)  # the watches are the same now: no third look before the safety run
    assert rig.script.runs == 2


def test_metrics_follow_each_run_and_an_unwritable_file_is_said_once(tmp_path: Path) -> None:
    written: list[str] = []
    repaired = replace(result(refusals=1), drift=frozenset({"multiarch-s390x"}),
                       conflicts=frozenset({"multiarch-s390x"}))
    log = FakeLog()
    rig = Rig(tmp_path, Script(result(), repaired), metrics=Exporter(written.append, log))
    rig.service.start()
    assert 'multiarchd_state{state="converged"} 1' in written[-1]
    assert "multiarchd_runs_total 1" in written[-1]
    rig.service.poke()
    rig.loop.advance(1)
    last = written[-1].splitlines()
    for counted in ("runs_total 2", "repairs_total 1", "conflicts_total 1",
                    "kernel_refusals_total 1", "probe_failures_total 0"):
        assert f"multiarchd_{counted}" in last, written[-1]

    def unwritable(text: str) -> None:
        raise PermissionError(13, "Permission denied", str(tmp_path / "m.prom"))
    rig.service.metrics = Exporter(unwritable, rig.log)
    for _ in range(3):
        rig.service.poke()
        rig.loop.advance(1)
    said = [r for r in rig.log.sent if r.event is Event.METRICS_UNWRITABLE]
    assert len(said) == 1 and "Permission denied" in said[0].message
    assert rig.script.runs == 5  # the table is kept all the same


def test_a_failing_notify_is_said_once_and_holds_up_nothing(tmp_path: Path) -> None:
    rig = Rig(tmp_path, Script(result()))
    rig.notes.error = "cannot notify systemd at /run/x: No such file or directory"
    rig.service.start()
    for _ in range(3):
        rig.service.poke()
        rig.loop.advance(1)
    said = [r for r in rig.log.sent if r.event is Event.NOTIFY_FAILED]
    assert len(said) == 1 and "No such file or directory" in said[0].message
    assert rig.script.runs == 4
    rig.notes.error = None  # it works again; a new failure is said again
    rig.service.reload()
    rig.notes.error = "cannot notify systemd at /run/x: Resource temporarily unavailable"
    rig.loop.running = True
    rig.loop.signals[signal.SIGTERM]()  # and SIGTERM still stops
    assert [r.event for r in rig.log.sent].count(Event.NOTIFY_FAILED) == 2
    assert not rig.loop.running and rig.watcher.stopped


def test_table_events_from_the_runs_own_writes_make_no_new_run(tmp_path: Path) -> None:
    table = FakeTable(observed=HELD)
    rig = Rig(tmp_path, Script(result()), table)
    rig.service.start()
    rig.service.reconciler.history.last_table = HELD  # (the scripted run messages nothing)
    binfmt = str(tmp_path / "binfmt")
    for kind in ("modified", "closed", "created"):  # what writing `register` makes
        rig.watcher.on_event(f"{binfmt}/register" if kind != "created"
                             else f"{binfmt}/multiarch-s390x", kind)
    rig.loop.advance(1)
    assert rig.script.runs == 1  # still as the run left it
    assert rig.loop.pending() == [pytest.approx(300.0)]  # the safety run is still due
    table.observed = GONE  # someone else removed it
    rig.watcher.on_event(f"{binfmt}/multiarch-s390x", "deleted")
    rig.loop.advance(1)
    assert rig.script.runs == 2
    rig.watcher.on_event(str(tmp_path / "usr-bin" / "qemu-s390x-static"), "modified")
    rig.loop.advance(1)
    assert rig.script.runs == 3  # an interpreter event always runs


def test_the_watchdog_is_pinged_at_each_interval(tmp_path: Path) -> None:
    """WATCHDOG_USEC=800000 gives 0.2 s (watchdog_interval, below): on the virtual clock, a
    second holds five pings and no more, whatever the runs do meanwhile."""
    rig = Rig(tmp_path, Script(result()), watchdog=0.2)
    rig.service.start()
    rig.loop.advance(0.19)
    assert rig.notes.sent.count("WATCHDOG=1") == 0
    rig.loop.advance(1.0 - 0.19)
    assert rig.notes.sent.count("WATCHDOG=1") == 5


@pytest.mark.parametrize("usec,interval", [("30000000", 7.5), ("1", 0.1), ("-5", None),
                                           ("abc", None), ("1e6", None), ("0", None),
                                           ("", None)])
def test_a_watchdog_timeout_systemd_could_not_mean_asks_for_no_busy_loop(
        monkeypatch: pytest.MonkeyPatch, usec: str, interval: float | None) -> None:
    from multiarchd.service.systemd_glue import watchdog_interval
    monkeypatch.setenv("WATCHDOG_USEC", usec)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert watchdog_interval() == interval


def test_every_explicit_ask_waits_for_a_half_written_policy_as_events_do(tmp_path: Path) -> None:
    """SIGHUP (and D-Bus, which asks the same way) goes through the trigger: a policy file open
    for writing is not read half-written, whoever asks."""
    rig = Rig(tmp_path, Script(result()))
    rig.service.start()
    assert rig.script.runs == 1
    policy = str(tmp_path / "etc" / "arches.yaml")
    rig.watcher.on_event(policy, "modified")
    rig.loop.advance(0)
    rig.loop.signals[signal.SIGHUP]()
    assert rig.script.runs == 1 and "RELOADING=1" in rig.notes.sent
    assert "READY=1" not in rig.notes.sent[rig.notes.sent.index("RELOADING=1"):]
    rig.watcher.on_event(policy, "closed")
    rig.loop.advance(0.05)
    assert rig.script.runs == 2
    assert "READY=1" in rig.notes.sent[rig.notes.sent.index("RELOADING=1"):]


def test_a_reconcile_asked_for_is_answered_after_its_run(tmp_path: Path) -> None:
    rig = Rig(tmp_path, Script(result(changes=1)))
    rig.service.start()
    answer = Answers()
    rig.watcher.on_event(str(tmp_path / "etc" / "arches.yaml"), "modified")
    rig.loop.advance(0)
    rig.service.reconcile(answer)
    assert answer.got == []  # waits for the writer, like any run
    rig.watcher.on_event(str(tmp_path / "etc" / "arches.yaml"), "closed")
    rig.loop.advance(0.05)
    [got] = answer.got
    assert isinstance(got, tuple) and got[0] == "converged" and len(got[1]) == 1
    rig.service.reconcile(answer)
    assert len(answer.got) == 2  # nothing being written: at once
    pending = Answers()
    rig.watcher.on_event(str(tmp_path / "etc" / "arches.yaml"), "modified")
    rig.loop.advance(0)
    rig.service.reconcile(pending)
    rig.service.stop()  # told, not left hanging
    assert len(pending.got) == 1 and "stopping" in str(pending.got[0])


def test_an_editors_swap_file_beside_the_policy_holds_up_no_save(tmp_path: Path) -> None:
    """Vim keeps `.arches.yaml.swp` open and writes it now and then: only files the policy is
    read from are waited for while open, so a save is applied after the usual quiet."""
    rig = Rig(tmp_path, Script(result()))
    rig.service.start()
    etc = tmp_path / "etc"
    rig.watcher.on_event(str(etc / ".arches.yaml.swp"), "modified")  # open for the session
    rig.watcher.on_event(str(etc / "arches.yaml"), "moved")  # backup made by rename
    rig.watcher.on_event(str(etc / "arches.yaml"), "modified")  # the new file written ...
    rig.watcher.on_event(str(etc / "arches.yaml"), "closed")  # ... and closed
    rig.watcher.on_event(str(etc / "arches.yaml"), "modified")  # its mode set (IN_ATTRIB)
    rig.watcher.on_event(str(etc / "arches.yaml~"), "deleted")
    rig.watcher.on_event(str(etc / ".arches.yaml.swp"), "modified")
    rig.loop.advance(0.05)
    assert rig.script.runs == 2  # 50 ms after the last event, not max_delay
    rig.watcher.on_event(str(etc / "arches.d" / "50-x.yaml"), "modified")  # a drop-in, open
    rig.loop.advance(0.5)
    assert rig.script.runs == 2


def test_a_file_appended_beside_the_policy_neither_holds_up_a_save_nor_runs(
        tmp_path: Path) -> None:
    """A log appended every 20 ms beside the policy (each append closes the file, and the
    directory says "something changed" each time): a save is applied after the usual quiet,
    and the log alone asks for no run; a rename there still does."""
    rig = Rig(tmp_path, Script(result()))
    rig.service.start()
    etc = tmp_path / "etc"

    def append() -> None:
        rig.watcher.on_event(str(etc / "notes.log"), "modified")
        rig.watcher.on_event(str(etc / "notes.log"), "closed")
        rig.watcher.on_event(str(etc), "changed")
    for _ in range(10):
        append()
        rig.loop.advance(0.02)
    assert rig.script.runs == 1
    rig.watcher.on_event(str(etc / "arches.yaml"), "moved")  # a save by rename
    for _ in range(2):
        append()
        rig.loop.advance(0.02)
    append()
    rig.loop.advance(0.011)  # just past 50 ms after the save, not max_delay
    assert rig.script.runs == 2
    # A ConfigMap updated: the `..data` link the policy is read through renamed over.
    rig.watcher.on_event(str(etc / "..data_tmp"), "moved")
    rig.watcher.on_event(str(etc / "..data"), "moved")
    rig.loop.advance(0.05)
    assert rig.script.runs == 3


def test_an_interpreters_events_under_the_policys_directory_ask_for_a_run(
        tmp_path: Path) -> None:
    emu = Registration("multiarch-s390x", str(tmp_path / "etc" / "bin" / "qemu-s390x"),
                       Flags.parse("F"))
    (tmp_path / "etc" / "bin").mkdir(parents=True)
    wants = Desired((Want("s390x", "arch", "multiarch-s390x", emu),), ForeignMode.KEEP, ())
    rig = Rig(tmp_path, Script(replace(result(), desired=wants)))
    rig.service.start()
    rig.loop.advance(100)  # the look once its watches are in place
    runs = rig.script.runs
    staged = str(tmp_path / "etc" / "bin" / "qemu-s390x.dpkg-new")
    rig.watcher.on_event(staged, "closed")
    rig.watcher.on_event(staged, "moved")  # (the rename's other end)
    rig.loop.advance(0.1)
    assert rig.script.runs == runs  # not its file
    rig.watcher.on_event(emu.interpreter, "moved")  # the new file renamed over it
    rig.loop.advance(Options().table_debounce)
    assert rig.script.runs == runs + 1


def test_a_kept_verdict_is_for_the_very_file_not_its_timestamps(tmp_path: Path) -> None:
    """An interpreter rewritten in place with its modification time put back (`touch -r`) is
    another file: no verdict of the old one is believed for it."""
    import os

    from multiarchd.service.proven import Proven
    emu = tmp_path / "emu"
    emu.write_bytes(b"a" * 100)
    reg = Registration("multiarch-s390x", str(emu), Flags.parse("F"), b"\x7fELF", None)
    kept = str(tmp_path / "verdicts.json")
    Proven(kept).remember("s390x", reg, Verdict("s390x", "ok", "probe ran"))
    assert Proven(kept).recall("s390x", reg) is not None
    st = emu.stat()
    emu.write_bytes(b"b" * 100)
    os.utime(emu, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert Proven(kept).recall("s390x", reg) is None


class Trying(Script):
    """A run that tries a new interpreter file (host/trial.Trials), as core/gate's are."""

    def __init__(self) -> None:
        super().__init__(result(changes=1))
        self.answers_seen: list[Verdict | None] = []

    def __call__(self, config: Config, history: History, now: float) -> Result:
        self.answers_seen.append(history.trials.answer(
            "multiarch-s390x", "the new file", lambda: Verdict("s390x", "ok", "probe ran")))
        return super().__call__(config, history, now)


def test_a_trial_runs_off_the_loop_and_a_reconcile_is_answered_when_it_ends(
        tmp_path: Path) -> None:
    """A trial runs on the workers, from the first run on: runs (repairs) go on meanwhile, its
    answer brings a run that uses it, and a Reconcile asked meanwhile is answered after that
    run, with what each run did."""
    background = Deferred()
    script = Trying()
    rig = Rig(tmp_path, script, background=background)
    rig.service.start()
    assert script.answers_seen == [None] and "READY=1" in rig.notes.sent  # not waited for
    got: list[object] = []

    class Answer:
        def value(self, value: object) -> None:
            got.append(value)

        def error(self, error: Exception) -> None:
            got.append(error)
    rig.service.reconcile(Answer())
    rig.loop.advance(0)
    rig.service.poke()  # a repair meanwhile: its run happens
    rig.loop.advance(1)
    assert script.answers_seen == [None, None, None] and got == []
    background.finish()  # the trial's answer comes
    rig.loop.advance(0)
    assert script.answers_seen[-1] == Verdict("s390x", "ok", "probe ran")
    [answer] = got
    assert isinstance(answer, tuple) and answer[0] == "converged"
    assert len(answer[1]) == 3  # the three runs' changes
