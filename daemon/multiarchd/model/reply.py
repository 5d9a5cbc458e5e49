"""An answer owed to one caller (a D-Bus method call), given once, now or later: the service
never waits for it, so one slow caller holds up no other. The service makes them and the D-Bus
face gives them; both import this one definition."""

from __future__ import annotations

from typing import Protocol, TypeVar

T_contra = TypeVar("T_contra", contravariant=True)


class Reply(Protocol[T_contra]):
    def value(self, value: T_contra) -> None: ...
    def error(self, error: Exception) -> None: ...
