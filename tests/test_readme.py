"""The README's table of bad inputs and faults names tests that exist: it is kept in step with
the suite, not written once and forgotten."""

from __future__ import annotations

import re

from tests.support.paths import REPO


def test_every_fault_in_the_readme_names_a_test_that_exists() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Bad input and faults", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`(test_\w+)`", section))
    defined = {m for path in (REPO / "tests").glob("test_*.py")
               for m in re.findall(r"^def (test_\w+)", path.read_text(), re.M)}
    assert len(named) > 30 and named <= defined, sorted(named - defined)
