"""io.github.multiarchd1: names, the introspection XML, struct types and named errors, in one
place. Structs convert to and from the core's data here, so that a client rebuilds exactly what
the daemon had (and renders it as a local run would). Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ..core.audit import Finding, Severity
from ..core.explain import Explanation
from ..core.plan import Action, Kind, Outcome, Plan
from ..core.report import Foreign, Report, State, Status
from ..model import errors
from ..model.problems import Place, Problem
from ..model.registration import Registration, printable

BUS_NAME = "io.github.multiarchd1"
OBJECT_PATH = "/io/github/multiarchd1"
INTERFACE = "io.github.multiarchd1.Manager"
ERROR = "io.github.multiarchd1.Error"

ARCH_STRUCT = "(ssssssssb)"  # name, kind, state, interpreter, emulator, flags, entry, message, explicit
FOREIGN_STRUCT = "(sbsasb)"  # name, enabled, interpreter, overlapped owned entries, it wins
PROBLEM_STRUCT = "(suus)"  # file, line, column, message
FINDING_STRUCT = "(sssss)"  # entry, severity, kind, reason, fix
ACTION_STRUCT = "(ssss)"  # action, entry, reason, register line ('' when none)
APPLIED_STRUCT = "(sssss)"  # action, entry, reason, register line, kernel refusal ('' when none)
CHANGE_STRUCT = "(sss)"  # action, entry, reason
TEST_STRUCT = "(sss)"  # architecture, result (ok, failed, untested), message

# Each domain failure has its D-Bus error name, on purpose; anything else is a bug and says so.
DOMAIN_ERRORS = (errors.PolicyRejected, errors.UnknownArchitecture, errors.NotMounted,
                 errors.NotHeld, errors.Stopping)


def error_name(kind: type[Exception]) -> str:
    return f"{ERROR}.{kind.__name__}"


class Unreachable(Exception):
    """No daemon answers on the bus (or D-Bus support is not installed)."""


class RemoteError(Exception):
    """The daemon answered with a D-Bus error: its name and its words."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


XML = f"""
<node>
  <interface name='{INTERFACE}'>
    <property name='Version' type='s' access='read'>
      <annotation name='org.freedesktop.DBus.Property.EmitsChangedSignal' value='const'/>
    </property>
    <property name='HostArchitecture' type='s' access='read'>
      <annotation name='org.freedesktop.DBus.Property.EmitsChangedSignal' value='const'/>
    </property>
    <!-- starting, waiting, converged, degraded, policy-error -->
    <property name='State' type='s' access='read'/>
    <property name='PolicyPath' type='s' access='read'/>
    <!-- whose binfmt_misc table it keeps: the host's, or a private one (a user namespace's) -->
    <property name='Table' type='s' access='read'>
      <annotation name='org.freedesktop.DBus.Property.EmitsChangedSignal' value='const'/>
    </property>
    <!-- microseconds since the epoch of the last run, 0 before the first -->
    <property name='LastReconcile' type='t' access='read'/>
    <!-- name, kind (arch or custom), state, interpreter, emulator, flags, entry, message,
         explicit (named in the policy, not only through `all`) -->
    <property name='Architectures' type='a{ARCH_STRUCT}' access='read'/>
    <!-- architecture -> the QEMU CPU model its entry's file carries (only those with one) -->
    <property name='CpuModels' type='a{{ss}}' access='read'/>
    <!-- entries of other tools: name, enabled, interpreter, owned entries it overlaps,
         whether the kernel hands it their binaries -->
    <property name='ForeignEntries' type='a{FOREIGN_STRUCT}' access='read'/>
    <!-- the policy's problems: file, line, column, message -->
    <property name='Problems' type='a{PROBLEM_STRUCT}' access='read'/>
    <!-- the audit of the whole table: entry, severity (high, medium), kind, reason, fix -->
    <property name='Findings' type='a{FINDING_STRUCT}' access='read'/>
    <!-- binfmt_misc's global switch (its status file) -->
    <property name='BinfmtEnabled' type='b' access='read'/>
    <method name='Reconcile'>
      <arg direction='out' type='s' name='state'/>
      <arg direction='out' type='a{APPLIED_STRUCT}' name='applied'/>
    </method>
    <method name='Reload'/>
    <method name='Plan'>
      <arg direction='out' type='a{ACTION_STRUCT}' name='actions'/>
      <arg direction='out' type='a{PROBLEM_STRUCT}' name='problems'/>
    </method>
    <method name='Test'>
      <arg direction='in' type='as' name='architectures'/>
      <arg direction='out' type='a{TEST_STRUCT}' name='results'/>
    </method>
    <!-- take the new interpreter file of an architecture that hold: true keeps on the one
         registered before (it is still tried on its probe first); its state and message after -->
    <method name='Release'>
      <arg direction='in' type='s' name='architecture'/>
      <arg direction='out' type='s' name='state'/>
      <arg direction='out' type='s' name='message'/>
    </method>
    <!-- which entry of the table it keeps would run a file, with what, or why nothing would
         (as `multiarchctl explain` says it): the caller reads the file and sends its name (its
         path as it would be run: extension entries look at it), its first 256 bytes and
         whether its mode lets it be run; multiarchd opens nothing for a caller. Out: its
         format, the outcome (entry, native, script, fails), the entry, the interpreter, its
         flags, the QEMU CPU model its file carries, the reason (when it fails, or another
         tool's entry takes it, or it is held), the message and the one fix -->
    <method name='Explain'>
      <arg direction='in' type='s' name='name'/>
      <arg direction='in' type='ay' name='header'/>
      <arg direction='in' type='b' name='executable'/>
      <arg direction='out' type='s' name='format'/>
      <arg direction='out' type='s' name='outcome'/>
      <arg direction='out' type='s' name='entry'/>
      <arg direction='out' type='s' name='interpreter'/>
      <arg direction='out' type='s' name='flags'/>
      <arg direction='out' type='s' name='cpu'/>
      <arg direction='out' type='s' name='reason'/>
      <arg direction='out' type='s' name='message'/>
      <arg direction='out' type='s' name='fix'/>
    </method>
    <signal name='Reconciled'>
      <arg type='a{CHANGE_STRUCT}' name='changes'/>
      <arg type='s' name='state'/>
    </signal>
  </interface>
</node>
"""

