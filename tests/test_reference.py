"""The reference (the man pages) kept true both ways: every D-Bus member, verb, option, policy
key, state, audit finding and journal MESSAGE_ID of the code has its entry in the right page,
and every entry a page lists is one the code has. The pages' lists are read from their `.TP`
tags, section by section, so a member renamed, added or removed on either side fails here."""

from __future__ import annotations

import argparse
import re
import xml.etree.ElementTree as ET

from multiarchd.cli import multiarchctl as ctl
from multiarchd.cli import multiarchd as daemon
from multiarchd.core.explain import Outcome, Reason
from multiarchd.core.messages import Event
from multiarchd.core.report import DaemonState, State
from multiarchd.dbus import api
from multiarchd.model.policy import ARCH_KEYS, CUSTOM_KEYS, DEFAULTS_KEYS, TOP_KEYS, ForeignMode

from tests.support.paths import REPO

PACKAGE = REPO / "daemon" / "multiarchd"
HELP = {"-h", "--help"}
COMMON = {"--config", "--binfmt-dir"}  # every verb takes them (OPTIONS)


def plain(roff: str) -> str:
    """Roff as a reader sees the words: font escapes gone, \\- a hyphen."""
    for escape, text in (("\\-", "-"), ("\\(aq", "'"), ("\\(dq", '"'), ("\\(->", "->"),
                         ("\\&", ""), ("\\e", "\\")):
        roff = roff.replace(escape, text)
    return re.sub(r"\\f[BIRP]", "", roff)


def sections(page: str, macro: str = ".SH") -> dict[str, str]:
    """A page (or a section) cut at each `.SH` (or `.SS`), by title; '' is what comes before."""
    parts = re.split(rf"^{re.escape(macro)} (.*)$", (REPO / "man" / page).read_text()
                     if macro == ".SH" else page, flags=re.M)
    return {"": parts[0], **{t.strip('"'): body for t, body in zip(parts[1::2], parts[2::2])}}


def tags(block: str) -> list[str]:
    """The tag line of each `.TP` in a block, as words (its macro, .B .BR .BI, dropped)."""
    found = re.findall(r"^\.TP\n(.*)$", block, re.M)
    return [re.sub(r'^\.(?:B|I|BR|BI|IR|RB)\s+|"', "", plain(t)).strip() for t in found]


def names(block: str) -> set[str]:
    return {re.match(r"[\w.:-]+", t).group(0) for t in tags(block)}  # type: ignore[union-attr]


def options(text: str) -> set[str]:
    return set(re.findall(r"--[a-z][a-z-]*", text))


def parser_options(p: argparse.ArgumentParser) -> set[str]:
    return {o for a in p._actions for o in a.option_strings} - HELP


