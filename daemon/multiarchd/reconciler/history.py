"""What a long-running daemon remembers between runs, that neither the policy nor the kernel says.

- which interpreter file the kernel holds open for each F entry it registered (or found kept);
- what it last had right, so that a later difference with an unchanged policy is drift;
- how often it repaired each entry lately, so that it backs off from a writer that fights it;
- the last policy it accepted, which stays in force while the policy file is bad;
- the table as the last run left it, and what the boot record was last made from;
- what each new interpreter file did when tried, and which entries the admin released.

(The parsed policy, a cache and no memory, is the Reconciler's.)
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ..core.desired import Desired
from ..core.plan import Kind, Outcome, Plan
from ..host.trial import Trials
from ..model.host import FileId
from ..model.policy import Policy
from ..model.registration import Registration, owned
from ..model.observed import Observed


@dataclass
class History:
    repair_limit: int = 10  # drift repairs of one entry per window before backing off
    window: float = 60.0  # seconds
    # For each entry it registered: the interpreter file the kernel opened then (with F it
    # runs that one until the entry is registered again); for an F entry registered by the
    # process before (the boot record's replay, --once, itself before a restart), as that one
    # kept it (host/opened.py, read by run.opened_files).
    opened: dict[str, FileId] = field(default_factory=dict)
    right: dict[str, Registration] = field(default_factory=dict)
    quelled: set[str] = field(default_factory=set)  # foreign entries we disabled or removed
    repairs: dict[str, deque[float]] = field(default_factory=dict)
    last_good: Policy | None = None  # the last policy accepted: in force while the file is bad
    # Registrations the kernel refused for good, and its words: not tried again while the
    # policy asks for exactly the same.
    refused: dict[str, tuple[Registration, str]] = field(default_factory=dict)
    # Entries written whose read-back differed from what was written: each such write counts
    # as a repair, so multiarchd's own misunderstanding cannot spin either.
    unsettled: set[str] = field(default_factory=set)
    # The table as the last run left it, when that was all as wanted: an event after which it
    # is still so (the run's own writes, seen late) needs no run. None: any event runs.
    last_table: Observed | None = None
    # What the boot record was last made from (boot.py): made again only when that changes.
    record_key: object = None
    # The last trial of each entry's new interpreter file (core/gate.py) and CPU-model file, by
    # what was tried (path, file, registration, kernel): a file is tried once, the next one
    # again; in the service, off its loop.
    trials: Trials = field(default_factory=Trials)
    # Entries the admin released from `hold: true` (multiarchctl release): their next new file
    # is taken (once it passes its probe), then held again.
    released: set[str] = field(default_factory=set)

    def drift(self, desired: Desired, observed: Observed) -> frozenset[str]:
        """Entries that were right, are still wanted the same, and are not right now; and
        foreign entries we had disabled or removed that are back."""
        found = set()
        for want in desired.wants:
            if want.registration is None or self.right.get(want.entry) != want.registration:
                continue
            entry = observed.get(want.entry)
            if entry is None or not entry.enabled or entry.registration != want.registration:
                found.add(want.entry)
        found.update(e.name for e in observed.entries if e.name in self.quelled and e.enabled)
        return frozenset(found)

    def _recent(self, entry: str, now: float) -> deque[float]:
        times = self.repairs.setdefault(entry, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def hold_back(self, plan: Plan, drift: frozenset[str], now: float
                  ) -> tuple[Plan, frozenset[str], dict[str, str]]:
        """The plan without what must wait: repairs of entries another writer keeps undoing
        (the conflicts), what the kernel refused for good, and writes that keep reading back
        differently; with the conflicts and why each of the others waits."""
        conflicts = self.blocked(drift, now)
        why = {a.entry: self.refused[a.entry][1] for a in plan.actions
               if a.registration and self.refused.get(a.entry, (None, ""))[0] == a.registration}
        for name in self.blocked(frozenset(self.unsettled) - drift, now):
            why[name] = (f"{name} was written {self.repair_limit} times but the kernel gives "
                         f"back something else; left alone for {self.window:g} s (please "
                         "report this)")
        waiting = conflicts | set(why)
        return Plan(tuple(a for a in plan.actions if a.entry not in waiting)), conflicts, why

    def blocked(self, entries: frozenset[str], now: float) -> frozenset[str]:
        return frozenset(e for e in entries if len(self._recent(e, now)) >= self.repair_limit)

    def next_release(self, now: float) -> float | None:
        """Seconds until some backed-off entry may be repaired again."""
        waits = [times[0] + self.window - now for e, times in self.repairs.items()
                 if len(self._recent(e, now)) >= self.repair_limit]
        return max(0.0, min(waits)) if waits else None

    def remember(self, desired: Desired, after: Observed, outcomes: tuple[Outcome, ...],
                 drift: frozenset[str], now: float) -> None:
        wants = {w.entry: w for w in desired.wants}
        for name, (reg, _) in list(self.refused.items()):
            if name not in wants or wants[name].registration != reg:
                del self.refused[name]  # the policy changed: try what it asks for now
        for o in outcomes:
            name, kind = o.action.entry, o.action.kind
            if name in drift:
                self._recent(name, now).append(now)
            if o.terminal and o.error and o.action.registration:
                self.refused[name] = (o.action.registration, o.error)
            if not o.ok:
                continue
            if owned(name) and kind in (Kind.REGISTER, Kind.REPLACE, Kind.ENABLE):
                got = after.get(name)
                want = wants.get(name)
                if want and (got is None or not got.enabled or
                             got.registration != want.registration):
                    self.unsettled.add(name)
                    if name not in drift:
                        self._recent(name, now).append(now)
                else:
                    self.unsettled.discard(name)
            opened = wants[name].interpreter_id if name in wants else None
            if kind in (Kind.REGISTER, Kind.REPLACE):
                self.released.discard(name)
            if kind in (Kind.REGISTER, Kind.REPLACE) and opened:
                self.opened[name] = opened
            elif kind is Kind.REMOVE:
                self.opened.pop(name, None)
            if not owned(name):
                self.quelled.add(name)
        for want in desired.wants:
            entry = after.get(want.entry)
            if want.registration and entry and entry.enabled and \
                    entry.registration == want.registration:
                self.right[want.entry] = want.registration
            elif want.registration != self.right.get(want.entry) and not want.frozen:
                self.right.pop(want.entry, None)  # the policy changed it: not drift any more

