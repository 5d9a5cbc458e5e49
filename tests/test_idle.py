"""Idle means idle on a busy host: while another process runs thousands of programs from
/usr/bin (where the interpreters are, so it is watched), the daemon's threads do not wake.
Run with each watchdog the package allows: Debian 12's 2.2.1 and the newest from PyPI."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.binfmt import PrivateBinfmt
from tests.support.commands import DaemonStarter, PolicyWriter
from tests.support.paths import REPO

PYTHONS = {"debian-watchdog": REPO / ".venv/bin/python",
           "watchdog-7": REPO / ".venv-watchdog7/bin/python"}


def switches(pid: int) -> int:
    """Context switches of every thread of the process so far: each wake-up is at least one."""
    total = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        for line in status.read_text().splitlines():
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                total += int(line.split()[1])
    return total


@pytest.mark.parametrize("python", sorted(PYTHONS))
def test_programs_run_from_a_watched_directory_do_not_wake_the_daemon(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter,
        python: str) -> None:
    interpreter = PYTHONS[python]
    assert interpreter.exists(), f"{interpreter} is missing: run dev/setup"
    d = start_daemon(policy("arches: {s390x: {}, aarch64: {}}\nverify: false\n"), binfmt,
                     prefix=[str(interpreter)], env={"PYTHONPATH": str(REPO / "daemon")})
    version = subprocess.run([str(interpreter), "-c", "import watchdog.version as v; "
                              "print(v.VERSION_STRING)"], capture_output=True, text=True)
    assert version.stdout.startswith("2." if python == "debian-watchdog" else "7."), version
    before = switches(d.proc.pid)
    subprocess.run(["sh", "-c", "i=0; while [ $i -lt 2000 ]; do /usr/bin/true; i=$((i+1)); "
                    "done"], check=True, timeout=300)
    woke = switches(d.proc.pid) - before
    assert woke <= 6, f"{woke} wake-ups of the daemon's threads while 2000 programs ran"
    # Still listening for what matters: an entry removed is put back.
    since = d.mark()
    binfmt.write("multiarch-s390x", "-1")
    d.wait_log("repaired multiarch-s390x", since)
