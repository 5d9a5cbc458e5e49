"""Run inside a booted container (`python3 -c`, the standard library only): foreign programs
started as a user starts them, and which file the kernel runs each with.

    loop STOP PROGRAMS   runs `PATH uname -m` of each program in turn until the file STOP
                         exists, then prints {"runs": N, "failed": N, "first": [what failed]}
    exes PROGRAMS        starts `PATH sleep 30` of each and prints, per entry, its pid, the
                         link /proc/PID/exe, that file's device and inode and whether it is
                         the file at the entry's interpreter path now

PROGRAMS is a JSON list of [entry, path, what `uname -m` prints].
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

BINFMT = "/proc/sys/fs/binfmt_misc"


def loop(stop: str, programs: list[list[str]]) -> dict[str, object]:
    runs, failed = 0, []
    while not os.path.exists(stop):
        for _entry, path, machine in programs:
            runs += 1
            try:
                r = subprocess.run([path, "uname", "-m"], capture_output=True, text=True,
                                   timeout=60)
            except (OSError, subprocess.TimeoutExpired) as e:  # ENOEXEC: no entry took it
                failed.append(f"{path}: {e}")
                continue
            if (r.returncode, r.stdout.strip()) != (0, machine):
                failed.append(f"{path}: exit {r.returncode}, printed {r.stdout.strip()!r}, "
                              f"{r.stderr.strip()!r}")
    return {"runs": runs, "failed": len(failed), "first": failed[:20]}


def _interpreter(entry: str) -> str:
    with open(f"{BINFMT}/{entry}") as f:
        return next(line.split(" ", 1)[1].strip() for line in f
                    if line.startswith("interpreter "))


def exes(programs: list[list[str]]) -> dict[str, object]:
    seen: dict[str, object] = {}
    for entry, path, _machine in programs:
        try:
            # Popen returns once the exec has happened (or failed): /proc/PID/exe is then the
            # file binfmt_misc handed the program to.
            p = subprocess.Popen([path, "sleep", "30"])
        except OSError as e:
            seen[entry] = {"error": str(e)}
            continue
        try:
            ran, now = os.stat(f"/proc/{p.pid}/exe"), os.stat(_interpreter(entry))
            seen[entry] = {"pid": p.pid, "exe": os.readlink(f"/proc/{p.pid}/exe"),
                           "file": [ran.st_dev, ran.st_ino],
                           "current": (ran.st_dev, ran.st_ino) == (now.st_dev, now.st_ino)}
        except OSError as e:
            seen[entry] = {"pid": p.pid, "error": str(e)}
        finally:
            p.kill()
            p.wait()
    return seen


if __name__ == "__main__":
    if sys.argv[1] == "loop":
        print(json.dumps(loop(sys.argv[2], json.loads(sys.argv[3]))))
    else:
        print(json.dumps(exes(json.loads(sys.argv[2]))))
