"""Talking to systemd: journald records and sd_notify. The only module importing systemd-python."""

from __future__ import annotations

import os

from systemd import daemon as sd_daemon
from systemd import journal

from ..core.messages import Record


class JournalLog:
    """Structured records to journald, with their MESSAGE_ID and MULTIARCH_* fields."""

    def __init__(self, identifier: str) -> None:
        self.identifier = identifier

    def emit(self, record: Record) -> None:
        journal.send(record.message, MESSAGE_ID=record.event.message_id,
                     PRIORITY=str(record.event.priority), SYSLOG_IDENTIFIER=self.identifier,
                     MULTIARCH_EVENT=record.event.name.lower(), **record.fields)


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
