"""A private binfmt_misc instance in a user namespace that maps ids 0..65535 to the host's own:
there an ordinary user (uid 1000) runs a setuid-root program and the kernel changes its
credentials, as on the host (a one-id map has no ordinary user to be).

The maps are written by this (real root) process, as tests/support/fullns.py does; the holder
says when it has made its namespaces, waits for the maps, then mounts its own instance.
"""

from __future__ import annotations

import os
import select
import subprocess

from .binfmt import HOST_BINFMT, PrivateBinfmt
from .holder import NamespaceHolder

SCRIPT = (f"echo unshared && read _ && mount -t binfmt_misc binfmt_misc {HOST_BINFMT} && "
          "echo ready && read _")


class _FullHolder(NamespaceHolder):
    def __init__(self, timeout: float = 10.0) -> None:  # (the parent's is not called)
        self.proc = subprocess.Popen(
            ["unshare", "--user", "--mount", "--propagation", "private", "sh", "-c", SCRIPT],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.pid = self.proc.pid
        for step in ("unshared", "ready"):
            assert self.proc.stdout is not None and self.proc.stdin is not None
            ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
            if not ready or self.proc.stdout.readline().strip() != step:
                self.close()
                raise RuntimeError(f"the namespace holder did not say {step!r}")
            if step == "unshared":
                for kind in ("uid_map", "gid_map"):
                    with open(f"/proc/{self.pid}/{kind}", "w") as f:
                        f.write("0 0 65536\n")
                self.proc.stdin.write("\n")
                self.proc.stdin.flush()


class FullBinfmt(PrivateBinfmt):
    def __init__(self) -> None:  # (as PrivateBinfmt's, with the full map)
        self.holder = _FullHolder()
        self.pid = self.holder.pid
        self.path = f"/proc/{self.pid}/root{HOST_BINFMT}"
        host = HOST_BINFMT if os.path.isdir(HOST_BINFMT) else os.path.dirname(HOST_BINFMT)
        assert os.stat(self.path).st_dev != os.stat(host).st_dev, "not a private instance"

    def as_user(self, uid: int, *argv: str, env: dict[str, str] | None = None,
                cwd: str | None = None) -> subprocess.CompletedProcess[str]:
        """argv run inside, as `uid` (its own group, no others), with exactly `env`."""
        setpriv = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
        return subprocess.run(self.enter(*setpriv, "env", "-i",
                                         *(f"{k}={v}" for k, v in (env or {}).items()), *argv),
                              capture_output=True, text=True, timeout=60, cwd=cwd)
