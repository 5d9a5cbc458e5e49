"""What the kernel's binfmt_misc table holds: its entries, in registration order (data only;
kernel/ reads and writes the table)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .registration import Registration, owned


@dataclass(frozen=True)
class Entry:
    registration: Registration
    enabled: bool
    order: int  # registration order: larger is newer

    @property
    def name(self) -> str:
        return self.registration.name


@dataclass(frozen=True)
class Observed:
    """Everything the kernel holds right now."""

    entries: tuple[Entry, ...]
    enabled: bool = True  # the global `status` switch
    _by_name: dict[str, Entry] = field(init=False, repr=False, compare=False)
    # Enabled entries of other tools: what can shadow ours (usually none; looked at per entry).
    foreign_enabled: tuple[Entry, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {e.name: e for e in self.entries})
        object.__setattr__(self, "foreign_enabled", tuple(
            e for e in self.entries if e.enabled and not owned(e.name)))

    def get(self, name: str) -> Entry | None:
        return self._by_name.get(name)
