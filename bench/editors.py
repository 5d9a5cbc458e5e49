#!/usr/bin/env python3
"""Save -> applied for each common way of saving the policy, with another file written beside
it the whole time: an editor's swap file (Vim keeps `.arches.yaml.swp` open and writes it now
and then; nano keeps a lock file of the same name), then a log appended every 20 ms (opened and
closed each time: the directory says something changed in it at every close).

  vim       : Vim with Debian's defaults (/etc/vim/vimrc: swap file and backup in the file's
              directory, writebackup), saving with :wq;
  sed -i    : GNU sed's in-place edit (a temporary file renamed over the policy);
  cp + mv   : a copy beside it, renamed over it;
  truncate  : the file opened with O_TRUNC and written in place (as nano saves, and `cat >`).

Each trial turns s390x off or on; the time is until the entry is removed or registered (the
kernel's own inotify events on the table mark the end). Target: p99 <= 80 ms for every way,
whatever is written beside (the debounce is 50 ms). Timed from the editor's start, which holds
the editor's own time too (Vim with Debian's vimrc alone, start to exit: 161 ms median at load
8 on two cores), and again from its return (just after its last write: multiarchd's part).

Usage: .venv/bin/python -m bench.editors [--trials 40]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bench import stats
from tests.support.binfmt import PrivateBinfmt
from tests.support.daemon import start_daemon
from tests.support.inotify import IN_DELETE, IN_MODIFY, Inotify

OFF = "arches:\n  all: {}\n  s390x: false\n"
ON = "arches: all\n"


def vim(policy: Path, text: str) -> None:
    # -E -s skips the vimrc unless named: Debian's own, as an interactive Vim reads it.
    lines = text.rstrip("\n").split("\n")
    put = " | ".join(f"call append(line('$'), {line!r})" for line in lines)
    subprocess.run(["vim", "-u", "/etc/vim/vimrc", "-i", "NONE", "-E", "-s",
                    "-c", "set swapfile writebackup", "-c", "%d", "-c", put, "-c", "1d",
                    "-c", "wq", str(policy)], check=True, timeout=30)


def sed(policy: Path, text: str) -> None:
    old, new = (ON, OFF) if text == OFF else (OFF, ON)
    script = "s/^arches: all$/arches:\\n  all: {}\\n  s390x: false/" if text == OFF else \
        "/^arches:$/{N;N;s/.*/arches: all/}"
    subprocess.run(["sed", "-i", script, str(policy)], check=True, timeout=30)
    assert policy.read_text() == new, (old, policy.read_text())


def cp_mv(policy: Path, text: str) -> None:
    staged = policy.with_name("arches.yaml.new")
    staged.write_text(text)
    os.replace(staged, policy)


def truncate(policy: Path, text: str) -> None:
    with open(policy, "w") as f:
        f.write(text)


WAYS: dict[str, Callable[[Path, str], None]] = {
    "vim": vim, "sed -i": sed, "cp + mv": cp_mv, "truncate": truncate}


def swap_writer(directory: Path, stop: threading.Event) -> None:
    """Another editor's swap file (Kate's name: Vim would take `.swp` for a session of its
    own), open the whole time and written every 20 ms."""
    with open(directory / ".arches.yaml.kate-swp", "wb") as swap:
        while not stop.wait(0.02):
            swap.seek(0)
            swap.write(os.urandom(4096))
            swap.flush()


def appender(directory: Path, stop: threading.Event) -> None:
    """A log kept beside the policy, appended every 20 ms by a writer that opens it each time."""
    while not stop.wait(0.02):
        with open(directory / "changes.log", "a") as log:
            log.write(f"{time.time():.3f} something happened\n")


BESIDE: dict[str, Callable[[Path, threading.Event], None]] = {
    "a swap file written beside": swap_writer, "a file appended beside": appender}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=40)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="multiarchd-bench-"))
    policy = tmp / "etc" / "arches.yaml"
    policy.parent.mkdir()
    policy.write_text(ON)
    with PrivateBinfmt() as ns, start_daemon(tmp, policy, ns, "--repair-limit", "1000000") as d:
        events = Inotify(ns.path)
        for beside, write in BESIDE.items():
            stop = threading.Event()
            writer = threading.Thread(target=write, args=(policy.parent, stop), daemon=True)
            writer.start()
            print(f"save -> applied, {args.trials} trials per way, {beside}")
            for name, save in WAYS.items():
                times, after = [], []
                for i in range(args.trials):
                    off = policy.read_text() == ON
                    events.drain()
                    start = time.perf_counter()
                    save(policy, OFF if off else ON)
                    saved = time.perf_counter()
                    end = events.wait("multiarch-s390x", IN_DELETE) if off else \
                        events.wait("register", IN_MODIFY)
                    times.append(end - start)
                    after.append(end - saved)
                    d.mark()  # keep the log pipe drained
                print(f"  {name:10} {stats.spread(times)}")
                print(f"  {'':10} {stats.spread(after)}  from the editor's return")
            stop.set()
            writer.join()


if __name__ == "__main__":
    main()
