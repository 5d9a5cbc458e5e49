"""Probe bookkeeping: which architectures were proven to execute, for which registration.

A verdict holds only while the registration it was about is the one the policy still wants;
after a run, every active architecture without a valid verdict is probed (when the policy asks
for verification), and the report shows the verdicts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ..core.messages import Event, Record
from ..core.probes import Verdict
from ..core.report import State, with_verdicts
from ..model.registration import OWNED_PREFIX, Registration
from ..reconciler.run import Result
from .protocols import Log

Probe = Callable[[list[str]], list[Verdict]]  # run these architectures' probes now


def _registered(result: Result | None) -> dict[str, Registration]:
    want = result.desired if result else None
    return {w.entry: w.registration for w in want.wants if w.registration} if want else {}


class Verifier:
    def __init__(self, probe: Probe, log: Log) -> None:
        self.probe = probe
        self.log = log
        self._verdicts: dict[str, tuple[Registration, Verdict]] = {}

    def judge(self, result: Result) -> Result:
        """Probe every active architecture not yet proven in its current registration; the
        result's report with every valid verdict in it."""
        if result.desired is None:
            return result
        for o in result.report.outcomes:  # registered again (a repair): prove it again
            if o.ok and o.action.entry.startswith(OWNED_PREFIX):
                self._verdicts.pop(o.action.entry.removeprefix(OWNED_PREFIX), None)
        if (result.enforced or result.policy).verify:
            valid = self._valid(result)
            todo = [s.name for s in result.report.statuses
                    if s.kind == "arch" and s.state is State.ACTIVE and s.name not in valid]
            if todo:
                self._remember(self.probe(todo), result)
                for v in self._valid(result).values():
                    if v.arch in todo and v.result == "failed":
                        self.log.emit(Record(Event.PROBE_FAILED, f"{v.arch}: probe failed: "
                                             f"{v.message}",
                                             {"MULTIARCH_ARCH": v.arch,
                                              "MULTIARCH_ENTRY": OWNED_PREFIX + v.arch,
                                              "MULTIARCH_ACTION": "verify"}))
        return replace(result, report=with_verdicts(result.report, self._valid(result)))

    def test(self, arches: list[str], result: Result | None) -> tuple[list[Verdict], Result | None]:
        """Run these probes now; the verdicts, and the result with them."""
        verdicts = self.probe(arches)
        self._remember(verdicts, result)
        if result is None:
            return verdicts, None
        return verdicts, replace(result, report=with_verdicts(result.report, self._valid(result)))

    def _remember(self, verdicts: list[Verdict], result: Result | None) -> None:
        registered = _registered(result)
        for v in verdicts:
            reg = registered.get(OWNED_PREFIX + v.arch)
            if reg is not None:
                self._verdicts[v.arch] = (reg, v)

    def _valid(self, result: Result) -> dict[str, Verdict]:
        """Verdicts still about what is registered now."""
        registered = _registered(result)
        return {arch: v for arch, (reg, v) in self._verdicts.items()
                if registered.get(OWNED_PREFIX + arch) == reg}