ArchStruct = tuple[str, str, str, str, str, str, str, str, bool]
ForeignStruct = tuple[str, bool, str, list[str], bool]
FindingStruct = tuple[str, str, str, str, str]
ProblemStruct = tuple[str, int, int, str]
ActionStruct = tuple[str, str, str, str]
AppliedStruct = tuple[str, str, str, str, str]


def arch_struct(s: Status) -> ArchStruct:
    return (s.name, s.kind, s.state.value, s.interpreter, s.emulator, s.flags, s.entry,
            s.message, s.explicit)


def status_from(r: ArchStruct) -> Status:
    name, kind, state, interpreter, emulator, flags, entry, message, explicit = r
    return Status(name, kind, State(state), entry, interpreter, emulator, flags, message,
                  bool(explicit))


def finding_struct(f: Finding) -> FindingStruct:
    return (f.entry, f.severity.value, f.kind, f.reason, f.fix)


def finding_from(r: FindingStruct) -> Finding:
    entry, severity, kind, reason, fix = r
    return Finding(entry, Severity(severity), kind, reason, fix)


def foreign_struct(f: Foreign) -> ForeignStruct:
    return (f.name, f.enabled, f.interpreter, list(f.overlaps), f.wins)


def foreign_from(r: ForeignStruct) -> Foreign:
    name, enabled, interpreter, overlaps, wins = r
    return Foreign(name, bool(enabled), interpreter, tuple(overlaps), bool(wins))


def problem_struct(p: Problem) -> ProblemStruct:
    return (p.place.file, p.place.line, p.place.column, p.message)


def problem_from(r: ProblemStruct) -> Problem:
    file, line, column, message = r
    return Problem(Place(file, int(line), int(column)), message)


def action_struct(a: Action) -> ActionStruct:
    return (a.kind.value, printable(a.entry), a.reason,
            a.registration.register_line() if a.registration else "")


def action_from(r: tuple[str, ...]) -> Action:
    kind, entry, reason, line = r[:4]
    return Action(Kind(kind), entry, reason, Registration.from_line(line) if line else None)


def applied_struct(o: Outcome) -> AppliedStruct:
    return (*action_struct(o.action), o.error or "")


def outcome_from(r: AppliedStruct) -> Outcome:
    return Outcome(action_from(r), r[4] or None)


def change_structs(plan: Plan) -> list[tuple[str, str, str]]:
    return [(a.kind.value, printable(a.entry), a.reason) for a in plan.actions]


ExplainStruct = tuple[str, str, str, str, str, str, str, str, str]


def explain_struct(e: Explanation) -> ExplainStruct:
    return (e.format, e.outcome.value, e.entry or "", e.interpreter or "", e.flags, e.cpu or "",
            e.reason.value if e.reason else "", e.message, e.fix)


def cpu_models(statuses: Sequence[Status]) -> dict[str, str]:
    return {s.name: s.cpu for s in statuses if s.cpu}


def report_from(statuses: list[ArchStruct], foreign: list[ForeignStruct],
                problems: list[ProblemStruct], binfmt_enabled: bool,
                applied: Sequence[AppliedStruct] = (), policy_rejected: bool = False,
                models: dict[str, str] | None = None,
                findings: Sequence[FindingStruct] = ()) -> Report:
    models = models or {}
    return Report(tuple(replace(s, cpu=models.get(s.name, "")) if s.kind == "arch" else s
                        for s in map(status_from, statuses)),
                  tuple(foreign_from(r) for r in foreign),
                  tuple(problem_from(r) for r in problems),
                  tuple(outcome_from(r) for r in applied), bool(binfmt_enabled), policy_rejected,
                  tuple(finding_from(r) for r in findings))
