"""The per-architecture report: what the kernel holds against what the policy wants. Pure."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace

from ..model.problems import Problem
from .audit import Finding
from ..model.registration import owned, printable
from ..model.observed import Entry, Observed
from .desired import Desired, Want, Why
from .plan import Outcome
from .probes import Verdict


# Exit codes of every command: as the policy wants; not so (or a test failed); bad usage or a
# bad policy.
EXIT_OK, EXIT_NOT_CONVERGED, EXIT_USAGE = 0, 1, 2
# The run refused for whose table it would write (a private one no one asked for, --private
# where only the host's is): no restart changes that. systemd's EXIT_NOTCONFIGURED, so that
# `systemctl status` says `status=6/NOTCONFIGURED`; the units do not restart on it.
EXIT_REFUSED = 6


class DaemonState(enum.StrEnum):
    """The daemon's state as a whole (D-Bus State, STATUS=, metrics, --json's state)."""

    STARTING = "starting"  # before its first run
    WAITING = "waiting"  # binfmt_misc is not mounted yet
    CONVERGED = "converged"  # the table is as the policy wants
    DEGRADED = "degraded"  # it is not (report.exit_code() 1), or a run failed
    POLICY_ERROR = "policy-error"  # the policy was rejected; the last good one is kept

    @property
    def exit_code(self) -> int:
        if self is DaemonState.POLICY_ERROR:
            return EXIT_USAGE
        return EXIT_OK if self is DaemonState.CONVERGED else EXIT_NOT_CONVERGED


class State(enum.StrEnum):
    """One architecture's (or custom entry's) state, as status, D-Bus and the journal say it."""

    NATIVE = "native"  # this host runs it itself: never registered
    ACTIVE = "active"  # registered, enabled, and first in line for its binaries
    DISABLED = "disabled"  # the policy turns it off
    MISSING_EMULATOR = "missing-emulator"  # wanted, but no emulator for it is installed
    VERIFIED = "verified"  # active, and its probe program ran through the entry
    ERROR = "error"  # a policy problem, a kernel refusal or a failed probe
    SHADOWED = "shadowed"  # registered, but a later foreign entry takes its binaries
    CONFLICT = "conflict"  # another writer keeps undoing it; repairs are backed off
    PENDING = "pending"  # not applied yet (dry run, or status of an unapplied table)
    UNMANAGED = "unmanaged"  # not in the policy
    HELD = "held"  # its interpreter file changed; the new one is not taken (core/gate.py)

# States that mean "the system is not as the policy wants" when the policy names the arch.
_BAD = {State.ERROR, State.SHADOWED, State.PENDING, State.MISSING_EMULATOR, State.CONFLICT,
        State.HELD}


@dataclass(frozen=True)
class Status:
    name: str
    kind: str  # "arch" or "custom"
    state: State
    entry: str
    interpreter: str
    emulator: str
    flags: str
    message: str
    explicit: bool
    cpu: str = ""  # the QEMU CPU model its registered file carries; "": the emulator's own


@dataclass(frozen=True)
class Foreign:
    """An entry multiarchd does not own."""

    name: str
    enabled: bool
    interpreter: str
    overlaps: tuple[str, ...]  # owned entries that match the same binaries
    wins: bool  # it is the one the kernel uses for them (registered later)


@dataclass(frozen=True)
class Report:
    statuses: tuple[Status, ...]
    foreign: tuple[Foreign, ...]
    problems: tuple[Problem, ...]
    outcomes: tuple[Outcome, ...] = ()
    binfmt_enabled: bool = True
    # The policy file was rejected as a whole: the statuses, if any, are the last good policy's.
    policy_rejected: bool = False
    findings: tuple[Finding, ...] = ()  # the whole table's audit (core/audit.py)

    def findings_of(self, entry: str) -> list[Finding]:
        return [f for f in self.findings if f.entry == printable(entry)]

    @property
    def rejected(self) -> bool:
        return self.policy_rejected

    @property
    def failures(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if not o.ok)

    def exit_code(self) -> int:
        """0 as the policy wants, 1 not (or a kernel refusal), 2 the policy has problems."""
        if self.problems:
            return EXIT_USAGE
        bad = any(s.state in _BAD and (s.explicit or s.state is not State.MISSING_EMULATOR)
                  for s in self.statuses)
        return EXIT_NOT_CONVERGED if bad or self.failures or not self.binfmt_enabled else EXIT_OK

    def count(self, state: State) -> int:
        return sum(1 for s in self.statuses if s.state is state)

    def summary(self) -> str:
        parts = [f"{self.count(State.ACTIVE) + self.count(State.VERIFIED)} active"]
        if self.count(State.VERIFIED):
            parts[0] += f" ({self.count(State.VERIFIED)} verified)"
        parts += [f"{self.count(s)} {s.value}" for s in
                  (State.PENDING, State.HELD, State.SHADOWED, State.CONFLICT,
                   State.MISSING_EMULATOR, State.ERROR)
                  if self.count(s)]
        if self.failures:
            parts.append(f"{len(self.failures)} kernel refusal(s)")
        return ", ".join(parts)


def _shadowing(entry: Entry, observed: Observed) -> tuple[list[Entry], list[Entry]]:
    """Enabled foreign entries overlapping `entry`: (registered later, registered earlier)."""
    later: list[Entry] = []
    earlier: list[Entry] = []
    for other in observed.foreign_enabled:
        if entry.registration.overlaps(other.registration):
            (later if other.order > entry.order else earlier).append(other)
    return later, earlier


def _status(want: Want, observed: Observed, failure: str | None) -> Status:
    state, message = _state(want, observed, failure)
    if want.hold and state is State.ACTIVE:  # said before the day it holds, in the policy's words
        message = "; ".join(m for m in (_holding(want.label), message) if m)
    reg = want.registration
    # Made whole (not by dataclasses.replace, several times slower): one per entry per run.
    return Status(name=want.label, kind=want.kind, state=state, entry=want.entry,
                  interpreter=want.interpreter or "", emulator=want.emulator or "",
                  flags=str(reg.flags) if reg else "", message=message, explicit=want.explicit,
                  cpu=want.cpu or "")


def _holding(arch: str) -> str:
    return (f"hold: true: a new file of its interpreter waits for `multiarchctl release {arch}`; "
            "the kernel keeps running this one")


def _state(want: Want, observed: Observed, failure: str | None) -> tuple[State, str]:
    reg = want.registration
    entry = observed.get(want.entry)
    if want.verdict is Why.HELD and entry is not None and (reg is not None or not entry.enabled):
        return State.HELD, want.message  # on the file opened before (F), or disabled (no F)
    if reg is None:
        unchanged = State(want.verdict) if want.verdict else State.PENDING
        if entry is None or want.frozen:
            return unchanged, want.message
        # The policy wants it gone but the kernel still holds it.
        if failure:
            return State.ERROR, failure
        return State.PENDING, f"still registered; to be removed ({want.verdict}: {want.message})"
    if entry is None or entry.registration != reg or not entry.enabled:
        if failure:
            return State.ERROR, failure
        return State.PENDING, "not applied yet"
    later, earlier = _shadowing(entry, observed)
    if later:
        names = ", ".join(printable(e.name) for e in later)
        return State.SHADOWED, (f"shadowed by {names}, registered later: the kernel hands these "
                                "binaries to it (set foreign_entries: disable to take them back)")
    if earlier:
        return State.ACTIVE, (f"overlaps foreign {', '.join(printable(e.name) for e in earlier)}; "
                              "this entry was registered later and wins")
    return State.ACTIVE, want.message  # (a CPU model not used, and why)


# The audit's word that an F entry's kernel runs another file than its path names, or that
# which one is not known (core/audit.py): such an entry is never said to be active.
_STALE = {"interpreter-replaced": "to be registered again once the new file passes its probe",
          "interpreter-unknown": "to be registered again, once"}


def _stale(status: Status, findings: tuple[Finding, ...]) -> Status:
    if status.state is not State.ACTIVE:
        return status
    for f in findings:
        if f.entry == status.entry and f.kind in _STALE:
            return replace(status, state=State.PENDING, message=f"{f.reason}; {_STALE[f.kind]}")
    return status


def _conflict(status: Status) -> Status:
    return replace(status, state=State.CONFLICT,
                   message="another writer keeps undoing this entry; multiarchd backs off and "
                           "repairs it again when that stops")


def build_report(desired: Desired, observed: Observed, outcomes: tuple[Outcome, ...] = (),
                 conflicts: frozenset[str] = frozenset(),
                 refused: Mapping[str, str] | None = None,
                 findings: tuple[Finding, ...] = ()) -> Report:
    """`refused`: entries the kernel refused for good in an earlier run, and its words;
    `findings`: the audit of `observed`."""
    failed = dict(refused or {})
    failed.update({o.action.entry: o.error for o in outcomes if o.error})
    stale = tuple(f for f in findings if f.kind in _STALE)
    statuses = tuple(_conflict(s) if s.entry in conflicts else _stale(s, stale) for s in
                     (_status(w, observed, failed.get(w.entry)) for w in desired.wants))
    registrations = {w.entry: w.registration for w in desired.wants if w.registration}
    foreign = []
    for entry in observed.entries:
        if owned(entry.name):
            continue
        hits = tuple(name for name, reg in registrations.items()
                     if reg.overlaps(entry.registration))
        wins = entry.enabled and any(
            (o := observed.get(n)) is not None and o.order < entry.order for n in hits)
        foreign.append(Foreign(printable(entry.name), entry.enabled,
                               printable(entry.registration.interpreter), hits, wins))
    return Report(statuses, tuple(foreign), desired.problems, outcomes, observed.enabled,
                  findings=findings)


def overall(report: Report) -> DaemonState:
    """The daemon-level state a report makes: converged, degraded or policy-error."""
    if report.rejected:
        return DaemonState.POLICY_ERROR
    return DaemonState.CONVERGED if report.exit_code() == 0 else DaemonState.DEGRADED


def with_verdicts(report: Report, verdicts: Mapping[str, Verdict]) -> Report:
    """Active architectures whose probe ran become verified; a failed probe is an error."""
    def judged(s: Status) -> Status:
        v = verdicts.get(s.name) if s.kind == "arch" else None
        if v is None or s.state not in (State.ACTIVE, State.VERIFIED) or v.result == "untested":
            return s
        if v.ok:
            return replace(s, state=State.VERIFIED, message=s.message or "probe ran")
        return replace(s, state=State.ERROR, message=f"probe failed: {v.message}")
    return replace(report, statuses=tuple(judged(s) for s in report.statuses))
