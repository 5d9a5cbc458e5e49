"""Talking to systemd: journald messages (through systemd-python, the only module importing it)
and sd_notify."""

from __future__ import annotations

import os

# systemd.journal's sendv() is this extension's: systemd.journal itself imports uuid, logging,
# traceback and datetime for its other parts (14 ms, on every boot's path), _journal 1 ms.
from systemd import _journal

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (3 ms): mypy knows it
if TYPE_CHECKING:
    from ..core.messages import Message


class JournalLog:
    """Structured messages to journald, with their MESSAGE_ID and MULTIARCH_* fields."""

    def __init__(self, identifier: str) -> None:
        self.identifier = identifier

    def emit(self, message: Message) -> None:
        self.send(message.journal_fields())

    def send(self, fields: dict[str, str]) -> None:
        _journal.sendv(*(f"{k}={v}" for k, v in fields.items()),
                       f"SYSLOG_IDENTIFIER={self.identifier}")


def notify(*assignments: str) -> str | None:
    """sd_notify, never blocking: None when sent (or not started by systemd: no NOTIFY_SOCKET),
    else why not. systemd-python's notify() blocks while the manager's queue is full and raises
    when the socket is gone; the service's main loop must do neither, so this speaks the
    protocol itself (sd_notify(3): one datagram, "@" for the abstract namespace)."""
    where = os.environ.get("NOTIFY_SOCKET")
    if not where:
        return None
    import socket  # (not for the one-shot path: it logs, never notifies)
    address = "\0" + where[1:] if where.startswith("@") else where
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto("\n".join(assignments).encode(), socket.MSG_DONTWAIT, address)
    except OSError as e:
        return f"cannot notify systemd at {where}: {e.strerror or e}"
    return None


MIN_PING = 0.1  # seconds: a timeout shorter than this cannot be kept by any ping; no busy loop


def watchdog_interval() -> float | None:
    """How often to ping: a quarter of the watchdog timeout systemd asked for, in seconds, or
    None. The promise is a ping within every half of the timeout (sd_watchdog_enabled(3)'s
    advice), so a ping may come a quarter late (a run in progress) and still keep it. As
    sd_watchdog_enabled: anything but a whole number of microseconds above zero (`abc`, `1e6`,
    `-5`) asks for nothing."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID")
    if not (usec.isascii() and usec.isdigit()) or int(usec) == 0 or \
            (pid and pid != str(os.getpid())):
        return None
    return max(int(usec) / 4 / 1_000_000, MIN_PING)
