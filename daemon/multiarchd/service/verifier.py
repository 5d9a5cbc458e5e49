"""Probe bookkeeping: which architectures were proven to execute, for which registration.

A verdict holds only while the registration it was about is the one the policy still wants (a
repair registers it again, so it is proven again). After a run, every active architecture without
a valid verdict is probed, when the policy asks for verification, off the main loop (once: it
was tried before it was registered; as often as a new file is tried when its kept verdict is
another kernel's or a failure, service/proven.py): probes run
on worker threads (an emulator that hangs is killed after probing.TIMEOUT), and their verdicts
come back to the main loop, which meanwhile answers, repairs and feeds the watchdog.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial

from ..core.messages import Event, Message
from ..core.probes import Verdict
from ..core.report import State, with_verdicts
from ..core.result import Result
from ..host.probing import RUNS
from ..model.registration import Registration
from ..names import OWNED_PREFIX
from .protocols import Background, Log
from .proven import Proven

Probe = Callable[[list[str], int], list[Verdict]]  # run these architectures' probes now, N runs


def _registered(result: Result | None) -> dict[str, Registration]:
    want = result.desired if result else None
    return {w.entry: w.registration for w in want.wants if w.registration} if want else {}


class Verifier:
    def __init__(self, probe: Probe, log: Log, background: Background,
                 arrived: Callable[[], None] = lambda: None,
                 proven: Proven | None = None) -> None:
        self.probe = probe
        self.proven = proven  # verdicts kept from earlier starts, or None
        self._recalled = False
        self.log = log
        self.background = background
        self.arrived = arrived  # new verdicts are in: the report can say so
        self._verdicts: dict[str, tuple[Registration, Verdict]] = {}
        self._running: set[str] = set()
        self.failures = 0  # probes that failed after a run (not those `test` asked for)

    def judge(self, result: Result) -> Result:
        """Start probing every active architecture not yet proven in its current registration;
        the result's report with every valid verdict so far."""
        if result.desired is None:
            return result
        for o in result.report.outcomes:  # registered again (a repair): prove it again
            if o.ok and o.action.entry.startswith(OWNED_PREFIX):
                self._verdicts.pop(o.action.entry.removeprefix(OWNED_PREFIX), None)
        if (result.enforced or result.policy).verify:
            self._recall(result)
            valid = self._valid(result)
            todo = [s.name for s in result.report.statuses
                    if s.kind == "arch" and s.state is State.ACTIVE and s.name not in valid
                    and s.name not in self._running]
            self._start(todo, result, report=True, runs=self._runs(result, todo))
        return self.apply(result)

    def apply(self, result: Result) -> Result:
        """The result with every verdict still valid for it."""
        return replace(result, report=with_verdicts(result.report, self._valid(result)))

    def test(self, arches: list[str], result: Result | None,
             done: Callable[[list[Verdict]], None]) -> None:
        """Run these probes now (as `multiarchctl test` asks); `done` gets the verdicts."""
        self._start(arches, result, report=False, done=done)

    def _runs(self, result: Result, arches: list[str]) -> Callable[[str], int]:
        """How many runs each of these architectures' probes takes (kept verdicts read now, on
        the loop, not on the workers)."""
        registered = _registered(result)
        doubted = {a for a in arches if self.proven is not None
                   and (reg := registered.get(OWNED_PREFIX + a)) is not None
                   and self.proven.doubted(a, reg)}
        return lambda arch: RUNS if arch in doubted else 1

    def _start(self, arches: list[str], result: Result | None, report: bool,
               done: Callable[[list[Verdict]], None] | None = None,
               runs: Callable[[str], int] = lambda arch: 1) -> None:
        registered = _registered(result)  # what the verdicts will be about
        # Each architecture once, in the order first named, its place looked up in O(1): a list
        # that repeats a name (200,000 copies) is one probe, and the verdicts are sorted once,
        # when the last probe ends (not at each completion, not by searching the list).
        order = {arch: i for i, arch in enumerate(dict.fromkeys(arches))}
        left = set(order)
        verdicts: list[Verdict] = []
        if not order and done:
            done([])

        def one(arch: str) -> Callable[[list[Verdict]], None]:
            def then(found: list[Verdict]) -> None:
                left.discard(arch)
                self._running.discard(arch)
                for v in found:
                    reg = registered.get(OWNED_PREFIX + v.arch)
                    if reg is not None:
                        self._verdicts[v.arch] = (reg, v)
                        if self.proven is not None:
                            self.proven.remember(v.arch, reg, v)
                    if report and v.result == "failed":
                        self.failures += 1
                        self.log.emit(Message(Event.PROBE_FAILED, f"{v.arch}: probe failed: "
                                             f"{v.message}", {"MULTIARCH_ARCH": v.arch,
                                                              "MULTIARCH_ENTRY": OWNED_PREFIX + v.arch,
                                                              "MULTIARCH_ACTION": "verify"}))
                verdicts.extend(found)
                self.arrived()
                if not left and done:
                    done(sorted(verdicts, key=lambda v: order.get(v.arch, len(order))))
            return then

        for arch in order:  # one probe a worker: a hung one holds up no other
            self._running.add(arch)
            self.background.run(partial(self._probe, arch, runs(arch)), one(arch))

    def _recall(self, result: Result) -> None:
        """At start, the verdicts an earlier start proved for exactly these registrations and
        files. (Later, a registration made again is proven again.)"""
        if self.proven is None or self._recalled:
            return
        self._recalled = True
        for entry, reg in _registered(result).items():
            arch = entry.removeprefix(OWNED_PREFIX)
            if arch not in self._verdicts and arch not in self._running:
                if (verdict := self.proven.recall(arch, reg)) is not None:
                    self._verdicts[arch] = (reg, verdict)

    def _probe(self, arch: str, runs: int) -> list[Verdict]:
        try:
            return self.probe([arch], runs)
        except Exception as e:  # noqa: BLE001 - on a worker thread: a verdict, not a crash
            return [Verdict(arch, "failed", f"the probe could not be run: {e}")]

    def _valid(self, result: Result) -> dict[str, Verdict]:
        """Verdicts still about what is registered now."""
        registered = _registered(result)
        return {arch: v for arch, (reg, v) in self._verdicts.items()
                if registered.get(OWNED_PREFIX + arch) == reg}
