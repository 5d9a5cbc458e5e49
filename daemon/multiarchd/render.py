"""Text tables and JSON for reports and plans, as the commands print them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from typing import Any

from .desired import State
from .plan import Plan
from .report import Report, Status, overall


def columns(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def status_rows(statuses: Iterable[Status]) -> list[list[str]]:
    rows = [["NAME", "STATE", "EMULATOR", "FLAGS", "INTERPRETER", "NOTE"]]
    for s in statuses:
        name = s.name if s.kind == "arch" else f"{s.name} (custom)"
        rows.append([name, s.state.value, s.emulator or "-", s.flags or "-",
                     s.interpreter or "-", s.message])
    return rows


def report_text(report: Report, show_unmanaged: bool = False) -> str:
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
    if not report.binfmt_enabled:
        out.append("")
        out.append("binfmt_misc is switched off as a whole (status: disabled); multiarchd never "
                   "changes that: `echo 1 > /proc/sys/fs/binfmt_misc/status` turns it on")
    for p in report.problems:
        out.append(str(p))
    if report.statuses:
        out.append(f"{overall(report)}: {report.summary()}")
    return "\n".join(out)


def report_json(report: Report, plan: Plan | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "state": overall(report),
        "architectures": [asdict(s) for s in report.statuses],
        "foreign": [asdict(f) for f in report.foreign],
        "problems": [str(p) for p in report.problems],
        "binfmt_enabled": report.binfmt_enabled,
        "applied": [{"action": o.action.kind.value, "entry": o.action.entry,
                     "error": o.error} for o in report.outcomes],
    }
    if plan is not None:
        data["plan"] = plan_json(plan)
    return data


def plan_json(plan: Plan) -> list[dict[str, Any]]:
    return [{"action": a.kind.value, "entry": a.entry, "reason": a.reason,
             "register": a.registration.register_line() if a.registration else None}
            for a in plan.actions]


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, default=str)
