"""Custom entries fuzzed through a real (private) binfmt_misc table: for any policy of custom
entries, either the policy rejects an entry with its place, or the kernel takes it and gives it
back exactly as the policy says; and the table settles in one run (a second run has nothing to
do). The kernel is the judge of what check-config lets through."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from multiarchd.kernel.table import BinfmtTable
from multiarchd.model.options import Config
from multiarchd.model.registration import owned
from multiarchd.reconciler.run import reconcile_once

from tests.support.binfmt import PrivateBinfmt
from tests.support.fuzz import examples

LONG = bool(os.environ.get("MULTIARCH_LONG_TESTS"))
FILE_NAME = st.text(st.characters(codec="utf-8", blacklist_characters="/\0"),
                    min_size=1, max_size=24)


def escaped(data: bytes, literal: list[bool]) -> str:
    """Bytes as the policy writes them: some literal (when printable), the rest \\xHH."""
    return "".join(chr(b) if keep and 0x20 < b < 0x7f and b != 0x5c else f"\\x{b:02x}"
                   for b, keep in zip(data, literal + [False] * len(data)))


def mostly(draw: st.DrawFn, usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> Any:
    """Nine times in ten a value of the usual kind, else anything: most entries get through
    validation to the kernel, and the odd ones test the refusals."""
    return draw(usual if draw(st.integers(0, 9)) else odd)


PLAIN = st.characters(blacklist_characters="/:.\\", blacklist_categories=("Cs", "Cc", "Cf",
                                                                           "Zs", "Zl", "Zp"))


@st.composite
def entries(draw: st.DrawFn) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": mostly(draw, st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,40}", fullmatch=True),
                       st.text(max_size=12)),
        # A file of that name is made in a trusted directory.
        "interpreter": mostly(draw, st.text(PLAIN, min_size=1, max_size=24), FILE_NAME),
        "flags": sorted(draw(st.sets(st.sampled_from("POCF")))),
        "enabled": mostly(draw, st.just(True), st.booleans()),
    }
    if draw(st.booleans()):
        entry["extension"] = mostly(draw, st.text(PLAIN, min_size=1, max_size=12),
                                    st.text(min_size=1, max_size=12))
    else:
        magic = draw(st.binary(min_size=1, max_size=40))
        entry["magic"] = escaped(magic, draw(st.lists(st.booleans(), max_size=40)))
        if draw(st.booleans()):
            entry["mask"] = escaped(draw(st.binary(min_size=len(magic), max_size=len(magic))),
                                    draw(st.lists(st.booleans(), max_size=40)))
        entry["offset"] = mostly(draw, st.integers(0, 200), st.integers(0, 300))
    return entry


@pytest.mark.kernel
@settings(max_examples=examples(20_000 if LONG else 500),
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(custom=st.lists(entries(), min_size=1, max_size=4, unique_by=lambda e: e["name"]))
def test_what_the_policy_accepts_the_kernel_takes_and_gives_back(
        custom: list[dict[str, Any]], binfmt: PrivateBinfmt, trusted_dir: Path,
        tmp_path: Path) -> None:
    for entry in custom:
        path = trusted_dir / entry["interpreter"]
        try:
            if not path.exists():
                os.link("/usr/bin/true", path)
        except OSError:  # a name no file system takes ('.', '..', too long): not a fuzz case
            assume(False)
        entry["interpreter"] = str(path)
    policy = tmp_path / "arches.yaml"
    policy.write_text(yaml.safe_dump({"arches": {}, "custom": custom}, allow_unicode=True))
    config = Config(str(policy), binfmt.path)

    result = reconcile_once(config)

    assert result.desired is not None
    for p in result.report.problems:
        assert p.place.line >= 1 and p.scope is not None, p  # each refusal with its place
    assert all(o.ok for o in result.report.outcomes), result.report.outcomes
    held = {e.name: e for e in BinfmtTable(binfmt.path).read().entries}
    registered = sum(w.registration is not None for w in result.desired.wants)
    event(f"{registered} of {len(custom)} registered")
    for want in result.desired.wants:
        if want.registration is not None:
            assert held[want.entry].registration == want.registration  # read back exactly
    assert not [n for n in held if owned(n) and n.endswith("~")]  # no stand-in left
    again = reconcile_once(config)
    assert not again.plan and not again.report.outcomes  # settled in one run
