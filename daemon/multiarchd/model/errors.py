"""Domain failures the daemon answers with (the D-Bus interface maps each to a named error)."""

from __future__ import annotations

from collections.abc import Iterable


class PolicyRejected(Exception):
    """The policy has problems that stop it from being applied; the message lists them, one a
    line, as a local run prints them."""

    @classmethod
    def of(cls, problems: Iterable[object]) -> PolicyRejected:
        return cls("\n".join(str(p) for p in problems))


class UnknownArchitecture(Exception):
    """A name that is neither a catalog architecture nor an alias of one."""


class NotMounted(Exception):
    """binfmt_misc is not mounted where multiarchd looks for it."""


class WrongTable(Exception):
    """A run refused for whose binfmt_misc table it would write (the words say why, and what
    to give instead): no restart changes that, so the service exits with EXIT_REFUSED."""


class AccidentalPrivate(WrongTable, NotMounted):
    """Mounting binfmt_misc here would make a private table no one asked for (the words say
    why and how to ask for one on purpose)."""


class NotHeld(Exception):
    """`release` of an architecture that `hold: true` does not hold (the words say its state)."""


class Stopping(Exception):
    """The service was asked to stop while a request waited for work off the main loop."""
