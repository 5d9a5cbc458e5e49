"""apply(plan, table): how a plan changes the kernel table. Runs every action, collects every
failure, never stops at the first. (The one other writer is the boot record's replay, which
writes again the register lines a converged run wrote: reconciler/record.py.)"""

from __future__ import annotations

import errno
from dataclasses import replace
from typing import Protocol

from ..core.plan import Action, Kind, Outcome, Plan
from ..model.registration import STAND_IN, Registration
from .refusals import KernelError


class Writer(Protocol):
    """What apply needs of the table (table.BinfmtTable is the real one)."""

    def register(self, reg: Registration) -> None: ...
    def remove(self, name: str) -> None: ...
    def set_enabled(self, name: str, enabled: bool) -> None: ...


def _replace(old: str, new: Registration, table: Writer) -> None:
    """Replace an entry with no instant in which its binaries find none: the new content is
    registered first under a stand-in name (the newest match wins, so it takes over at once),
    then the old entry goes, the new one comes under its own name, and the stand-in goes. If the
    kernel refuses the new content, the old entry is left as it was."""
    stand_in = replace(new, name=new.name + STAND_IN)
    try:
        table.remove(stand_in.name)  # left over from a run that was killed half-way
    except KernelError as e:
        if e.errno != errno.ENOENT:
            raise
    table.register(stand_in)
    table.remove(old)
    table.register(new)
    table.remove(stand_in.name)


def _run(action: Action, table: Writer) -> None:
    if action.kind is Kind.REMOVE:
        table.remove(action.entry)
    elif action.kind is Kind.DISABLE:
        table.set_enabled(action.entry, False)
    elif action.kind is Kind.ENABLE:
        table.set_enabled(action.entry, True)
    else:
        assert action.registration is not None
        if action.kind is Kind.REPLACE:  # the kernel has no in-place update
            _replace(action.entry, action.registration, table)
        else:
            table.register(action.registration)


# Refusals of the line itself: trying it again changes nothing, a changed policy does.
TERMINAL = frozenset({errno.EINVAL, errno.ENAMETOOLONG, errno.E2BIG})


def apply(plan: Plan, table: Writer) -> tuple[Outcome, ...]:
    outcomes = []
    for action in plan.actions:
        try:
            _run(action, table)
            outcomes.append(Outcome(action))
        except KernelError as e:
            outcomes.append(Outcome(action, str(e), e.errno in TERMINAL))
    return tuple(outcomes)
