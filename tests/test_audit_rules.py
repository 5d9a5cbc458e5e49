"""The audit's rules (core/audit.py), pure: what each kind of entry is judged, from facts given
here (tests/test_audit.py plants them in a real table)."""

from __future__ import annotations

from multiarchd.catalog import load_catalog
from multiarchd.core.audit import AuditFacts, Severity, audit
from multiarchd.core.probes import build
from multiarchd.model.flags import Flags
from multiarchd.model.host import FileId, FileState
from multiarchd.model.registration import Registration
from multiarchd.model.observed import Entry, Observed

CATALOG = load_catalog()
X86 = CATALOG.arches["x86_64"]
FACTS = AuditFacts(native=(("any static x86_64 program", build(X86)),),
                   emulators=frozenset({"/usr/bin/qemu-arm-static", "qemu-arm-static"}))


def entry(name: str, interpreter: str, flags: str = "", arch: str = "arm",
          enabled: bool = True, order: int = 1) -> Entry:
    a = CATALOG.arches[arch]
    return Entry(Registration(name, interpreter, Flags.parse(flags), a.magic, a.mask), enabled,
                 order)


def kinds(*entries: Entry, facts: AuditFacts = FACTS,
          opened: dict[str, FileId] | None = None) -> list[tuple[str, str, str]]:
    return [(f.entry, f.kind, f.severity.value)
            for f in audit(Observed(entries), facts, opened)]


def test_a_known_emulator_with_its_package_flags_is_fine() -> None:
    assert kinds(entry("qemu-arm", "/usr/bin/qemu-arm-static", "OCF")) == []
    assert kinds(entry("multiarch-arm", "/var/lib/multiarchd/cpu/arm", "PF")) == []


def test_native_magic_is_high_and_medium_while_disabled() -> None:
    assert kinds(entry("x", "/usr/bin/qemu-arm-static", arch="x86_64")) == \
        [("x", "native-magic", "high")]
    assert kinds(entry("x", "/usr/bin/qemu-arm-static", arch="x86_64", enabled=False)) == \
        [("x", "native-magic", "medium")]


def test_o_or_c_on_an_unknown_interpreter() -> None:
    assert kinds(entry("o", "/opt/thing", "O")) == [("o", "unknown-interpreter-flags", "medium")]
    assert kinds(entry("c", "/opt/thing", "OC")) == [("c", "unknown-interpreter-flags", "high")]
    assert kinds(entry("p", "/opt/thing", "PF")) == []  # nothing given that it could misuse


def test_an_interpreter_replaced_under_an_f_entry_of_ours() -> None:
    e = entry("multiarch-arm", "/usr/bin/qemu-arm-static", "PF")
    facts = AuditFacts(FACTS.native, {}, {"/usr/bin/qemu-arm-static": "2:new"}, FACTS.emulators)
    assert kinds(e, facts=facts, opened={"multiarch-arm": "1:old"}) == \
        [("multiarch-arm", "interpreter-replaced", "medium")]
    assert kinds(e, facts=facts, opened={"multiarch-arm": "2:new"}) == []


def test_untrusted_interpreter_and_gone_interpreter() -> None:
    facts = AuditFacts(FACTS.native, {"/home/u/q": (FileState.UNTRUSTED, "owned by uid 1000"),
                                      "/gone": (FileState.MISSING, "")}, {}, FACTS.emulators)
    assert kinds(entry("u", "/home/u/q", "PF"), facts=facts) == \
        [("u", "untrusted-interpreter", "medium")]
    assert kinds(entry("g", "/gone", "PF"), facts=facts) == [("g", "interpreter-gone", "medium")]
    [f] = audit(Observed((entry("c", "/home/u/q", "OCF"),)), facts)
    assert (f.kind, f.severity) == ("untrusted-credentials", Severity.HIGH)
    assert "owned by uid 1000" in f.reason and f.fix
