"""Work off the main loop (the Background protocol): a fixed pool of worker threads, whose
results are handed back to the main loop. The same threads serve every probe for the life of the
service (a thread per probe would leave its stack behind in the allocator's cache: memory that
grows with every repair). They are daemon threads: stopping the service does not wait for a
probe that hangs (its emulator is killed by the probe's own timeout)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from .protocols import Loop

T = TypeVar("T")


class Workers:
    def __init__(self, loop: Loop, workers: int = 4) -> None:
        self.loop = loop
        self.size = workers
        self.jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self.threads: list[threading.Thread] = []

    def run(self, work: Callable[[], T], then: Callable[[T], None]) -> None:
        def job() -> None:
            value = work()
            self.loop.call_soon_threadsafe(lambda: then(value))
        # Handed over from the loop, once the caller is done: the first run's probes do not
        # compete with it for the CPU before READY=1 is sent.
        self.loop.call_soon_threadsafe(lambda: self._submit(job))

    def _submit(self, job: Callable[[], None]) -> None:
        if len(self.threads) < self.size:  # started as needed, then kept
            thread = threading.Thread(target=self._serve, name="multiarchd-probe", daemon=True)
            self.threads.append(thread)
            thread.start()
        self.jobs.put(job)

    def _serve(self) -> None:
        while True:
            job: Any = self.jobs.get()
            job()