def verbs() -> dict[str, argparse.ArgumentParser]:
    [sub] = [a for a in ctl.parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


# -- the D-Bus API: io.github.multiarchd1(5) ------------------------------------------------------

def interface() -> ET.Element:
    xml = ET.parse(REPO / "config" / "dbus" / "io.github.multiarchd1.Manager.xml")
    [iface] = [i for i in xml.getroot() if i.get("name") == api.INTERFACE]
    return iface


def signature(member: ET.Element, direction: str | None) -> list[str]:
    return [a.get("type", "") for a in member.findall("arg")
            if direction is None or a.get("direction") == direction]


def arguments(text: str) -> list[str]:
    """`Name(s a, ay b)` or `(s c)` as ['s', 'ay']: the types of the arguments in parentheses."""
    inner = text[text.index("(") + 1:text.rindex(")")]
    return [arg.split()[0] for arg in inner.split(", ") if arg.strip()]


def test_the_dbus_page_lists_every_member_with_its_types_and_nothing_else() -> None:
    page = sections("io.github.multiarchd1.5")
    iface = interface()
    methods = {m.get("name"): m for m in iface.findall("method")}
    props = {p.get("name"): p.get("type") for p in iface.findall("property")}
    signals = {s.get("name"): s for s in iface.findall("signal")}
    assert names(page["METHODS"]) == set(methods)
    assert names(page["PROPERTIES"]) == set(props)
    assert names(page["SIGNALS"]) == set(signals)
    for tag in tags(page["METHODS"]):
        m = methods[tag.split("(")[0]]
        assert [arguments(part) for part in tag.split(" -> ")] == \
            [signature(m, "in"), signature(m, "out")], tag
    for tag in tags(page["PROPERTIES"]):
        name, kind = re.fullmatch(r"(\w+) \((.*)\)", tag).groups()  # type: ignore[union-attr]
        assert props[name] == kind, tag
    for tag in tags(page["SIGNALS"]):
        assert arguments(tag) == signature(signals[tag.split("(")[0]], None), tag
    # The daemon's states and Explain's outcomes, in the words the interface answers.
    state = page["PROPERTIES"].split(".B State", 1)[1].split(".TP", 1)[0]
    assert {s.value for s in DaemonState} <= set(re.findall(r"^\.BR? ([\w-]+)", plain(state),
                                                            re.M))
    explain = page["METHODS"].split(".B Explain(", 1)[1]
    assert {o.value for o in Outcome} <= set(re.findall(r"^\.BR? (\w+)", explain, re.M))


def test_the_dbus_page_lists_every_error_and_polkit_action_and_nothing_else() -> None:
    page = sections("io.github.multiarchd1.5")
    ours = {n for n in names(page["ERRORS"]) if n.startswith(api.ERROR)}
    assert ours == {api.error_name(e) for e in api.DOMAIN_ERRORS}
    source = "".join(p.read_text() for p in (PACKAGE / "dbus").glob("*.py"))
    for standard in names(page["ERRORS"]) - ours:
        assert standard.startswith("org.freedesktop.DBus.Error."), standard
        assert standard.rsplit(".", 1)[1] in source, standard
    policy = (REPO / "config" / "polkit" / "io.github.multiarchd1.policy").read_text()
    assert names(page["POLKIT ACTIONS"]) == set(re.findall(r'<action id="([^"]+)"', policy))


# -- multiarchctl(1) --------------------------------------------------------------------------------

def test_multiarchctl_page_lists_every_verb_with_its_options_and_nothing_else() -> None:
    page = sections("multiarchctl.1")
    by_verb = {t.split()[0]: t for t in tags(page["VERBS"])}
    assert set(by_verb) == set(verbs())
    for verb, p in verbs().items():
        assert options(by_verb[verb]) == parser_options(p) - COMMON, verb
    shared = options(" ".join(tags(page["OPTIONS"])))
    everything = set().union(*map(parser_options, verbs().values()), parser_options(ctl.parser()))
    assert COMMON <= shared <= everything


def test_multiarchctl_page_lists_every_state_and_finding_and_explain_reason() -> None:
    page = sections("multiarchctl.1")
    states = sections(page["STATES"], ".SS")
    assert names(states["Architectures and custom entries"]) == {s.value for s in State}
    assert names(states["The daemon"]) == {s.value for s in DaemonState}
    audit = (PACKAGE / "core" / "audit.py").read_text()
    kinds = set(re.findall(r'Severity\.(?:HIGH|MEDIUM),\s*"([a-z-]+)"', audit))
    assert len(kinds) >= 9 and names(page["FINDINGS"]) == kinds
    explain = page["VERBS"].split(".B explain", 1)[1]
    [listed] = re.findall(r"\((\\fBnot\\-executable.*?)\)", explain, re.S)
    assert set(re.findall(r"\\fB([\w-]+)\\fR", listed.replace("\\-", "-"))) == \
        {r.value for r in Reason}


# -- multiarchd(8) --------------------------------------------------------------------------------

def test_multiarchd_page_lists_every_option_and_message_id_and_nothing_else() -> None:
    page = sections("multiarchd.8")
    assert options(" ".join(tags(page["OPTIONS"]))) == parser_options(daemon.parser())
    assert options(plain(page["SYNOPSIS"])) <= parser_options(daemon.parser())
    assert names(page["JOURNAL"]) == {e.message_id for e in Event}


# -- arches.yaml(5) -------------------------------------------------------------------------------

def test_policy_page_lists_every_key_where_it_belongs_and_nothing_else() -> None:
    keys = sections(sections("arches.yaml.5")["KEYS"], ".SS")
    assert names(keys[""]) == set(TOP_KEYS)
    assert names(keys["defaults"]) == set(DEFAULTS_KEYS)
    assert names(keys["Under an architecture"]) == set(ARCH_KEYS)
    assert names(keys["Custom entries"]) == set(CUSTOM_KEYS)
    foreign = keys[""].split(".B foreign_entries", 1)[1].split(".TP", 1)[0]
    assert {m.value for m in ForeignMode} <= set(re.findall(r"^\.BR? ([\w-]+)", plain(foreign),
                                                            re.M))


# -- HACKING.md's layout ----------------------------------------------------------------------------

def test_the_layout_names_every_module_and_nothing_else() -> None:
    listed: dict[str, set[str]] = {}
    for row in re.findall(r"^\| (`\w+/`|\(top\)) \|[^|]*\| (.*) \|$",
                          (REPO / "HACKING.md").read_text(), re.M):
        where = row[0].strip("`/") if row[0] != "(top)" else ""
        listed.setdefault(where, set()).update(re.findall(r"(?:^|, |and |: )`(\w+)`", row[1]))
    actual: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if path.stem != "__init__":
            where = "" if path.parent == PACKAGE else path.parent.name
            actual.setdefault(where, set()).add(path.stem)
    assert {k: v for k, v in listed.items() if v} == actual
