"""Foreign programs run the whole time something changes under them: what a user running
builds during a package upgrade would see."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .binfmt import PrivateBinfmt


@contextmanager
def running(binfmt: PrivateBinfmt, busybox: Path, machine: str, tmp: Path
            ) -> Iterator[list[tuple[int, int]]]:
    """Two loops run `busybox uname -m` in the private table until the block ends; then the
    list holds (runs, runs that did not print `machine`) for each."""
    stop = tmp / "stop-loops"
    stop.unlink(missing_ok=True)
    loop = (f"n=0; bad=0; until [ -e {stop} ]; do n=$((n+1)); "
            f"[ \"$({busybox} uname -m 2>&1)\" = {machine} ] || bad=$((bad+1)); done; "
            "echo $n $bad")
    loops = [subprocess.Popen(binfmt.enter("sh", "-c", loop), stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    counts: list[tuple[int, int]] = []
    try:
        yield counts
    finally:
        stop.touch()
        for p in loops:
            n, bad = p.communicate(timeout=60)[0].split()
            counts.append((int(n), int(bad)))
