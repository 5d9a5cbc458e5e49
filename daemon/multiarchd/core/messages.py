"""The journal message catalog: each kind of message with its stable MESSAGE_ID and priority,
and the messages a run's changes and problems make. Pure: the journal adapter only sends them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..model.problems import Problem
from ..model.registration import printable
from ..names import OWNED_PREFIX
from .audit import Finding
from .plan import Kind, Outcome
from .report import Report, Status

# syslog priorities
ERR, WARNING, NOTICE, INFO = 3, 4, 5, 6


class Event(enum.Enum):
    """(MESSAGE_ID, priority). The ids are part of the interface: never change one; each is
    explained in config/journal/multiarchd.catalog (what happened, what to do)."""

    REGISTERED = ("844b6d04d94941f7b2a515279639672d", INFO)
    REMOVED = ("461143a45d8444a5b10de540356ce774", INFO)
    REPLACED = ("ea2cf4f3bffa45e48e7f85e337227b13", INFO)
    ENABLED = ("539a05cec1c7459eb3128594f7872afe", INFO)
    DISABLED = ("8524e53fa758437a804f3d756bb98187", NOTICE)  # a foreign entry, by policy
    DRIFT_REPAIRED = ("a25fab571cd54e55b698bfd4e6821b49", NOTICE)
    POLICY_REJECTED = ("75be2dc902df4bd4abfb5c97f1e61252", ERR)
    POLICY_ACCEPTED = ("066a20ec5a9e47cb826ae31cccc48343", NOTICE)
    CONFLICT = ("2b04d812759b4cd6967c4ce8fb412964", WARNING)
    KERNEL_REFUSED = ("f9344c7ca30e4e5dba4d9147a9aa3448", ERR)
    STARTED = ("012a22170be147fdabb2f82b6d03a7ea", INFO)
    STOPPED = ("3d6e9e65ea6141f69980d527b668be48", INFO)
    PROBE_FAILED = ("f920bc0b448c4f11a10d01879acd0c02", ERR)
    BUS_CONNECTED = ("b3387bd1619845fabfb745f6b0f522d0", INFO)
    BUS_LOST = ("1ce62246c37a45d9b97822aae32294cc", WARNING)
    WAITING = ("2daf91337358446c8429de9e8c50d8f2", WARNING)  # binfmt_misc is not mounted
    RUN_FAILED = ("d97bc93ce5c846f8b8014b014a6b13bd", ERR)  # a run could not read or write
    NATIVE_UNKNOWN = ("779ccb1e97754a2687fd8e93d0f70f0b", NOTICE)  # no namespace for probes
    SECOND_DAEMON = ("e282a38a79474352b1ec04539803f3c6", ERR)  # another keeps the table
    NOTIFY_FAILED = ("c83c2bef79934523bd69807cc6512f72", WARNING)  # sd_notify could not be sent
    METRICS_UNWRITABLE = ("5426bf3c119743de941b1e7498345cf8", WARNING)  # --metrics-textfile
    SHADOWED = ("78d0590bc0f94b848d4f2649f4420b19", WARNING)  # another tool's entry took over
    HELD = ("072690ecfab74963a217d0cce062c20e", WARNING)  # a new interpreter file not taken
    AUDIT_FINDING = ("4073c309ca824675abbd8051855e7778", WARNING)  # an entry found unsafe
    LABELS_UNWRITABLE = ("8cbc1450f269428598d81d460f97dcb2", WARNING)  # node_features: in the policy

    @property
    def message_id(self) -> str:
        return self.value[0]

    @property
    def priority(self) -> int:
        return self.value[1]


@dataclass(frozen=True)
class Message:
    event: Event
    message: str
    fields: dict[str, str] = field(default_factory=dict)  # MULTIARCH_* journal fields

    def journal_fields(self) -> dict[str, str]:
        """The message as journald fields (the log adapters add SYSLOG_IDENTIFIER)."""
        return {"MESSAGE": self.message, "MESSAGE_ID": self.event.message_id,
                "PRIORITY": str(self.event.priority),
                "MULTIARCH_EVENT": self.event.name.lower(), **self.fields}


_BY_KIND = {Kind.REGISTER: Event.REGISTERED, Kind.REMOVE: Event.REMOVED,
            Kind.REPLACE: Event.REPLACED, Kind.ENABLE: Event.ENABLED,
            Kind.DISABLE: Event.DISABLED}
_PAST = {Kind.REGISTER: "registered", Kind.REMOVE: "removed", Kind.REPLACE: "replaced",
         Kind.ENABLE: "enabled", Kind.DISABLE: "disabled"}


def _arch_of(entry: str) -> str:
    return entry.removeprefix(OWNED_PREFIX)


def change_messages(outcomes: Iterable[Outcome], drift: frozenset[str] = frozenset()
                   ) -> list[Message]:
    """One message per action: what changed, or what the kernel refused."""
    messages = []
    for o in outcomes:
        a = o.action
        entry = printable(a.entry)  # a foreign entry's name may hold any bytes
        fields = {"MULTIARCH_ARCH": _arch_of(entry), "MULTIARCH_ENTRY": entry,
                  "MULTIARCH_ACTION": a.kind.value}
        if not o.ok:
            then = "not retried while the policy asks for the same" if o.terminal else \
                "will retry on the next run"
            messages.append(Message(Event.KERNEL_REFUSED, f"{o.error}; {then}", fields))
        elif a.entry in drift:
            messages.append(Message(Event.DRIFT_REPAIRED,
                                  f"repaired {entry} ({a.kind.value}): {a.reason}", fields))
        else:
            messages.append(Message(_BY_KIND[a.kind], f"{_PAST[a.kind]} {entry}: {a.reason}",
                                  fields))
    return messages


def problem_messages(problems: Iterable[Problem], rejected: bool,
                    last_good: bool = False) -> list[Message]:
    """The policy's problems; `rejected`: the whole policy was, and with `last_good` the one
    accepted before stays in force."""
    messages = []
    for p in problems:
        fields = {"MULTIARCH_POLICY_FILE": p.place.file}
        if p.scope:
            fields["MULTIARCH_ARCH" if p.scope[0] == "arch" else "MULTIARCH_ENTRY"] = p.scope[1]
        messages.append(Message(Event.POLICY_REJECTED, str(p), fields))
    if rejected and last_good:
        messages.append(Message(Event.POLICY_REJECTED, "policy rejected; the last good policy "
                              "stays in force (and drift is healed) until the file is fixed"))
    elif rejected:
        messages.append(Message(Event.POLICY_REJECTED, "policy rejected; every registration is "
                              "left as it was until the file is fixed"))
    return messages


def outcome_messages(report: Report, drift: frozenset[str] = frozenset()) -> list[Message]:
    """What a run tells: one message per change (in the order made), then the policy's
    problems."""
    return [*change_messages(report.outcomes, drift),
            *problem_messages(report.problems, report.rejected, last_good=bool(report.statuses))]


def conflict_message(entry: str, writes: int, window: float) -> Message:
    return Message(Event.CONFLICT,
                  f"conflict on {entry}: another writer keeps undoing it ({writes} repairs in "
                  f"{window:g} s); backing off, will repair again when it stops",
                  {"MULTIARCH_ARCH": _arch_of(entry), "MULTIARCH_ENTRY": entry,
                   "MULTIARCH_ACTION": "backoff"})


def finding_message(finding: Finding) -> Message:
    """One finding of the audit (core/audit.py), said once while it lasts."""
    return Message(Event.AUDIT_FINDING, f"audit: {finding}",
                  {"MULTIARCH_ENTRY": finding.entry, "MULTIARCH_FINDING": finding.kind,
                   "MULTIARCH_SEVERITY": finding.severity.value,
                   "MULTIARCH_ACTION": "audit"})


def state_message(status: Status) -> Message | None:
    """A state said once when it starts (and again when its reason changes): an entry of ours
    that another tool's entry, registered later, takes over; one held on its old interpreter
    file (core/gate.py)."""
    event = {"shadowed": Event.SHADOWED, "held": Event.HELD}.get(status.state.value)
    if event is None:
        return None
    said = " held" if event is Event.HELD else ""  # ("shadowed by ..." says it itself)
    return Message(event, f"{status.entry}{said}: {status.message}",
                  {"MULTIARCH_ARCH": status.name if status.kind == "arch" else "",
                   "MULTIARCH_ENTRY": status.entry, "MULTIARCH_ACTION": status.state.value})
