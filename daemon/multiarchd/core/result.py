"""What one run found and did (reconciler/run.py makes it; the service, the commands and the
boot record read it)."""

from __future__ import annotations

from dataclasses import dataclass

from ..model.policy import Policy
from .desired import Desired
from .plan import Plan
from .report import Report


@dataclass(frozen=True)
class Result:
    policy: Policy  # as the files on disk say
    desired: Desired | None  # None when the policy was rejected and none was accepted before
    plan: Plan
    report: Report
    drift: frozenset[str] = frozenset()  # entries repaired (or due) because someone changed them
    conflicts: frozenset[str] = frozenset()  # entries left alone: their repairs are backed off
    enforced: Policy | None = None  # the policy in force: this one, or the last good one

    @property
    def rejected(self) -> bool:
        """The policy on disk was rejected (the last good one, if any, stays in force)."""
        return self.policy.rejected
