"""docs/benchmarks.md, written by `bench.summary --write`: the figures of one run, the settings
and the machine they came from, and what each row compares. Every figure in the page comes
from the run that wrote it; the words around them carry none, so the page never says a number
no run measured. `page` is pure: rows in, text out."""

from __future__ import annotations

import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

Row = tuple[str, str, str, str, str]  # what, figure, yardstick, ratio, target

HEADER: Row = ("what", "figure", "yardstick (same run)", "ratio", "target")

_INTRO = """\
# Benchmarks

Written by `{command}`; do not edit it by hand: run that again (as root, in a checkout after
`dev/setup`). Every figure below is that run's own, each against a yardstick measured in the same
process with trials interleaved (yardstick, figure, yardstick, figure ...), in private
binfmt_misc instances: the host's table is not touched.

Measured {when} on {machine}: {cpus} CPUs (load average {load} when it began), Linux {kernel},
Python {python}; settings: {settings}.
"""

_ROWS = """\
## What each row compares

- `--once` against `systemd-binfmt FILE` given the same register lines (both through the same
  `nsenter`): with the boot record the previous run left (every boot after the first), without
  one (the policy or an interpreter changed: a full run), and without the native answer either
  (a boot's first full run, which also finds the architectures this machine runs itself).
- Cold start to `READY=1` (D-Bus on a private bus, probes on) against `--once`, with the record
  and without; then `SIGTERM` until the process has exited (after D-Bus is up, or right at
  `READY=1`: the worst of all trials).
- A converged daemon's no-op run against reading the table, and applying the registrations into
  an empty table against bare `os.write` calls of the same lines, at 33 entries (the shipped
  policy) and 1,033 (the same plus custom entries).
- Drift: an owned entry removed until it is registered again, against a minimal
  inotify-and-rewrite repairer; a policy save by rename until it is applied, against the 50 ms
  debounce that waits for editors saving in several steps; events 100 ms apart.
- Idle: the daemon's context switches while 2,000 programs run from `/usr/bin`.
- Memory: RSS with D-Bus at start, and after many repairs and policy edits (and the part of the
  growth after the repair history's 60-second window is full: what would grow for ever).
"""

_OTHERS = """\
## Other benchmarks (run by hand; each prints its own table)

| command | what it measures |
|---|---|
| `.venv/bin/python -m bench.scale` | each phase of a run (parse, host, desired, plan, register, report, the whole no-op run) at 33, 133 and 1,033 entries, against the kernel's own table read |
| `.venv/bin/python -m bench.editors --trials 40` | save -> applied for Vim (Debian's defaults), `sed -i`, `cp`+`mv` and truncate-and-write, with a swap file or a log written beside the policy |
| `.venv/bin/python -m bench.imports` | the modules `--once` imports, replaying the boot record and as a full run |
| `.venv/bin/python -m bench.bad_input` | how long each refusal of a hostile policy file takes, against reading the shipped one |
| `.venv/bin/python -m bench.credentials` | one exec through the guarded image of QEMU that entries with `C` register, against plain QEMU |
| `.venv/bin/python -m bench.cpu_model` | Debian 13's arm64 busybox (built with pointer authentication) through the entry, by hand with the same CPU model, and under QEMU's default `max` |
| `.venv/bin/python -m bench.emulation` | busybox applets natively and through the entries for arm64, s390x, riscv64 and ppc64el |
| `.venv/bin/python -m bench.bzip2` | a large bzip2 file decompressed natively and in an arm64 container, as the project's origin measured it |
| `.venv/bin/python -m bench.reconcile`, `bench.daemon` | older, narrower versions of the first rows |

Memory under a flood of D-Bus calls is held by the tests
`test_memory_stays_flat_over_twenty_thousand_calls_by_anyone` (`tests/test_dbus.py`) and
`test_memory_stays_flat_over_twenty_thousand_calls_of_each_method_by_anyone`
(`tests/test_dbus_load.py`): RSS within 1 MiB.
"""


def table(rows: Sequence[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |"
              for row in rows]
    return "\n".join(lines) + "\n"


Machine = tuple[str, int, str, str, str]  # uname -m, CPUs, load average, kernel, Python


def page(rows: Sequence[Row], command: str, settings: str, when: str, machine: Machine) -> str:
    """The whole page: `machine` says where it ran, with the load average when the run began
    (a busy machine's figures say so); `when` the run's date."""
    arch, cpus, load, kernel, python = machine
    intro = _INTRO.format(command=command, when=when, machine=arch, cpus=cpus, load=load,
                          kernel=kernel, python=python, settings=settings)
    return "\n".join([intro, table(rows), _ROWS, _OTHERS])


def write(path: Path, rows: Sequence[Row], settings: str, load: float) -> None:
    """The page for this run (its command line, today, this machine) written to `path`."""
    command = shlex.join([".venv/bin/python", "-m", "bench.summary", *sys.argv[1:]])
    machine = (os.uname().machine, os.cpu_count() or 0, f"{load:.2f}", platform.release(),
               platform.python_version())
    path.write_text(page(rows, command, settings, time.strftime("%Y-%m-%d"), machine))
