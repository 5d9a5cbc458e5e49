"""The fast lane stays fast and the suite keeps its long fuzzing: each fuzzer's count of
examples as each lane gives it, read from the test functions themselves (hypothesis keeps its
settings on them) in a fresh interpreter per lane, as pytest would load them."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support import fuzz
from tests.support.paths import REPO

FUZZED = sorted(p.stem for p in (REPO / "tests").glob("test_*.py")
                if "@given" in p.read_text())
READ = """
import importlib, json, sys
from tests.support import fuzz
fuzz.load(sys.argv[1])
counts = {}
for module in sys.argv[2:]:
    m = importlib.import_module("tests." + module)
    for name, f in vars(m).items():
        s = getattr(f, "_hypothesis_internal_use_settings", None)
        if name.startswith("test_") and s is not None:
            counts[module + "::" + name] = s.max_examples
print(json.dumps(counts))
"""


def counts(lane: str) -> dict[str, int]:
    r = subprocess.run([sys.executable, "-c", READ, lane, *FUZZED], cwd=REPO,
                       capture_output=True, text=True, timeout=120, check=True)
    return dict(json.loads(r.stdout))


def test_the_lanes_are_chosen_by_the_selection() -> None:
    assert fuzz.lane_of("fast", long=False) == fuzz.FAST
    assert fuzz.lane_of("", long=False) == fuzz.SUITE  # dev/test, a file, -k
    assert fuzz.lane_of("not vm", long=False) == fuzz.SUITE
    assert fuzz.lane_of("fast", long=True) == fuzz.LONG


def test_the_fast_lane_fuzzes_a_little_and_the_suite_as_much_as_before() -> None:
    fast, suite = counts(fuzz.FAST), counts(fuzz.SUITE)
    assert fast.keys() == suite.keys() and len(fast) >= 10
    assert max(fast.values()) <= fuzz.FAST_EXAMPLES, fast
    # the class of policy values that once raised keeps its 14,000 in the suite
    assert suite["test_fuzz_policy::test_any_yaml_scalar_in_any_place"] == 14_000
    assert suite["test_arguments::test_the_light_reading_is_argparses_wherever_it_reads"] == 3000
    assert suite["test_fuzz_policy::test_any_value_in_any_field"] == 2000  # the profile's own
