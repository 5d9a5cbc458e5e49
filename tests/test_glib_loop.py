"""The main loop adapter on a real GLib loop: timers, cancelling, repeating, calls handed over
from other threads, a failing callback; and no memory left behind per call (one GLib source per
call, as idle_add and timeout_add make, leaks with Debian 12's PyGObject)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from multiarchd.service.glib_loop import GLibLoop


def rss_kib() -> int:
    return next(int(line.split()[1]) for line in Path("/proc/self/status").read_text()
                .splitlines() if line.startswith("VmRSS"))


def test_timers_fire_in_order_and_a_cancelled_one_does_not() -> None:
    loop, fired = GLibLoop(), []
    loop.call_later(0.02, lambda: fired.append("b"))
    loop.call_later(0.0, lambda: fired.append("a"))
    gone = loop.call_later(0.01, lambda: fired.append("cancelled"))
    loop.cancel(gone)
    ticks = loop.every(0.005, lambda: fired.append("tick"))
    loop.run_until(lambda: "b" in fired)
    loop.cancel(ticks)
    loop.call_later(0.02, lambda: fired.append("c"))
    count = fired.count("tick")
    loop.run_until(lambda: "c" in fired)
    assert fired[0] == "a" and "cancelled" not in fired and count >= 1
    assert fired.count("tick") == count  # no tick after cancel


def test_calls_from_other_threads_and_a_failing_one(capsys: pytest.CaptureFixture[str]) -> None:
    loop, got = GLibLoop(), []

    def boom() -> None:
        raise RuntimeError("boom")
    threads = [threading.Thread(target=lambda i=i: loop.call_soon_threadsafe(
        lambda: got.append(i))) for i in range(20)]
    loop.call_soon_threadsafe(boom)
    for t in threads:
        t.start()
    loop.run_until(lambda: len(got) == 20)
    assert sorted(got) == list(range(20))
    assert "RuntimeError: boom" in capsys.readouterr().err


def test_many_calls_and_timers_leave_no_memory_behind() -> None:
    loop, done = GLibLoop(), [0]

    def bump() -> None:
        done[0] += 1
    for _ in range(2000):  # warm up
        loop.call_soon_threadsafe(bump)
        loop.call_later(0, bump)
    loop.run_until(lambda: done[0] == 4000)
    before = rss_kib()
    for i in range(50_000):
        loop.call_soon_threadsafe(bump)
        loop.cancel(loop.call_later(10, bump))
        loop.call_later(0, bump)
        if i % 1000 == 999:
            loop.run_until(lambda: done[0] == 4000 + 2 * (i + 1))
    assert rss_kib() - before < 1024  # a source per call left about 10 MiB here
