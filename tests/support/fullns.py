"""Run a command in a user namespace that maps the first 65536 IDs to the host's own, with its
own mount, PID and network namespaces: a place where a chroot's package manager can chown files
to any system user and mount /proc and /sys, while binfmt_misc can be an instance of its own.

The maps are written by this (real root) process, the parent: newuidmap would want /etc/subuid
entries for root, which a machine should not need for its tests.
"""

from __future__ import annotations

import ctypes
import os
import subprocess

CLONE_NEWUSER = 0x10000000
_libc = ctypes.CDLL(None, use_errno=True)


def run_in_full_userns(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: new user namespace, wait for the maps, then become the command
        try:
            os.close(ready_r)
            os.close(go_w)
            os.close(out_r)
            if _libc.unshare(CLONE_NEWUSER) != 0:
                os._exit(97)
            os.write(ready_w, b"1")
            os.read(go_r, 1)
            os.dup2(out_w, 1)
            os.dup2(out_w, 2)
            os.execvp("unshare", ["unshare", "--mount", "--pid", "--fork", "--net",
                                  "--propagation", "private", *argv])
        finally:
            os._exit(98)
    os.close(ready_w)
    os.close(go_r)
    os.close(out_w)
    try:
        assert os.read(ready_r, 1) == b"1", "the child could not make a user namespace"
        for kind in ("uid_map", "gid_map"):
            with open(f"/proc/{pid}/{kind}", "w") as f:
                f.write("0 0 65536\n")
        os.write(go_w, b"1")
        chunks = []
        with os.fdopen(out_r, "rb") as out:
            # The command's output, until it exits (the caller bounds the whole with timeout).
            import select
            deadline = timeout
            while True:
                ready, _, _ = select.select([out], [], [], deadline)
                if not ready:
                    os.kill(pid, 9)
                    raise TimeoutError(f"{argv} took more than {timeout} s")
                chunk = os.read(out.fileno(), 65536)
                if not chunk:
                    break
                chunks.append(chunk)
        _, status = os.waitpid(pid, 0)
        return subprocess.CompletedProcess(argv, os.waitstatus_to_exitcode(status),
                                           b"".join(chunks).decode(errors="replace"), "")
    finally:
        os.close(ready_r)
        os.close(go_w)
