"""One reconcile: read desired and observed state, plan, apply, read back, report.

Reconciliation is level-based: a run is told only to look again, never what changed. It re-reads
the policy, the host and the kernel table every time and converges; a run with nothing to do
writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from .apply import apply
from .binfmt import DEFAULT_PATH as DEFAULT_BINFMT
from .binfmt import BinfmtTable, Observed
from .catalog import Catalog, load_catalog
from .desired import Desired, desired
from .host import candidate_paths, probe_host
from .plan import Plan, plan
from .policy import Policy, load_policy
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

    @property
    def rejected(self) -> bool:
        return self.desired is None


class NotMounted(Exception):
    pass


def evaluate(config: Config, catalog: Catalog | None = None,
             observed: Observed | None = None) -> tuple[Policy, Desired | None, Observed, Plan]:
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
    return policy, want, observed, plan(want, observed)


def _rejected_report(policy: Policy, observed: Observed) -> Report:
    return Report((), (), policy.problems, (), observed.enabled)


def reconcile_once(config: Config, dry_run: bool = False,
                   catalog: Catalog | None = None) -> Result:
    table = BinfmtTable(config.binfmt_dir)
    if not dry_run and not table.mounted() and config.binfmt_dir == DEFAULT_BINFMT:
        table.mount()  # only the standard place, only when nothing is there; never unmounted
    policy, want, observed, todo = evaluate(config, catalog)
    if want is None:
        return Result(policy, None, todo, _rejected_report(policy, observed))
    if dry_run or not todo:
        return Result(policy, want, todo, build_report(want, observed))
    outcomes = apply(todo, table)
    return Result(policy, want, todo, build_report(want, table.read(), outcomes))
