"""The reconciler: runs one reconcile at a time and says what comes next.

The contract, as controller-runtime's: reconciliation is level-based, so a trigger only says
*look again* and every run re-reads the policy, the host and the kernel table and converges.
Each run answers with a Step that says when to look again even if nothing happens (a retry
after a kernel refusal or a failed read, the end of a conflict back-off, the safety timer) or
that binfmt_misc is not mounted; every retry rule lives here and nowhere else.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from ..core.plan import Plan
from ..core.result import Result
from ..model.errors import NotMounted, PolicyRejected
from ..model.options import Config, Options
from ..model.problems import Problem
from ..host.filecache import FileCache
from ..policy.files import PolicyCache
from .history import History
from .run import Table, ensure_mounted, evaluate, reconcile_once


@dataclass(frozen=True)
class Step:
    """What one run did and when the next must happen."""

    result: Result | None  # None: no run could happen (see `why`)
    requeue_after: float  # seconds until the next run even with no event
    why: str = ""  # why no run could happen
    waiting: bool = False  # binfmt_misc is not mounted: a change of the mount table matters


RunOnce = Callable[[Config, History, float], Result]


class Reconciler:
    def __init__(self, config: Config, options: Options, table: Table,
                 clock: Callable[[], float] = time.monotonic, run_once: RunOnce | None = None,
                 standard_place: bool = True) -> None:
        self.config = config
        self.options = options
        self.table = table
        self.clock = clock
        self.run_once = run_once or self._run_once
        self.policies = PolicyCache()  # the policy, parsed again only when a file changed
        self.files = FileCache()  # the interpreters, walked again only when their way changed
        self.standard_place = standard_place  # binfmt_misc's own place: we may mount it there
        self.history = History(options.repair_limit, options.repair_window)
        self._failed_runs = 0  # runs in a row with a kernel refusal or a failed read

    def _run_once(self, config: Config, history: History, now: float) -> Result:
        return reconcile_once(config, history=history, mount=False, now=now, keep_record=True,
                              policies=self.policies, files=self.files)

    def run(self) -> Step:
        try:
            mounted = ensure_mounted(self.table, self.options.mount and self.standard_place,
                                     self.config.private)
        except Exception as e:  # noqa: BLE001 - a failed mount must not kill the daemon
            return self._waiting(f"cannot mount binfmt_misc at {self.config.binfmt_dir}: {e}")
        if not mounted:
            return self._waiting(f"binfmt_misc is not mounted at {self.config.binfmt_dir}")
        try:
            result = self.run_once(self.config, self.history, self.clock())
        except NotMounted as e:
            return self._waiting(str(e))
        except OSError as e:
            # An unreadable table or policy directory: say so, keep running, and try again.
            self._failed_runs += 1
            return Step(None, self._next(failing=True), f"reconcile failed: {e}")
        except Exception as e:  # noqa: BLE001 - a bug met by one run must not stop the repairs
            # (or leave callers unanswered and the state as the run before left it)
            self._failed_runs += 1
            where = traceback.extract_tb(e.__traceback__)[-1]
            return Step(None, self._next(failing=True),
                        f"reconcile failed: {type(e).__name__}: {e} (a bug, at "
                        f"{os.path.basename(where.filename)}:{where.lineno}: please report it)")
        failing = any(not o.terminal for o in result.report.failures)
        self._failed_runs = self._failed_runs + 1 if failing else 0
        return Step(result, self._next(failing))

    def table_as_left(self) -> bool:
        """Whether the table is exactly as the last run left it: then an event from it was the
        run's own writes, seen late, and asks for no run."""
        if self.history.last_table is None:
            return False
        try:
            return self.table.read() == self.history.last_table
        except OSError:
            return False  # a run will say what is wrong

    def plan(self) -> tuple[Plan, tuple[Problem, ...]]:
        """What a run would do now, and the policy's problems, writing nothing; PolicyRejected
        (one problem a line) if the policy cannot be applied at all."""
        policy, want, _, todo = evaluate(self.config, history=self.history,
                                         policies=self.policies, files=self.files)
        if want is None or policy.rejected:
            raise PolicyRejected.of(policy.problems)
        return todo, want.problems

    def _waiting(self, why: str) -> Step:
        return Step(None, self.options.safety_interval, why, waiting=True)

    def _next(self, failing: bool) -> float:
        """The one place that decides when to look again with no event."""
        waits = [self.options.safety_interval]
        if failing:
            # Kernel refusals and failed reads back off: 5 s, 10 s, 20 s ... up to the safety timer.
            waits.append(self.options.retry_base * 2 ** (self._failed_runs - 1))
        release = self.history.next_release(self.clock())
        if release is not None:
            waits.append(release + 0.01)  # just after a backed-off entry may be repaired again
        return min(waits)

