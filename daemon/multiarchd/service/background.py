"""Work off the main loop (the Background protocol): a bounded number of worker threads, whose
results are handed back to the main loop. The threads are daemon threads: stopping the service
does not wait for a probe that hangs (its emulator is killed by the probe's own timeout)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from .protocols import Loop

T = TypeVar("T")


class Workers:
    def __init__(self, loop: Loop, workers: int = 4) -> None:
        self.loop = loop
        self.slots = threading.BoundedSemaphore(workers)

    def run(self, work: Callable[[], T], then: Callable[[T], None]) -> None:
        def worker() -> None:
            with self.slots:
                value = work()
            self.loop.call_soon_threadsafe(lambda: then(value))
        threading.Thread(target=worker, name="multiarchd-probe", daemon=True).start()
