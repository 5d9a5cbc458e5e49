"""Talking to systemd: journald records and sd_notify. The only module importing systemd-python."""

from __future__ import annotations

import os
import sys

from systemd import daemon as sd_daemon
from systemd import journal

from .events import Record

IDENTIFIER = "multiarchd"


def stderr_is_journal() -> bool:
    """Whether stderr is the journal stream systemd gave us (JOURNAL_STREAM=dev:ino)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(x) for x in stream.split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


class Log:
    """`journal`: structured records to journald; `stderr`: their text, one line each."""

    def __init__(self, target: str = "auto", identifier: str = IDENTIFIER) -> None:
        if target == "auto":
            target = "journal" if stderr_is_journal() else "stderr"
        self.target = target
        self.identifier = identifier

    def emit(self, record: Record) -> None:
        if self.target == "journal":
            journal.send(record.message, MESSAGE_ID=record.event.message_id,
                         PRIORITY=str(record.event.priority), SYSLOG_IDENTIFIER=self.identifier,
                         MULTIARCH_EVENT=record.event.name.lower(), **record.fields)
        else:
            print(f"{self.identifier}: {record.message}", file=sys.stderr, flush=True)


def notify(*assignments: str) -> None:
    """sd_notify; does nothing when not started by systemd (no NOTIFY_SOCKET)."""
    if os.environ.get("NOTIFY_SOCKET"):
        sd_daemon.notify("\n".join(assignments))


def watchdog_interval() -> float | None:
    """Half the watchdog timeout systemd asked for, in seconds, or None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2 / 1_000_000
