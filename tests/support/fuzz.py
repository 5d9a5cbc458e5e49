"""How many examples the fuzzers try, by lane: the fast lane (`pytest -m fast`, the loop of
someone editing) a modest number each; the suite (dev/test, any other selection) the thousands
each fuzzer asks for; MULTIARCH_LONG_TESTS=1 tens of thousands. tests/conftest.py picks the
lane before any test module is read, so each module's `examples(n)` sees it."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

FAST, SUITE, LONG = "fast", "suite", "long"
# The fast lane's count for every fuzzer: each still walks its strategies' edges (hypothesis
# tries the small and the extreme values first), in a second or two, not the ~90 s of the
# suite's counts on two busy cores.
FAST_EXAMPLES = 60

settings.register_profile(FAST, max_examples=FAST_EXAMPLES, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(SUITE, max_examples=2000, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(LONG, max_examples=50_000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])

_lane = SUITE


def lane_of(markexpr: str, long: bool) -> str:
    """The lane a run is in: long when asked for, fast when only the fast tests run."""
    return LONG if long else FAST if markexpr.strip() == "fast" else SUITE


def load(lane: str) -> None:
    global _lane
    _lane = lane
    settings.load_profile(lane)


def examples(n: int) -> int:
    """`n` examples for a fuzzer that asks for its own count, but no more than the fast lane's
    in the fast lane."""
    return min(n, FAST_EXAMPLES) if _lane == FAST else n
