"""The opt-in metrics file (--metrics-textfile): replaced whole after each run and each new
verdict, by rename, so node-exporter's textfile collector never reads half a file. A file that
cannot be written is said once; the table is kept all the same."""

from __future__ import annotations

from collections.abc import Callable

from ..core.messages import Event, Message
from ..core.metrics import Counters, textfile
from ..core.report import DaemonState, Report
from .protocols import Log


class Unwritable:
    """A file written after each run that cannot be: said once per distinct error (again once
    it was written meanwhile), never raised into the loop."""

    def __init__(self, log: Log, event: Event, what: str) -> None:
        self.log, self.event, self.what = log, event, what
        self._error = ""

    def written(self) -> None:
        self._error = ""

    def failed(self, e: OSError) -> None:
        if str(e) != self._error:
            self.log.emit(Message(self.event, f"cannot write the {self.what}: {e}; will try "
                                 "again after the next run"))
        self._error = str(e)


class Exporter:
    def __init__(self, write: Callable[[str], None], log: Log) -> None:
        self.write = write
        self.unwritable = Unwritable(log, Event.METRICS_UNWRITABLE, "metrics file")

    def export(self, state: DaemonState, report: Report | None, counters: Counters,
               last_run: float) -> None:
        try:
            self.write(textfile(state, report, counters, last_run))
            self.unwritable.written()
        except OSError as e:
            self.unwritable.failed(e)
