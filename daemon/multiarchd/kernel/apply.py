"""apply(plan, table): the only code that changes the kernel table. Runs every action, collects
every failure, never stops at the first."""

from __future__ import annotations

from ..core.plan import Action, Kind, Outcome, Plan
from .refusals import KernelError
from .table import BinfmtTable


def _run(action: Action, table: BinfmtTable) -> None:
    if action.kind is Kind.REMOVE:
        table.remove(action.entry)
    elif action.kind is Kind.DISABLE:
        table.set_enabled(action.entry, False)
    elif action.kind is Kind.ENABLE:
        table.set_enabled(action.entry, True)
    else:
        assert action.registration is not None
        if action.kind is Kind.REPLACE:
            # The kernel has no in-place update: a content change is remove, then register.
            table.remove(action.entry)
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
