"""The benchmarks' one set of statistics: medians, nearest-rank percentiles, trials of a call,
and runs taken in turn (A B A B ...) so that a machine whose speed drifts moves both alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median(times: list[float]) -> float:
    return statistics.median(times)


def percentile(times: list[float], q: float) -> float:
    """The nearest-rank q-th percentile (q in 0..100) of `times`."""
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, max(0, round(len(ordered) * q / 100) - 1))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def spread(times: list[float]) -> str:
    """p50 and p99 in milliseconds, and how many."""
    return (f"p50 {median(times) * 1000:7.2f} ms   p99 {percentile(times, 99) * 1000:7.2f} ms"
            f"   (n={len(times)})")


def trials(fn: Callable[[], object], count: int) -> list[float]:
    """Seconds each of `count` calls of fn took."""
    times = []
    for _ in range(count):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def in_turn(count: int, *runs: Callable[[], float]) -> list[list[float]]:
    """Each run returns its own duration; `count` rounds of all of them in turn."""
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(count):
        for i, run in enumerate(runs):
            times[i].append(run())
    return times
