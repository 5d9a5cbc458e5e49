"""Which binfmt_misc table a run writes, said every time; and never a private table by accident:
in a user namespace of its own with no table, mounting one is refused unless --private (Linux
6.7+ would make a table only that namespace uses, not the host's)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from multiarchd.kernel.owner import describe

from tests.support.binfmt import PrivateBinfmt
from tests.support.commands import DaemonStarter, PolicyWriter, run
from tests.support.paths import BIN, DEFAULT_POLICY

# A fresh user and mount namespace where nothing is at binfmt_misc's place: a tmpfs hides
# whatever the host has mounted there (only in this mount namespace).
FRESH = ["unshare", "--user", "--map-root-user", "--mount", "--propagation", "private", "sh",
         "-c", "mount -t tmpfs none /proc/sys/fs/binfmt_misc && exec \"$@\"", "fresh"]


def fresh(*argv: str) -> subprocess.CompletedProcess[str]:
    """argv in a fresh namespace, then its exit status and what is at binfmt_misc's place."""
    return subprocess.run([*FRESH, "sh", "-c", " ".join(argv) +
                           "; echo \"exit $?\"; ls /proc/sys/fs/binfmt_misc"],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.kernel  # user namespaces and binfmt_misc instances of its own
def test_once_in_a_namespace_without_a_table_refuses_to_make_a_private_one() -> None:
    r = fresh(f"{BIN}/multiarchd", "--once", "--config", str(DEFAULT_POLICY))
    assert "exit 1" in r.stdout.splitlines(), r.stdout + r.stderr
    assert "this runs in user namespace " in r.stderr and ", not the host's, and nothing" in r.stderr
    assert "would be a private table" in r.stderr and "give --private" in r.stderr
    assert "register" not in r.stdout  # nothing was mounted


@pytest.mark.kernel
def test_once_private_fills_the_namespaces_own_table_and_says_whose() -> None:
    r = fresh(f"{BIN}/multiarchd", "--once", "--private", "--config", str(DEFAULT_POLICY))
    lines = r.stdout.splitlines()
    assert lines[0].startswith("binfmt_misc table: a private one: user namespace "), r.stdout
    assert lines[0].endswith("'s own (its root is uid 0 outside)")
    assert "exit 0" in lines and "multiarch-s390x" in lines, r.stdout + r.stderr


@pytest.mark.kernel
def test_the_service_will_not_start_on_a_private_table_by_accident() -> None:
    r = fresh(f"{BIN}/multiarchd", "--no-dbus", "--no-mount", "--log-target", "stderr",
              "--config", str(DEFAULT_POLICY))
    assert "exit 2" in r.stdout.splitlines(), r.stdout + r.stderr
    assert "multiarchd: not starting: this runs in user namespace " in r.stderr
    assert "multiarchd: multiarchd:" not in r.stderr


def test_status_and_once_say_whose_table(binfmt: PrivateBinfmt) -> None:
    once = run("multiarchd", "--once", binfmt=binfmt, config=DEFAULT_POLICY)
    ns = os.stat(f"/proc/{binfmt.pid}/ns/user").st_ino
    said = f"binfmt_misc table: a private one: user namespace {ns}'s own (its root is uid 0 " \
           "outside)"
    assert once.stdout.splitlines()[0] == said
    status = run("multiarchctl", "status", "--local", binfmt=binfmt, config=DEFAULT_POLICY)
    assert status.stdout.splitlines()[0] == said
    data = json.loads(run("multiarchctl", "status", "--local", "--json", binfmt=binfmt,
                          config=DEFAULT_POLICY).stdout)
    assert "binfmt_misc table: " + data["table"] == said
    assert describe() == "the host's (the initial user namespace's)"  # this test's own


def test_the_service_says_whose_table_at_start(binfmt: PrivateBinfmt, policy: PolicyWriter,
                                               start_daemon: DaemonStarter) -> None:
    d = start_daemon(policy("arches: {s390x: {}}\n"), binfmt)
    ns = os.stat(f"/proc/{binfmt.pid}/ns/user").st_ino
    [start] = [line for line in d.lines if "starting; policy" in line]
    assert start.endswith(f"table {binfmt.path}, a private one: user namespace {ns}'s own "
                          "(its root is uid 0 outside)"), start
