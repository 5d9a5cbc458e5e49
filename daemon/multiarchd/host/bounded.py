"""Running another program (a probe, a trial, an emulator on a probe program) bounded in time
and with its whole process tree: whatever it starts (a `setsid` child, a double fork, a child
that closes its pipes or keeps them) ends with it, and nothing it leaves behind can hold
multiarchd.

Each run goes through a small supervisor process of our own (_SUPERVISOR). It makes itself the
child subreaper (PR_SET_CHILD_SUBREAPER), so every orphan of the tree becomes its child however
it left its parent or session, runs the program with pipes of its own, and when the program
ends or its time is up kills every process left in the tree, reaps them and answers in one
line. multiarchd reads only the supervisor's pipe, which nothing else holds, and never without
a time limit. (A cgroup would do the same, but needs one delegated to the service; a process
group or session is left by one `setsid`.)"""

from __future__ import annotations

import atexit
import errno
import json
import os
import signal
import subprocess
import sys
from contextlib import suppress
from dataclasses import dataclass

TIMEOUT = 20.0  # seconds a program may take, all its runs together
GRACE = 5.0  # seconds more for the supervisor to end the tree and answer
OUTPUT = 1 << 16  # bytes kept of each of the program's streams


@dataclass(frozen=True)
class Ran:
    """How a bounded run ended."""

    status: int | None  # the last run's exit status (-N: signal N); None: stopped at TIMEOUT
    out: str = ""  # its stdout and stderr (the first OUTPUT bytes of each)
    err: str = ""
    runs: int = 1  # how many times it ran (again each time it ended with `until`)
    killed: int = 0  # processes of its tree killed at its end (itself, when it timed out)
    survivors: int = 0  # processes that could not be killed in GRACE (in the kernel, stuck)

    def tree(self) -> str:
        """What became of the rest of its processes, as a clause ("" when it left none)."""
        said = []
        if self.killed:
            said.append(f"killed {self.killed} process{'es' if self.killed > 1 else ''}")
        if self.survivors:
            said.append(f"{self.survivors} could not be killed")
        return "; ".join(said)


# argv: timeout, runs, until, grace, bytes kept, program... Answers in JSON on stdout.
_SUPERVISOR = r"""
import ctypes, json, os, select, signal, sys, time
timeout, runs, until, grace, keep = (float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]),
                                     float(sys.argv[4]), int(sys.argv[5]))
argv = sys.argv[6:]
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGCHLD])  # (waited for by sigtimedwait)
me, killed, deadline = str(os.getpid()), set(), time.monotonic() + timeout

def children():
    found = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == me.encode() and fields[0] != b"Z":
            found.append(int(name))
    return found

def end_tree():
    # Kill every process left: each one killed hands its children to us (the subreaper).
    until_ = time.monotonic() + grace
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0]:
                continue
        except ChildProcessError:
            return 0
        for pid in children():
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except OSError:
                pass
        left = until_ - time.monotonic()
        if left <= 0 or signal.sigtimedwait([signal.SIGCHLD], left) is None:
            return len(children())

def drain(fd, kept):
    os.set_blocking(fd, False)
    try:
        while data := os.read(fd, 65536):
            kept += data[:max(0, keep - len(kept))]
    except BlockingIOError:
        pass

def run_once():
    pipes = [os.pipe(), os.pipe()]
    try:
        pid = os.posix_spawn(argv[0], argv, os.environ, setsigmask=(),
                             setsigdef=(signal.SIGPIPE, signal.SIGXFSZ), file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, pipes[0][1], 1), (os.POSIX_SPAWN_DUP2, pipes[1][1], 2)])
    finally:
        for _, w in pipes:
            os.close(w)
    pidfd, reads = os.pidfd_open(pid), [r for r, _ in pipes]
    kept = {r: bytearray() for r in reads}
    status, open_ = None, list(reads)
    while (left := deadline - time.monotonic()) > 0:
        ready = select.select(open_ + [pidfd], [], [], left)[0]
        for fd in ready:
            if fd != pidfd:
                data = os.read(fd, 65536)
                kept[fd] += data[:max(0, keep - len(kept[fd]))]
                if not data:
                    open_.remove(fd)
        if pidfd in ready:
            status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
            break
    if status is None:
        os.kill(pid, signal.SIGKILL)
        killed.add(pid)
    for r in open_:  # what it wrote before it ended; its children may hold the pipes
        drain(r, kept[r])
    left = end_tree()
    for r in open_:
        drain(r, kept[r])
    for r in reads + [pidfd]:
        os.close(r)
    return status, bytes(kept[reads[0]]), bytes(kept[reads[1]]), left

answer = {"runs": 0}
try:
    while answer["runs"] < runs:
        status, out, err, left = run_once()
        answer.update(runs=answer["runs"] + 1, status=status, survivors=left,
                      out=out.decode(errors="replace"), err=err.decode(errors="replace"))
        if status != until or left:
            break
except OSError as e:
    answer["errno"] = e.errno
answer["killed"] = len(killed)
print(json.dumps(answer), flush=True)
"""

# Supervisors running now (their process groups): killed if multiarchd exits before they end.
_running: set[int] = set()


@atexit.register
def _kill_running() -> None:
    for pgid in list(_running):
        with suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)


def run_bounded(argv: list[str], runs: int = 1, until: int = 0,
                timeout: float = TIMEOUT) -> Ran:
    """How argv ended, run up to `runs` times while it exits with `until`, all within
    `timeout`, its whole process tree killed at the end of each run. OSError: it could not be
    started (errno as exec(2) gave it)."""
    proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _SUPERVISOR, str(timeout),
                             str(runs), str(until), str(GRACE), str(OUTPUT), *argv],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    _running.add(proc.pid)
    try:
        out, err = proc.communicate(timeout=timeout + 2 * GRACE)
    except subprocess.TimeoutExpired:  # the supervisor itself is stuck: it and its group go
        os.killpg(proc.pid, signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=GRACE)
        return Ran(None, survivors=1)
    finally:
        _running.discard(proc.pid)
    try:
        answer = json.loads(out)
    except ValueError:
        if proc.returncode < 0:  # stopped from outside (systemd stopping the unit): as if the
            return Ran(proc.returncode)  # program was, since it was stopped too
        said = err.decode(errors="replace").strip().splitlines()
        raise OSError(errno.EIO, f"the supervisor of {argv[0]} ended with status "
                                 f"{proc.returncode} and no answer"
                                 f"{': ' + said[-1] if said else ''}") from None
    if "errno" in answer:
        raise OSError(answer["errno"], os.strerror(answer["errno"]), argv[0])
    return Ran(answer["status"], answer["out"], answer["err"], answer["runs"], answer["killed"],
               answer["survivors"])
