"""Where multiarchctl's answers come from: the running daemon over D-Bus (Remote) or a run in
this process on the same policy and table (Local). Both give the same View, plan and verdicts,
so every verb renders one way whatever the transport."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ..catalog import load_catalog
from ..core.plan import Plan
from ..core.probes import Verdict
from ..core.render import View
from ..core.report import DaemonState, Report, build_report, overall
from ..dbus import api
from ..host.facts import host_arch
from ..host.probing import verify
from ..kernel.owner import describe
from ..model.errors import PolicyRejected
from ..model.options import Config
from ..model.problems import Problem
from ..model.observed import Observed
from ..reconciler.run import evaluate, findings_in, opened_files, reconcile_once

if TYPE_CHECKING:
    from ..dbus.pydbus_glue import Client


class Source(Protocol):
    def view(self) -> View: ...
    def apply(self) -> View: ...
    def plan(self) -> tuple[Plan, tuple[Problem, ...], DaemonState]:
        """The plan, the policy's problems, and the state before applying it; PolicyRejected
        (one problem a line) when the policy cannot be applied at all."""
    def test(self, names: list[str]) -> list[Verdict]: ...


class Local:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.catalog = load_catalog()
        self.host = host_arch(self.catalog)

    def _view(self, report: Report, plan: Plan) -> View:
        return View.local(self.host, self.config.policy_path, report, plan,
                          describe(self.config.binfmt_dir))

    def view(self) -> View:
        policy, want, observed, todo = evaluate(self.config, self.catalog)
        # (which file the kernel opened for each entry, as whoever registered it kept it: an
        # entry whose kernel runs another file than its path names is not active)
        findings = findings_in(observed, self.catalog,
                               opened_files(observed, self.config.binfmt_dir, None))
        report = build_report(want, observed, findings=findings) if want else \
            Report((), (), policy.problems, (), observed.enabled, policy_rejected=True,
                   findings=findings)
        return self._view(report, todo)

    def apply(self) -> View:
        result = reconcile_once(self.config, catalog=self.catalog)
        return self._view(result.report, result.plan)

    def plan(self) -> tuple[Plan, tuple[Problem, ...], DaemonState]:
        policy, want, observed, todo = evaluate(self.config, self.catalog)
        if want is None:
            raise PolicyRejected.of(policy.problems)
        return todo, want.problems, overall(build_report(want, observed))

    def test(self, names: list[str]) -> list[Verdict]:
        if names:
            arches = self.catalog.resolve(names)
        else:
            # What the policy registers; the table is not needed for that.
            policy, want, _, _ = evaluate(self.config, self.catalog, observed=Observed(()))
            if want is None:
                raise PolicyRejected.of(policy.problems)
            arches = want.registered_arches()
        return verify(arches, self.catalog, self.config.binfmt_dir)


class Remote:
    def __init__(self, client: Client) -> None:
        self.client = client

    def _plan(self) -> tuple[Plan, tuple[Problem, ...]]:
        actions, problems = self.client.call("Plan")
        return (Plan(tuple(api.action_from(r) for r in actions)),
                tuple(api.problem_from(r) for r in problems))

    def view(self, applied: list[api.AppliedStruct] | None = None) -> View:
        get = self.client.get
        state = DaemonState(get("State"))
        report = api.report_from(get("Architectures"), get("ForeignEntries"), get("Problems"),
                                 get("BinfmtEnabled"), applied or (),
                                 state is DaemonState.POLICY_ERROR,
                                 get("CpuModels"), get("Findings"))
        if applied is not None:
            plan = Plan(tuple(o.action for o in report.outcomes))
        elif report.rejected:
            plan = Plan(())
        else:
            plan = self._plan()[0]
        return View(state, get("HostArchitecture"), get("PolicyPath"), report, plan,
                    get("Table"))

    def apply(self) -> View:
        try:
            _state, applied = self.client.call("Reconcile")
        except api.RemoteError as e:
            if e.name != api.error_name(PolicyRejected):
                raise
            return self.view()  # the run just made says which problems (as a local run does)
        return self.view(applied)

    def plan(self) -> tuple[Plan, tuple[Problem, ...], DaemonState]:
        try:
            plan, problems = self._plan()
        except api.RemoteError as e:
            if e.name == api.error_name(PolicyRejected):
                raise PolicyRejected(str(e)) from None
            raise
        return plan, problems, DaemonState(self.client.get("State"))

    def test(self, names: list[str]) -> list[Verdict]:
        return [Verdict(*r) for r in self.client.call("Test", names)]

    def reload(self) -> None:
        self.client.call("Reload")

    def release(self, arch: str) -> tuple[str, str]:
        state, message = self.client.call("Release", arch)
        return str(state), str(message)


def connect() -> Remote:
    """The daemon, or api.Unreachable (not running, no bus, or no D-Bus support here)."""
    try:
        from ..dbus.pydbus_glue import Client
    except ImportError as e:
        raise api.Unreachable(f"D-Bus support is not installed ({e.name})") from None
    return Remote(Client())
