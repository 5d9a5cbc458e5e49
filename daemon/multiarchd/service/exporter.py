"""The opt-in metrics file (--metrics-textfile): replaced whole after each run and each new
verdict, by rename, so node-exporter's textfile collector never reads half a file. A file that
cannot be written is said once; the table is kept all the same."""

from __future__ import annotations

from collections.abc import Callable

from ..core.messages import Event, Message
from ..core.metrics import Counters, textfile
from ..core.report import DaemonState, Report
from .protocols import Log


class Exporter:
    def __init__(self, write: Callable[[str], None], log: Log) -> None:
        self.write = write
        self.log = log
        self._error = ""

    def export(self, state: DaemonState, report: Report | None, counters: Counters,
               last_run: float) -> None:
        try:
            self.write(textfile(state, report, counters, last_run))
            self._error = ""
        except OSError as e:
            if str(e) != self._error:
                self.log.emit(Message(Event.METRICS_UNWRITABLE, f"cannot write the metrics "
                                     f"file: {e}; will try again after the next run"))
            self._error = str(e)
