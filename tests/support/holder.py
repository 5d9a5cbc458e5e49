"""A process that holds namespaces open: `unshare ... sh -c 'SETUP && echo ready && read _'`.
Others join it with nsenter; killing it ends the namespaces (nothing is unmounted). It waits in
the shell's own `read` on a pipe that is never written, not in an exec'd sleep: an entry a test
registers right after "ready" (one that takes native programs) must not take the holder's own
next exec."""

from __future__ import annotations

import select
import subprocess
from collections.abc import Sequence

from .closing import Closing


class NamespaceHolder(Closing):
    def __init__(self, unshare: Sequence[str], setup: str, timeout: float = 10.0) -> None:
        self.proc = subprocess.Popen(
            ["unshare", *unshare, "sh", "-c", f"{setup} && echo ready && read _"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready or self.proc.stdout.readline().strip() != "ready":
            self.close()
            raise RuntimeError(f"could not set up namespaces with unshare {' '.join(unshare)}")
        self.pid = self.proc.pid

    def enter(self, *argv: str, user: bool = False) -> list[str]:
        """argv run inside the held mount (and, with user, user) namespace."""
        return ["nsenter", "-t", str(self.pid), *(["--user"] if user else []), "--mount", "--",
                *argv]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()
