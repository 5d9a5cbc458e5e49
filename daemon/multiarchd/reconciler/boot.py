"""Making the boot record (record.py) after a converged run: what --once would do into a table
holding only the other tools' entries the run found, and what it would then say."""

from __future__ import annotations

from dataclasses import replace

from .. import identity
from ..core.desired import Desired
from ..core.messages import outcome_messages
from ..core.plan import Kind, Outcome, plan
from ..core.render import report_text
from ..core.report import build_report, overall
from ..model.registration import owned
from ..model.observed import Observed
from . import record


def boot_record(policy_path: str, want: Desired, after: Observed,
                table: tuple[tuple[tuple[str, bytes], ...], str], native: frozenset[str] | None,
                seen: identity.Seen) -> str | None:
    """The record of a run that left the table `after` (read as `table`), converged, with
    `want` made from the files `seen`; None when there is nothing a replay could do alike: the
    table is not as wanted, something was not looked at cleanly, or --once would do more than
    register (replace, enable or disable an entry)."""
    if not seen.clean() or plan(want, after):
        return None
    others = tuple(e for e in after.entries if not owned(e.name))
    ours = {e.name: e for e in after.entries if owned(e.name)}
    before = Observed(tuple(replace(e, order=i) for i, e in enumerate(others, 1)), after.enabled)
    todo = plan(want, before)
    if any(a.kind is not Kind.REGISTER or a.registration is None or a.entry not in ours
           for a in todo.actions):
        return None
    mine = tuple(replace(ours[a.entry], order=len(others) + i)
                 for i, a in enumerate(todo.actions, 1))
    then = Observed(before.entries + mine, after.enabled)  # ours newest, in the order written
    if plan(want, then):
        return None
    outcomes = tuple(Outcome(a) for a in todo.actions)
    report = build_report(want, then, outcomes)
    records = [r.journal_fields() for r in outcome_messages(report)]
    files, status = table
    theirs = [(n, d) for n, d in files if not owned(n)]
    # As the table will list them after the replay: newest first, so ours first, last written
    # first, then the others as they are.
    data = dict(files)
    listed = [*((a.entry, data[a.entry]) for a in reversed(todo.actions)), *theirs]
    lines = [record.MAGIC, record.line("code", record.code_key()),
             record.line("machine", record.machine_key()),
             record.line("config", *record.config_key(policy_path)),
             record.line("native", record.native_text(native)),
             *record.seen_lines(seen),
             *record.table_lines_of(theirs, status),
             *record.table_lines_of(listed, status, "after")[:-1]]
    for action, fields in zip(todo.actions, records):
        assert action.registration is not None
        lines.append(record.fields_line("register", fields, action.registration.register_line()))
    # Which file the kernel opens for each, kept by the replay for the daemon (host/opened.py).
    wants = {w.entry: w for w in want.wants}
    lines += [record.line("opened", a.entry, wants[a.entry].interpreter_id or "")
              for a in todo.actions if a.registration and "F" in a.registration.flags]
    lines += [record.fields_line("log", fields) for fields in records[len(todo.actions):]]
    lines += [record.line("print", report_text(report)),
              record.line("summary", f"{overall(report)}: {report.summary()}"),
              record.line("exit", str(report.exit_code()))]
    text = record.seal("\n".join(lines) + "\n")
    return text if len(text.encode()) <= record.LIMIT else None
