"""One reconcile: read desired and observed state, plan, apply, read back, report.

Reconciliation is level-based: a run is told only to look again, never what changed. It re-reads
the policy, the host and the kernel table every time and converges; a run with nothing to do
writes nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .apply import apply
from .binfmt import DEFAULT_PATH as DEFAULT_BINFMT
from .binfmt import BinfmtTable, Observed
from .catalog import Catalog, load_catalog
from .desired import Desired, desired
from .errors import NotMounted
from .host import candidate_paths, probe_host
from .memory import Memory
from .plan import Plan, plan
from .policy import Policy
from .policyfile import load_policy
from .report import Report, build_report


@dataclass(frozen=True)
class Config:
    policy_path: str
    binfmt_dir: str


@dataclass(frozen=True)
class Result:
    policy: Policy
    desired: Desired | None  # None when the policy was rejected
    plan: Plan
    report: Report
    drift: frozenset[str] = frozenset()  # entries repaired (or due) because someone changed them
    conflicts: frozenset[str] = frozenset()  # entries left alone: their repairs are backed off

    @property
    def rejected(self) -> bool:
        return self.desired is None


def evaluate(config: Config, catalog: Catalog | None = None, observed: Observed | None = None,
             memory: Memory | None = None) -> tuple[Policy, Desired | None, Observed, Plan]:
    """Everything up to the plan, writing nothing."""
    catalog = catalog or load_catalog()
    policy = load_policy(config.policy_path, catalog)
    table = BinfmtTable(config.binfmt_dir)
    if observed is None:
        if not table.mounted():
            raise NotMounted(f"binfmt_misc is not mounted at {config.binfmt_dir}; mount it with "
                             f"`mount -t binfmt_misc binfmt_misc {config.binfmt_dir}`")
        observed = table.read()
    if policy.rejected:
        return policy, None, observed, Plan(())
    host = probe_host(catalog, candidate_paths(policy, catalog))
    want = desired(policy, catalog, host)
    return policy, want, observed, plan(want, observed, memory.held if memory else None)


def ensure_mounted(config: Config) -> bool:
    """Mount binfmt_misc at the standard place when nothing is mounted there. Never unmounts."""
    table = BinfmtTable(config.binfmt_dir)
    if not table.mounted() and config.binfmt_dir == DEFAULT_BINFMT:
        table.mount()
    return table.mounted()


def reconcile_once(config: Config, dry_run: bool = False, catalog: Catalog | None = None,
                   memory: Memory | None = None, mount: bool = True) -> Result:
    if mount and not dry_run:
        ensure_mounted(config)
    policy, want, observed, todo = evaluate(config, catalog, memory=memory)
    if want is None:
        return Result(policy, None, todo, Report((), (), policy.problems, (), observed.enabled))
    drift = memory.drift(want, observed) if memory else frozenset()
    now = time.monotonic()
    conflicts = memory.blocked(drift, now) if memory else frozenset()
    if conflicts:
        todo = Plan(tuple(a for a in todo.actions if a.entry not in conflicts))
    if dry_run or not todo:
        return Result(policy, want, todo, build_report(want, observed, (), conflicts), drift,
                      conflicts)
    table = BinfmtTable(config.binfmt_dir)
    outcomes = apply(todo, table)
    after = table.read()
    if memory:
        memory.record(want, after, outcomes, drift, now)
    return Result(policy, want, todo, build_report(want, after, outcomes, conflicts), drift,
                  conflicts)
