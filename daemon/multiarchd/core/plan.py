"""plan(desired, observed) -> the ordered actions that make the kernel match. Pure.

Ownership: entries named multiarch-* are ours to create, replace and remove. Any other entry is
only touched when `foreign_entries` says so, and only when it overlaps one of ours.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from ..model.host import NOT_KNOWN, NOT_KNOWN_WHY, FileId, same_file
from ..model.policy import ForeignMode
from ..model.registration import Registration, owned, printable
from ..model.observed import Entry, Observed
from .desired import Desired, Why


class Kind(enum.StrEnum):
    REMOVE = "remove"
    DISABLE = "disable"
    REPLACE = "replace"
    REGISTER = "register"
    ENABLE = "enable"


_ORDER = list(Kind)


@dataclass(frozen=True)
class Action:
    kind: Kind
    entry: str
    reason: str
    registration: Registration | None = None  # for register and replace

    def __str__(self) -> str:
        return f"{self.kind.value:<8} {printable(self.entry)}: {self.reason}"


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]

    def __bool__(self) -> bool:
        return bool(self.actions)

    def __str__(self) -> str:
        return "\n".join(map(str, self.actions)) if self.actions else "nothing to do"


@dataclass(frozen=True)
class Outcome:
    """What became of one action when it was applied."""

    action: Action
    error: str | None = None  # the kernel's refusal, in words
    # The refusal will not change by trying again (the kernel found the line itself wrong):
    # reported once, not retried while the policy asks for the same.
    terminal: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


def _differences(have: Registration, want: Registration) -> str:
    changed = []
    if have.interpreter != want.interpreter:
        # What the kernel holds may be another tool's, with any bytes.
        changed.append(f"interpreter {printable(have.interpreter)} -> {want.interpreter}")
    if have.flags != want.flags:
        changed.append(f"flags {have.flags or '-'} -> {want.flags or '-'}")
    if (have.magic, have.mask, have.offset, have.extension) != \
            (want.magic, want.mask, want.offset, want.extension):
        changed.append(f"match {have.describe_match()} -> {want.describe_match()}")
    return ", ".join(changed)


def _describe(reg: Registration, label: str, cpu: str | None = None) -> str:
    model = f" (QEMU with -cpu {cpu})" if cpu else ""
    return f"{label} via {reg.interpreter}{model}, flags {reg.flags or '-'}"


def _foreign_actions(desired: Desired, observed: Observed, unsafe: Mapping[str, str]
                     ) -> list[Action]:
    if desired.foreign is ForeignMode.DISABLE_UNSAFE:
        return [Action(Kind.DISABLE, e.name, f"unsafe: {unsafe[e.name]} (foreign_entries: "
                       "disable-unsafe)") for e in observed.entries
                if e.name in unsafe and e.enabled and not owned(e.name)]
    if desired.foreign is ForeignMode.KEEP:
        return []
    ours = [w for w in desired.wants if w.registration is not None]
    actions = []
    for entry in observed.entries:
        if owned(entry.name):
            continue
        hit = next((w for w in ours if w.registration and
                    w.registration.overlaps(entry.registration)), None)
        if hit is None:
            continue
        reason = f"overlaps {hit.entry} (foreign_entries: {desired.foreign.value})"
        if desired.foreign is ForeignMode.REMOVE:
            actions.append(Action(Kind.REMOVE, entry.name, reason))
        elif entry.enabled:
            actions.append(Action(Kind.DISABLE, entry.name, reason))
    return actions


def _owned_action(entry: Entry, name: str, desired: Desired, opened: Mapping[str, FileId]
                  ) -> Action | None:
    want = desired.want(name)
    if want is None:
        # While the policy has a problem, what it does not name may be what a typo hid.
        return None if desired.tentative else Action(Kind.REMOVE, name, "not in the policy")
    if want.frozen:
        return None
    if want.registration is None and want.verdict is Why.HELD:
        # (core/gate.py) kept for the admin to see, but not run: the new file failed
        return Action(Kind.DISABLE, name, want.message) if entry.enabled else None
    if want.registration is None:
        return Action(Kind.REMOVE, name, f"{want.label} is {want.verdict}: {want.message}")
    if entry.registration != want.registration:
        return Action(Kind.REPLACE, name, _differences(entry.registration, want.registration),
                      want.registration)
    was = opened.get(name)
    if was and not same_file(was, want.interpreter_id) and "F" in want.registration.flags:
        # (a file of ours made again in this run: a `cpu:` edit, or a new QEMU under it)
        how = f"made again for QEMU with -cpu {want.cpu or '(its own model)'}" \
            if name in desired.remade else "replaced on disk"
        why = f"{NOT_KNOWN_WHY}: registered again, once" if was == NOT_KNOWN else \
            f"{want.registration.interpreter} was {how}; F keeps the old file open until " \
            "re-registered"
        return Action(Kind.REPLACE, name, why, want.registration)
    if not entry.enabled:
        return Action(Kind.ENABLE, name, "was disabled by someone else")
    return None


def plan(desired: Desired, observed: Observed, opened: Mapping[str, FileId] | None = None,
         unsafe: Mapping[str, str] | None = None) -> Plan:
    """`opened`: for entries registered with F, which interpreter file the kernel holds open
    (known to whoever registered them; the kernel does not tell). `unsafe`: entries the audit
    found unsafe (high severity), and why."""
    actions = _foreign_actions(desired, observed, unsafe or {})
    opened = opened or {}
    present = set()
    for entry in observed.entries:
        name = entry.name
        present.add(name)
        if owned(name):
            action = _owned_action(entry, name, desired, opened)
            if action is not None:
                actions.append(action)
    for want in desired.wants:
        if want.registration is not None and want.entry not in present:
            actions.append(Action(Kind.REGISTER, want.entry,
                                  _describe(want.registration, want.label, want.cpu),
                                  want.registration))
    actions.sort(key=lambda a: (_ORDER.index(a.kind), a.entry))
    return Plan(tuple(actions))


def release(observed: Observed) -> Plan:
    """Remove every entry of ours and nothing else: at shutdown, as systemd-binfmt --unregister
    does, because an entry registered with F holds its interpreter open and with it the file
    system the interpreter is on."""
    return Plan(tuple(Action(Kind.REMOVE, e.name, "unregistering at stop")
                      for e in sorted(observed.entries, key=lambda e: e.name) if owned(e.name)))
