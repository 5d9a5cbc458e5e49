"""apply(plan, table): the only code that changes the kernel table. Runs every action, collects
every failure, never stops at the first."""

from __future__ import annotations

import errno
from dataclasses import replace

from ..core.plan import Action, Kind, Outcome, Plan
from ..model.registration import STAND_IN, Registration
from .refusals import KernelError
from .table import BinfmtTable


def _replace(old: str, new: Registration, table: BinfmtTable) -> None:
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


def _run(action: Action, table: BinfmtTable) -> None:
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


def apply(plan: Plan, table: BinfmtTable) -> tuple[Outcome, ...]:
    outcomes = []
    for action in plan.actions:
        try:
            _run(action, table)
            outcomes.append(Outcome(action))
        except KernelError as e:
            outcomes.append(Outcome(action, str(e)))
    return tuple(outcomes)
