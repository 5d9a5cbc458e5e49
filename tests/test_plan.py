"""plan(desired, observed) is pure: given both, the actions are these, one example each."""

from __future__ import annotations

from typing import Any

from multiarchd.catalog import load_catalog
from multiarchd.core.desired import Desired, Want, Why, desired
from multiarchd.core.plan import Kind, plan
from multiarchd.core.report import State, build_report
from multiarchd.model.flags import Flags
from multiarchd.model.host import FileState, Host
from multiarchd.model.policy import ForeignMode, Policy
from multiarchd.model.registration import Registration
from multiarchd.model.observed import Entry, Observed

CATALOG = load_catalog()
QEMU = "/usr/bin/qemu-{}-static"
HOST = Host("x86_64", {QEMU.format(a): FileState.OK for a in CATALOG.arches})
FP = Flags.parse("FP")


def reg(arch: str, name: str | None = None, interp: str | None = None,
        flags: Flags = FP) -> Registration:
    a = CATALOG.arches[arch]
    return Registration(name or f"multiarch-{arch}", interp or QEMU.format(arch), flags,
                        a.magic, a.mask)


def entry(r: Registration, enabled: bool = True, order: int = 1) -> Entry:
    return Entry(r, enabled, order)


def want(arches: dict[str, dict[str, Any]], foreign: ForeignMode = ForeignMode.KEEP) -> Desired:
    from multiarchd.model.policy import ArchRule
    from multiarchd.model.problems import Place
    rules = {a: ArchRule(arch=a, place=Place("t"), **kw) for a, kw in arches.items()}
    return desired(Policy(files=("t",), flags=FP, arches=rules, foreign=foreign), CATALOG, HOST)


def actions(d: Desired, *entries: Entry) -> list[tuple[str, str]]:
    return [(a.kind.value, a.entry) for a in plan(d, Observed(entries)).actions]


def test_empty_table_registers_what_is_wanted() -> None:
    assert actions(want({"aarch64": {}, "s390x": {}})) == [
        ("register", "multiarch-aarch64"), ("register", "multiarch-s390x")]


def test_converged_table_plans_nothing() -> None:
    d = want({"aarch64": {}})
    assert actions(d, entry(reg("aarch64"))) == []
    assert str(plan(d, Observed((entry(reg("aarch64")),)))) == "nothing to do"


def test_disabled_arch_removes_only_its_own_entry() -> None:
    d = want({"aarch64": {}, "s390x": {"enabled": False}})
    assert actions(d, entry(reg("aarch64")), entry(reg("s390x"))) == [
        ("remove", "multiarch-s390x")]


def test_content_change_is_a_replace_and_says_what_changed() -> None:
    d = want({"aarch64": {"flags": Flags.parse("F")}})
    p = plan(d, Observed((entry(reg("aarch64")),)))
    assert [(a.kind, a.entry) for a in p.actions] == [(Kind.REPLACE, "multiarch-aarch64")]
    assert "flags PF -> F" in str(p)


def test_disabled_owned_entry_is_enabled_again() -> None:
    assert actions(want({"aarch64": {}}), entry(reg("aarch64"), enabled=False)) == [
        ("enable", "multiarch-aarch64")]


def test_owned_entry_not_in_policy_is_removed_foreign_is_kept() -> None:
    d = want({})
    stale = entry(reg("s390x"))
    foreign = entry(reg("aarch64", name="qemu-aarch64"))
    assert actions(d, stale, foreign) == [("remove", "multiarch-s390x")]


def test_native_arch_entry_is_removed() -> None:
    assert actions(want({"x86_64": {}}), entry(reg("x86_64"))) == [("remove", "multiarch-x86_64")]


