"""Which binfmt_misc table a run writes, said every time; and never a private table by accident:
in a user namespace of its own with no table, mounting one is refused unless --private (Linux
6.7+ would make a table only that namespace uses, not the host's). --private always means a
table of its own, also over one inherited from an outer namespace. A refusal no restart can
change is not restarted."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator

import pytest

from pathlib import Path

from multiarchd.core.report import EXIT_REFUSED
from multiarchd.kernel.owner import describe

from tests.support.binfmt import USERNS, PrivateBinfmt
from tests.support.commands import DaemonStarter, PolicyWriter, run
from tests.support.holder import NamespaceHolder
from tests.support.nspawn import BootedContainer
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
    assert f"exit {EXIT_REFUSED}" in r.stdout.splitlines(), r.stdout + r.stderr
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
    assert f"exit {EXIT_REFUSED}" in r.stdout.splitlines(), r.stdout + r.stderr
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


@pytest.fixture
def identity_ns() -> Iterator[NamespaceHolder]:
    """A user namespace given every id as itself (`0 0 4294967295`, the initial one's map): still
    one of its own, not the host's. A tmpfs hides what its mount namespace inherited."""
    with NamespaceHolder(("--user", "--mount", "--propagation", "private"), "true") as ns:
        for name in ("uid_map", "gid_map"):
            Path(f"/proc/{ns.pid}/{name}").write_text("0 0 4294967295")
        subprocess.run(ns.enter("mount", "-t", "tmpfs", "none", "/proc/sys/fs/binfmt_misc",
                                user=True), check=True)
        yield ns


@pytest.mark.kernel
def test_a_namespace_given_every_id_is_not_the_hosts(identity_ns: NamespaceHolder) -> None:
    def once(*args: str) -> list[str]:
        script = f"{BIN}/multiarchd --once {' '.join(args)} --config {DEFAULT_POLICY}; " \
                 "echo \"exit $?\"; ls /proc/sys/fs/binfmt_misc"
        r = subprocess.run(identity_ns.enter("sh", "-c", script, user=True),
                           capture_output=True, text=True, timeout=120)
        return (r.stdout + r.stderr).splitlines()
    said = once()
    assert f"exit {EXIT_REFUSED}" in said and "register" not in said, said  # nothing mounted
    assert any(line.startswith("multiarchd: this runs in user namespace ") for line in said)
    said = once("--private")
    assert said[0].startswith("binfmt_misc table: a private one: user namespace "), said
    assert "exit 0" in said and "multiarch-s390x" in said, said


@pytest.mark.kernel
def test_once_private_under_an_inherited_table_fills_one_of_its_own(
        binfmt: PrivateBinfmt) -> None:
    """A namespace below one that mounted its own table sees that mount; --private mounts a new
    instance over it (in its own mount namespace), and the outer table stays as it was."""
    outer = os.stat(binfmt.path).st_dev
    place = "/proc/sys/fs/binfmt_misc"
    script = f"stat -c %d {place}; {BIN}/multiarchd --once --private --config " \
             f"{DEFAULT_POLICY}; echo \"exit $?\"; stat -c %d {place}; ls {place}"
    r = subprocess.run(binfmt.enter("unshare", *USERNS, "sh", "-c", script),
                       capture_output=True, text=True, timeout=120)
    before, said, *rest = r.stdout.splitlines()
    assert before == str(outer), r.stdout + r.stderr  # inherited
    assert said.startswith("binfmt_misc table: a private one: user namespace "), said
    exit_line = rest.index("exit 0")
    assert rest[exit_line + 1] != str(outer) and "multiarch-s390x" in rest, r.stdout + r.stderr
    assert binfmt.names() == []  # the outer table untouched


@pytest.mark.kernel
def test_private_in_the_initial_namespace_is_refused() -> None:
    """There the only table is the host's. (A mount namespace of its own with a tmpfs at the
    place, and --no-mount: the host's table is never within reach of this test.)"""
    hide = "mount -t tmpfs none /proc/sys/fs/binfmt_misc && exec \"$@\""
    for argv in (["--once", "--private", "--no-mount"],
                 ["--private", "--no-mount", "--no-dbus", "--log-target", "stderr"]):
        r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", hide,
                            "hide", f"{BIN}/multiarchd", *argv, "--config", str(DEFAULT_POLICY)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == EXIT_REFUSED, (argv, r.stdout, r.stderr)
        assert "--private asks for a table of a user namespace's own, and this runs in the " \
               "initial user namespace" in r.stderr, r.stderr


@pytest.mark.systemd
def test_a_user_namespaced_container_without_private_fails_once_and_says_why(
        deb: Path, tmp_path: Path) -> None:
    """nspawn --private-users (unprivileged LXC/Incus alike) without the admin's --private
    drop-ins: both units refuse, rightly, and neither is restarted."""
    c = BootedContainer(tmp_path, name="multiarchd-private-refusal", private=False,
                        own_cgroup=True)
    try:
        c.copy_in(deb, "/root/multiarchd.deb")
        c.run("dpkg", "-i", "/root/multiarchd.deb", check=False)  # (it starts both units)
        props = "ActiveState,Result,NRestarts,ExecMainStatus,StatusText"
        shown = {unit: dict(line.split("=", 1) for line in c.run(
            "systemctl", "show", "-p", props, unit).stdout.splitlines())
            for unit in ("multiarchd", "multiarchd-early")}
        for unit, show in shown.items():
            assert (show["ActiveState"], show["Result"], show["NRestarts"],
                    show["ExecMainStatus"]) == ("failed", "exit-code", "0", "6"), (unit, show)
        assert shown["multiarchd"]["StatusText"].startswith(
            "not starting: this runs in user namespace "), shown
        journal = c.run("journalctl", "-u", "multiarchd", "-o", "cat").stdout
        assert journal.count("not starting: this runs in user namespace ") == 1, journal
        early = c.run("journalctl", "-u", "multiarchd-early", "-o", "cat").stdout
        assert "give --private" in early, early
        assert c.table() == {}  # nothing mounted in there, nothing written
    finally:
        c.close()
