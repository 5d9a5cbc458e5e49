"""What a run works on (Config), and the service's tunables with their defaults (Options): the
command line sets both."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Config:
    """Which policy and which binfmt_misc table a run works on."""

    policy_path: str
    binfmt_dir: str
    # A table of this user namespace's own is what is wanted (--private): mounting one in a
    # namespace that is not the host's is then not refused (kernel/owner.py).
    private: bool = False


@dataclass(frozen=True)
class Options:
    safety_interval: float = 300.0  # seconds between full re-reads with no event at all
    debounce: float = 0.05  # quiet time after the last policy event before a run
    table_debounce: float = 0.005  # the same for kernel-table and interpreter events
    max_delay: float = 1.0  # a steady stream of events still gets a run this often
    repair_limit: int = 10  # drift repairs of one entry per window before backing off
    repair_window: float = 60.0
    retry_base: float = 5.0  # first retry after a kernel refusal; doubles up to safety_interval
    mount: bool = True  # mount binfmt_misc when nothing has (else wait for it)
    # Seconds between WATCHDOG=1 (half of systemd's WATCHDOG_USEC), None: systemd asks none.
    watchdog: float | None = None
