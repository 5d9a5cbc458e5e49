"""The daemon's numbers in Prometheus's text format, for node-exporter's textfile collector: the
overall state, each architecture's state (one series per possible state, 1 for the current one,
so that an alert is a plain comparison), the audit's findings, and counters since the daemon
started. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from .audit import Severity
from .report import DaemonState, Report, State


@dataclass(frozen=True)
class Counters:
    runs: int = 0
    repairs: int = 0  # owned entries put back after someone else changed or removed them
    conflicts: int = 0  # entries found fought over (another writer keeps undoing them)
    kernel_refusals: int = 0
    probe_failures: int = 0


_COUNTERS = {
    "runs": "Reconcile runs since the daemon started.",
    "repairs": "Owned entries put back after something else changed or removed them.",
    "conflicts": "Times an entry was found fought over by another writer (repairs backed off).",
    "kernel_refusals": "Writes binfmt_misc refused.",
    "probe_failures": "Probe programs that did not run through their entry.",
}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def _family(name: str, kind: str, help_text: str, samples: list[str]) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples]


def textfile(state: DaemonState, report: Report | None, counters: Counters,
             last_run: float) -> str:
    lines = _family("multiarchd_state", "gauge", "The daemon's state (1 for the current one).",
                    [f'multiarchd_state{{state="{s}"}} {int(s is state)}' for s in DaemonState])
    samples = []
    for status in report.statuses if report else ():
        name = _label(status.name)
        samples += [f'multiarchd_architecture_state{{name="{name}",kind="{status.kind}",'
                    f'state="{s}"}} {int(s is status.state)}' for s in State]
    lines += _family("multiarchd_architecture_state", "gauge",
                     "Each architecture's (or custom entry's) state (1 for the current one).",
                     samples)
    findings = report.findings if report else ()
    lines += _family("multiarchd_audit_findings", "gauge",
                     "Findings of the audit of the whole binfmt_misc table, by severity.",
                     [f'multiarchd_audit_findings{{severity="{s}"}} '
                      f'{sum(1 for f in findings if f.severity is s)}' for s in Severity])
    lines += _family("multiarchd_audit_finding", "gauge",
                     "Each finding of the audit (1), by entry, kind and severity.",
                     [f'multiarchd_audit_finding{{entry="{_label(f.entry)}",kind="{f.kind}",'
                      f'severity="{f.severity.value}"}} 1' for f in findings])
    for field, help_text in _COUNTERS.items():
        lines += _family(f"multiarchd_{field}_total", "counter", help_text,
                         [f"multiarchd_{field}_total {getattr(counters, field)}"])
    lines += _family("multiarchd_last_reconcile_timestamp_seconds", "gauge",
                     "When the last run ended (seconds since the epoch; 0 before the first).",
                     [f"multiarchd_last_reconcile_timestamp_seconds {last_run:.3f}"])
    return "\n".join(lines) + "\n"
