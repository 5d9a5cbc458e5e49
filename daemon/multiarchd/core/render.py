"""What the commands print: text tables for people, JSON documents for scripts, and the exit
code, from one View whether it was computed here or read from the daemon. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..model.problems import Problem
from ..model.registration import printable
from .audit import Finding
from .plan import Plan
from .report import EXIT_USAGE, DaemonState, Report, State, Status, overall


@dataclass(frozen=True)
class View:
    """Everything `status` and `apply` show: the same fields from the daemon or a local run."""

    state: DaemonState
    host: str
    policy: str
    report: Report
    plan: Plan  # what applying would do (for apply: what was done)
    table: str = ""  # whose binfmt_misc table: the host's, or a private one (kernel/owner.py)

    @classmethod
    def local(cls, host: str, policy: str, report: Report, plan: Plan, table: str = "") -> View:
        return cls(overall(report), host, policy, report, plan, table)

    def exit_code(self) -> int:
        """The daemon's state's (from the daemon, or from this report for a local run); a
        policy with problems is bad usage even when the last good one is in force."""
        return EXIT_USAGE if self.report.problems else self.state.exit_code


def columns(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def status_rows(statuses: Iterable[Status]) -> list[list[str]]:
    """One row per entry; a CPU column when an architecture runs with a chosen model."""
    statuses = list(statuses)
    models = any(s.cpu for s in statuses)
    rows = [["NAME", "STATE", "EMULATOR", *(["CPU"] if models else []), "FLAGS", "INTERPRETER",
             "NOTE"]]
    for s in statuses:
        name = s.name if s.kind == "arch" else f"{s.name} (custom)"
        cpu = [s.cpu or ("-" if s.emulator != "qemu" else "default")] if models else []
        rows.append([name, s.state.value, s.emulator or "-", *cpu, s.flags or "-",
                     s.interpreter or "-", s.message])
    return rows


def report_text(report: Report, show_unmanaged: bool = False, state: str | None = None) -> str:
    out = []
    shown = [s for s in report.statuses if show_unmanaged or s.state is not State.UNMANAGED]
    if shown:
        out.append(columns(status_rows(shown)))
    if report.foreign:
        out.append("")
        out.append("Entries multiarchd does not own:")
        for f in report.foreign:
            note = ""
            if f.overlaps:
                who = "it takes their binaries" if f.wins else "they take its binaries"
                note = f"  overlaps {', '.join(f.overlaps)} ({who})"
            out.append(f"  {f.name}  {'enabled' if f.enabled else 'disabled'}  "
                       f"{f.interpreter}{note}")
    if report.findings:
        out.append("")
        out.append("Findings (multiarchctl audit):")
        out += [f"  {f}" for f in report.findings]
    if not report.binfmt_enabled:
        out.append("")
        out.append("binfmt_misc is switched off as a whole (status: disabled); multiarchd never "
                   "changes that: `echo 1 > /proc/sys/fs/binfmt_misc/status` turns it on")
    for p in report.problems:
        out.append(str(p))
    if report.statuses:
        out.append(f"{state or overall(report)}: {report.summary()}")
    return "\n".join(out)


def problem_json(p: Problem) -> dict[str, Any]:
    return {"file": p.place.file, "line": p.place.line, "column": p.place.column,
            "message": p.message}


def view_json(view: View, applied: bool = False) -> dict[str, Any]:
    report = view.report
    data: dict[str, Any] = {
        "state": view.state.value,
        "host": view.host,
        "policy": view.policy,
        "table": view.table,
        "architectures": [dict(asdict(s), findings=findings_json(report.findings_of(s.entry)))
                          for s in report.statuses],
        "foreign": [dict(asdict(f), findings=findings_json(report.findings_of(f.name)))
                    for f in report.foreign],
        "problems": [problem_json(p) for p in report.problems],
        "binfmt_enabled": report.binfmt_enabled,
        "plan": plan_json(view.plan),
    }
    if applied:
        data["applied"] = [{"action": o.action.kind.value, "entry": printable(o.action.entry),
                            "error": o.error} for o in report.outcomes]
    return data


def findings_json(findings: Iterable[Finding]) -> list[dict[str, str]]:
    return [{"entry": f.entry, "severity": f.severity.value, "kind": f.kind, "reason": f.reason,
             "fix": f.fix} for f in findings]


def plan_json(plan: Plan) -> list[dict[str, Any]]:
    return [{"action": a.kind.value, "entry": printable(a.entry), "reason": a.reason,
             "register": a.registration.register_line() if a.registration else None}
            for a in plan.actions]


def dumps(data: Any) -> str:
    import json  # only for --json: not on the boot path
    return json.dumps(data, indent=2, default=str)
