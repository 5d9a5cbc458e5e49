"""The policy reader, fuzzed: random text, random bytes, and random values in every field of a
well-formed policy. Whatever comes in: never a traceback; either a policy, or problems that each
name file:line:column; and an accepted entry is one the kernel takes (checked as bytes here,
against the real kernel in test_fuzz_kernel.py)."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from multiarchd.catalog import load_catalog
from multiarchd.model.flags import Flags
from multiarchd.model.policy import Policy
from multiarchd.model.registration import MAX_NAME, MAX_REGISTER, STAND_IN, Registration
from multiarchd.names import OWNED_PREFIX
from multiarchd.policy.files import Unreadable, decode, policy_from

from tests.support.fuzz import examples

CATALOG = load_catalog()
MAIN = "/etc/multiarch/arches.yaml"


def read(data: bytes) -> Policy:
    try:
        text: str | Unreadable = decode(MAIN, data)
    except Unreadable as e:
        text = e
    return policy_from([(MAIN, text)], CATALOG, MAIN)


def well_said(p: Policy) -> None:
    """Every problem has its place; an accepted custom entry fits the kernel."""
    for problem in p.problems:
        assert problem.place.file == MAIN and problem.place.line >= 1 \
            and problem.place.column >= 1, problem
        assert str(problem).startswith(f"{MAIN}:{problem.place.line}:{problem.place.column}: ")
        assert problem.message
    for rule in p.custom:
        name = OWNED_PREFIX + rule.name + STAND_IN
        assert 0 < len(name.encode()) <= MAX_NAME and "/" not in name
        reg = Registration(OWNED_PREFIX + rule.name, rule.interpreter, rule.flags or Flags(),
                           rule.magic, rule.mask, rule.offset, rule.extension)
        assert len(reg.register_line().encode()) <= MAX_REGISTER


@given(st.text(max_size=400))
def test_any_text(text: str) -> None:
    well_said(read(text.encode("utf-8", "surrogatepass")))


@given(st.binary(max_size=400))
def test_any_bytes(data: bytes) -> None:
    well_said(read(data))


scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=40),
                    st.sampled_from(["all", "F", "FP", "POCF", "Q", "\\x7fELF", "\\xff\\x4",
                                     "/usr/bin/true", "/bin/sh", "exe", ".exe", "010", "0x7f",
                                     "keep", "disable", "remove", "qemu", "fex", "arm64",
                                     "arm65", "x86_64", "s390x"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) |
                      st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)
flags = st.lists(st.sampled_from(["F", "P", "O", "C", "Q", ""]), max_size=4)
custom = st.fixed_dictionaries({"name": st.one_of(st.text(max_size=20), values)}, optional={
    "extension": st.one_of(st.text(max_size=10), values), "magic": values, "mask": values,
    "offset": st.one_of(st.integers(-5, 300), values), "flags": flags | values,
    "enabled": values,
    "interpreter": st.one_of(st.sampled_from(["/usr/bin/true", "/bin/sh"]), st.text(max_size=30),
                             values)})
arch = st.fixed_dictionaries({}, optional={
    "enabled": values, "flags": flags | values, "interpreter": st.text(max_size=30) | values,
    "emulators": st.lists(st.sampled_from(["qemu", "fex", "box64", "rosetta", "box86", "nope"]),
                          max_size=3) | values})
policies = st.fixed_dictionaries({}, optional={
    "defaults": st.fixed_dictionaries({}, optional={"flags": flags | values,
                                                    "emulators": values}) | values,
    "arches": st.sampled_from(["all", {}]) | st.dictionaries(
        st.sampled_from(sorted(CATALOG.aliases) + ["all", "arm65", "x"]),
        arch | st.booleans() | values, max_size=6) | values,
    "foreign_entries": values, "verify": values,
    "custom": st.lists(custom, max_size=4) | values,
    "oops": values})


@given(policies)
def test_any_value_in_any_field(document: dict[str, Any]) -> None:
    text = yaml.safe_dump(document, allow_unicode=True)
    p = read(text.encode())
    well_said(p)
    if not p.problems:
        assert set(document) <= {"defaults", "arches", "foreign_entries", "verify", "custom"}


# YAML scalars whose construction used to raise out of the reader: numbers past Python's
# 4,300-digit limit, impossible dates, explicit tags on text that is not of their kind.
digits = st.integers(1, 6000).map(lambda n: "9" * n)
dates = st.builds(lambda y, m, d: f"{y:04d}-{m:02d}-{d:02d}", st.integers(0, 9999),
                  st.integers(0, 13), st.integers(0, 32))
stamps = st.builds(lambda d, h: f"{d} {h:02d}:61:00", dates, st.integers(0, 25))
tagged = st.builds(lambda tag, text: f"{tag} {text}",
                   st.sampled_from(["!!int", "!!float", "!!bool", "!!null", "!!str",
                                    "!!timestamp", "!!binary", "!!merge", "!!value"]),
                   st.sampled_from(["x", "maybe", "0x", "1e999999", "2023-02-30", "", "~",
                                    "0b102", "0o9", ".nan", "1_0", "yes"]) | st.text(
                       alphabet="0123456789.-+xeE_", max_size=12))
yaml_scalars = digits | dates | stamps | tagged
PLACES = ["arches: all\nupdated: {v}\n", "arches: {{s390x: {{enabled: {v}}}}}\n",
          "defaults: {{flags: {v}}}\narches: all\n", "arches: all\nverify: {v}\n",
          "arches: all\ncustom:\n  - {{name: {v}, extension: e, interpreter: /usr/bin/true}}\n",
          "arches: all\ncustom:\n  - {{name: m, magic: 'A', offset: {v}, "
          "interpreter: /usr/bin/true}}\n", "arches: {{{v}: {{}}}}\n", "{v}\n"]


@settings(max_examples=examples(max(14_000, settings().max_examples)))  # the class that once raised
@given(st.sampled_from(PLACES), yaml_scalars)
def test_any_yaml_scalar_in_any_place(place: str, value: str) -> None:
    well_said(read(place.format(v=value).encode()))
