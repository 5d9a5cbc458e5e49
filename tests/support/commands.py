"""Running the installed commands as a user would, and reading what they print."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from .binfmt import PrivateBinfmt
from .daemon import DaemonProcess
from .paths import BIN

# The `policy` fixture: write arches.yaml (or a drop-in 'arches.d/NAME.yaml'), get the main path.
PolicyWriter = Callable[..., Path]
# The `start_daemon` fixture: start_daemon(config, binfmt, *extra, **how) -> a ready daemon.
DaemonStarter = Callable[..., DaemonProcess]


def run(cmd: str, *args: str | Path, binfmt: PrivateBinfmt | None = None,
        config: Path | None = None, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    """Run one of the installed commands, with --binfmt-dir pointed at ours."""
    argv: list[str | Path] = [BIN / cmd, *args]
    if config is not None:
        argv += ["--config", config]
    if binfmt is not None:
        argv += ["--binfmt-dir", binfmt.path]
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120,
                          env=env)


def state_of(table: str, name: str) -> str | None:
    """The STATE column of NAME's row in a status table."""
    for line in table.splitlines():
        fields = line.split()
        if fields[:1] == [name]:
            return fields[1]
    return None
