"""Where messages go: journald (systemd_glue.JournalLog) when stderr is the journal stream or
when asked, else one plain line each on stderr. systemd-python is imported only for journald.
Light to import: the boot record's replay sends its records through here."""

from __future__ import annotations

import os
import sys


TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (3 ms): mypy knows it
if TYPE_CHECKING:
    from ..core.messages import Message
    from .systemd_glue import JournalLog

IDENTIFIER = "multiarchd"


def stderr_is_journal() -> bool:
    """Whether stderr is the journal stream systemd gave us (JOURNAL_STREAM=dev:ino)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(x) for x in stream.split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)  # systemd's words, not identity.py's note


class StderrLog:
    def __init__(self, identifier: str = IDENTIFIER) -> None:
        self.identifier = identifier

    def emit(self, message: Message) -> None:
        self.send(message.journal_fields())

    def send(self, fields: dict[str, str]) -> None:
        if fields.get("PRIORITY") != "7":  # debug: the journal's, not a terminal's
            print(f"{self.identifier}: {fields['MESSAGE']}", file=sys.stderr, flush=True)


def open_log(target: str = "auto", identifier: str = IDENTIFIER) -> StderrLog | JournalLog:
    """`journal`: structured messages to journald; `stderr`: their text; `auto`: journald when
    stderr is the journal stream."""
    if target == "journal" or (target == "auto" and stderr_is_journal()):
        from .systemd_glue import JournalLog
        return JournalLog(identifier)
    return StderrLog(identifier)
