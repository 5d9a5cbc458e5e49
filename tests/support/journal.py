"""A private systemd-journald: its own mount namespace with tmpfs on /run/systemd and /run/log,
so that what the test's programs log lands here, readable with `journalctl -o json`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from .closing import Closing
from .holder import NamespaceHolder
from .notify import NotifyListener

JOURNALD = "/lib/systemd/systemd-journald"
_RUN = ("mount -t tmpfs tmpfs /run/systemd && mkdir /run/systemd/journal && "
        "mount -t tmpfs tmpfs /run/log")


class PrivateJournal(Closing):
    def __init__(self, tmp: Path, timeout: float = 15.0) -> None:
        self.holder = NamespaceHolder(("--mount", "--propagation", "private"), _RUN)
        try:
            # journald says READY=1 on NOTIFY_SOCKET once its sockets are up.
            with NotifyListener(tmp, "journald") as ready:
                # Not the tests' RUNTIME_DIRECTORY: journald would put its sockets there.
                env = {k: v for k, v in os.environ.items()
                       if k not in ("RUNTIME_DIRECTORY", "CACHE_DIRECTORY", "STATE_DIRECTORY")}
                self.journald = subprocess.Popen(
                    self.enter(JOURNALD), env=dict(env, NOTIFY_SOCKET=str(ready.path)),
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                ready.wait_for("READY=1", timeout)
        except BaseException:
            self.holder.close()
            raise

    def enter(self, *argv: str) -> list[str]:
        return self.holder.enter(*argv)

    def messages(self, *matches: str) -> list[dict[str, Any]]:
        """Every record so far (after journald has written all it received)."""
        subprocess.run(self.enter("journalctl", "--sync"), check=True, timeout=30)
        out = subprocess.run(self.enter("journalctl", "-o", "json", "--no-pager", *matches),
                             capture_output=True, text=True, check=True, timeout=30).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def close(self) -> None:
        if self.journald.poll() is None:
            self.journald.kill()
        self.journald.wait()
        self.holder.close()