def test_foreign_entries_disable_and_remove_touch_only_overlapping_ones() -> None:
    foreign = entry(reg("aarch64", name="qemu-aarch64"))
    unrelated = entry(reg("s390x", name="qemu-s390x"))
    for mode, kind in ((ForeignMode.DISABLE, "disable"), (ForeignMode.REMOVE, "remove")):
        d = want({"aarch64": {}}, mode)
        assert actions(d, foreign, unrelated) == [(kind, "qemu-aarch64"),
                                                  ("register", "multiarch-aarch64")]
    d = want({"aarch64": {}}, ForeignMode.DISABLE)
    assert actions(d, entry(foreign.registration, enabled=False), entry(reg("aarch64"))) == []


def test_frozen_entries_are_left_as_they_are() -> None:
    frozen = Want("aarch64", "arch", "multiarch-aarch64", None, Why.ERROR, frozen=True)
    d = Desired((frozen,), ForeignMode.KEEP, ())
    assert actions(d, entry(reg("aarch64", interp="/old"), enabled=False)) == []


def test_order_removes_before_registers() -> None:
    d = want({"aarch64": {}, "s390x": {"enabled": False}, "arm": {}})
    kinds = [k for k, _ in actions(d, entry(reg("s390x")), entry(reg("arm"), enabled=False))]
    assert kinds == ["remove", "register", "enable"]


def test_report_names_shadowing_by_registration_order() -> None:
    d = want({"aarch64": {}})
    ours, theirs = reg("aarch64"), reg("aarch64", name="qemu-aarch64")
    later = build_report(d, Observed((entry(ours, order=1), entry(theirs, order=2))))
    earlier = build_report(d, Observed((entry(theirs, order=1), entry(ours, order=2))))
    s_later = next(s for s in later.statuses if s.name == "aarch64")
    s_earlier = next(s for s in earlier.statuses if s.name == "aarch64")
    assert s_later.state is State.SHADOWED and "qemu-aarch64" in s_later.message
    assert s_earlier.state is State.ACTIVE and "overlaps foreign qemu-aarch64" in s_earlier.message
    assert later.exit_code() == 1 and earlier.exit_code() == 0
    assert earlier.foreign[0].overlaps == ("multiarch-aarch64",) and not earlier.foreign[0].wins


def test_interpreter_replaced_on_disk_is_re_registered_only_with_f() -> None:
    ids = {QEMU.format("aarch64"): "200:new"}
    host = Host("x86_64", HOST.files, ids)
    from multiarchd.model.policy import ArchRule
    from multiarchd.model.problems import Place
    for flags, expect in ((FP, [("replace", "multiarch-aarch64")]), (Flags.parse("P"), [])):
        rules = {"aarch64": ArchRule(arch="aarch64", place=Place("t"), flags=flags)}
        d = desired(Policy(files=("t",), arches=rules), CATALOG, host)
        observed = Observed((entry(reg("aarch64", flags=flags)),))
        assert [(a.kind.value, a.entry) for a in plan(d, observed, {"multiarch-aarch64": "100:old"}).actions] == expect
        assert plan(d, observed, {"multiarch-aarch64": "200:new"}).actions == ()
        assert plan(d, observed, {}).actions == ()  # not known: trust what is registered


def test_a_cpu_model_made_again_is_a_replace_that_names_the_model() -> None:
    """A `cpu:` edit makes the file at the same path again (host/cpu_models.py): the line the
    journal and `multiarchctl apply` show for it says which model the entry now carries."""
    from dataclasses import replace
    made = "/var/lib/multiarchd/cpu/aarch64"
    d = want({"aarch64": {}})
    r = reg("aarch64", interp=made)
    d = replace(d, wants=tuple(replace(w, registration=r, cpu="cortex-a72", interpreter=made)
                               if w.label == "aarch64" else w for w in d.wants),
                remade=frozenset({"multiarch-aarch64"}))
    [a] = plan(d, Observed((entry(r),)), {"multiarch-aarch64": "?"}).actions
    assert (a.kind, a.entry) == (Kind.REPLACE, "multiarch-aarch64")
    assert a.reason == (f"{made} was made again for QEMU with -cpu cortex-a72; F keeps the old "
                        "file open until re-registered"), a.reason
