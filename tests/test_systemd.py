"""What an admin does: apt install, systemctl enable --now, edit the policy, ask busctl; proven
under a real systemd (PID 1 in a container with its own binfmt_misc), from the real .deb."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from multiarchd.core.messages import Event

from tests.support.lines import Lines
from tests.support.nspawn import BootedContainer
from tests.support.paths import REPO

pytestmark = pytest.mark.systemd

HOST_BINFMT = "/proc/sys/fs/binfmt_misc"
BUSCTL_STATE = ["busctl", "get-property", "io.github.multiarchd1", "/io/github/multiarchd1",
                "io.github.multiarchd1.Manager", "State"]


def state(c: BootedContainer) -> str:
    """The State property, once the name is on the bus: READY=1 (which `systemctl start` waits
    for) does not wait for the bus."""
    c.run("gdbus", "wait", "--system", "--timeout", "30", "io.github.multiarchd1")
    return c.run(*BUSCTL_STATE).stdout.strip()


def host_table() -> dict[str, str]:
    if not os.path.exists(f"{HOST_BINFMT}/status"):
        return {}
    return {n: Path(HOST_BINFMT, n).read_text() for n in os.listdir(HOST_BINFMT)
            if n != "register"}  # write-only


def exposure(unit: Path) -> float:
    out = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit)],
                         capture_output=True, text=True).stdout
    found = re.search(r"Overall exposure level for \S+: ([\d.]+)", out)
    assert found, out
    return float(found.group(1))


def test_unit_is_hardened() -> None:
    assert exposure(REPO / "units" / "multiarchd.service") <= 2.0
    # It cannot have a mount namespace of its own (its mount must stay), nor much else.
    assert exposure(REPO / "units" / "multiarchd-early.service") <= 3.2


def cursor(c: BootedContainer) -> str:
    out = c.run("journalctl", "-u", "multiarchd", "-n", "1", "--show-cursor", "-q").stdout
    return out.strip().splitlines()[-1].removeprefix("-- cursor: ")


def wait_message(c: BootedContainer, after: str, match: Callable[[dict[str, Any]], bool],
                timeout: float = 30) -> dict[str, Any]:
    """Follow the unit's journal from `after` until a message matches (bounded)."""
    follow = c.popen("journalctl", "-u", "multiarchd", "-o", "json", "-f",
                     f"--after-cursor={after}")
    assert follow.stdout is not None
    lines = Lines(follow.stdout)
    try:
        while True:
            line = lines.next(timeout)
            assert line is not None, "no such journal message"
            message: dict[str, Any] = json.loads(line)
            if match(message):
                return message
    finally:
        follow.kill()
        follow.wait()
        follow.stdout.close()


def states_once_proven(c: BootedContainer, timeout: float = 60) -> dict[str, str]:
    """Each architecture's state in `multiarchctl status`, once none is `active` any more: the
    probes run on the daemon's workers after READY=1 (a status read at once rightly says
    `active`, not yet `verified`), and each verdict that comes is a PropertiesChanged signal.
    Bounded; no sleeping: the status is read again at each signal."""
    watch = c.popen("sh", "-c", "exec busctl --json=short monitor io.github.multiarchd1 2>&1")
    assert watch.stdout is not None
    signals = Lines(watch.stdout)
    try:
        # (busctl says so once the bus made it a monitor: no signal after it is missed)
        assert signals.next(30) == "Monitoring bus message stream.", "busctl monitor failed"
        while True:
            status = json.loads(c.run("multiarchctl", "status", "--json").stdout)
            states = {a["name"]: a["state"] for a in status["architectures"]}
            if "active" not in states.values():
                return states
            while (line := signals.next(timeout)) is not None and \
                    json.loads(line).get("member") != "PropertiesChanged":
                pass
            assert line is not None, f"no verdict came within {timeout} s: {states}"
    finally:
        watch.kill()
        watch.wait()
        watch.stdout.close()


def test_installed_package_under_real_systemd(deb: Path, busybox: dict[str, Path],
                                             tmp_path: Path) -> None:
    before = host_table()
    c = BootedContainer(tmp_path)
    try:
        c.copy_in(deb, "/root/multiarchd.deb")
        c.run("dpkg", "-i", "/root/multiarchd.deb")
        # Installing enabled and started it; the admin's own command changes nothing.
        assert c.run("systemctl", "is-enabled", "multiarchd").stdout.strip() == "enabled"
        c.run("systemctl", "enable", "--now", "multiarchd")
        assert c.run("systemctl", "is-active", "multiarchd").stdout.strip() == "active"
        assert state(c) == 's "converged"'
        assert c.run(str(busybox["arm64"]), "uname", "-m").stdout.strip() == "aarch64"
        assert len(c.table()) == 33
        # The daemon proved each architecture by running its probe, inside its sandbox.
        states = states_once_proven(c)
        assert states["s390x"] == "verified" and states["x86_64"] == "native", states
        tested = c.run("multiarchctl", "test", "--json")
        assert {v["result"] for v in json.loads(tested.stdout)} == {"ok"}, tested.stdout

        # The early unit registered them (the daemon, started after it, had nothing to do).
        messages = [json.loads(line) for line in c.run(
            "journalctl", "-u", "multiarchd-early", "-o", "json").stdout.splitlines()]
        s390x = next(r for r in messages if r.get("MULTIARCH_ARCH") == "s390x")
        assert s390x["_SYSTEMD_UNIT"] == "multiarchd-early.service"
        assert s390x["MESSAGE_ID"] == Event.REGISTERED.message_id
        assert s390x["MULTIARCH_ENTRY"] == "multiarch-s390x"
        # The package's message catalog explains the records (journalctl -x).
        explained = c.run("journalctl", "-x", "-u", "multiarchd-early", "--no-pager").stdout
        assert "multiarchd registered a binfmt_misc entry" in explained
        assert "programs of that" in explained  # the catalog's text, with the record's fields

        verify = c.run("systemd-analyze", "verify", "multiarchd.service",
                       "multiarchd-early.service", check=False)
        assert (verify.returncode, verify.stdout + verify.stderr) == (0, "")

        # An edit is applied with no command.
        mark = cursor(c)
        c.run("sh", "-c", "printf 'arches:\\n  all: {}\\n  s390x: false\\n' "
                          "> /etc/multiarch/arches.yaml")
        wait_message(c, mark, lambda r: r.get("MESSAGE_ID") == Event.REMOVED.message_id
                    and r.get("MULTIARCH_ENTRY") == "multiarch-s390x")
        assert "multiarch-s390x" not in c.table()
        table = c.table()

        c.run("systemctl", "reload", "multiarchd")
        assert state(c) == 's "converged"'
        assert c.table() == table
        # A restart opens no window without entries: none is removed and registered anew.
        inodes = {n: (c.binfmt / n).stat().st_ino for n in table}
        c.run("systemctl", "restart", "multiarchd")
        assert state(c) == 's "converged"'
        assert c.table() == table
        assert {n: (c.binfmt / n).stat().st_ino for n in table} == inodes
        c.run("systemctl", "stop", "multiarchd")
        assert c.table() == table, "stopping must leave the entries in place"
        assert c.run(str(busybox["arm64"]), "uname", "-m").stdout.strip() == "aarch64"

        # Purge: the service and multiarchd's own entries go, nothing else does.
        c.run("sh", "-c", "printf ':other:E::xyz::/bin/true:' > /proc/sys/fs/binfmt_misc/register")
        c.run("dpkg", "--purge", "multiarchd")
        assert c.run("systemctl", "is-active", "multiarchd", check=False).stdout.strip() \
            == "inactive"
        assert not (c.merged / "lib/systemd/system/multiarchd.service").exists()
        assert not (c.merged / "etc/multiarch").exists()
        assert list(c.table()) == ["other"]
    finally:
        c.close()
    assert host_table() == before


def test_apt_remove_leaves_no_entry_and_logs_no_error(deb: Path, tmp_path: Path) -> None:
    """Removed while the daemon runs (the usual case): it must be stopped before the early
    unit's stop unregisters, else it puts every entry back with nothing left to remove them; a
    probe stopped with the service is no emulator crash."""
    c = BootedContainer(tmp_path)
    try:
        c.copy_in(deb, "/root/multiarchd.deb")
        c.run("dpkg", "-i", "/root/multiarchd.deb")
        assert state(c) == 's "converged"'
        # The guide's metrics drop-in starts where node-exporter's directory does not exist.
        guide = (REPO / "docs" / "admin.md").read_text()
        dropin = re.search(r"\(`systemctl edit multiarchd`\):\n\n```ini\n(.*?)```", guide,
                           re.S)
        assert dropin is not None
        conf = c.merged / "etc/systemd/system/multiarchd.service.d/metrics.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)  # (private.conf is there too)
        conf.write_text(dropin.group(1))
        c.run("rm", "-rf", "/var/lib/prometheus/node-exporter")  # (the container's own copy)
        c.run("systemctl", "daemon-reload")
        c.run("systemctl", "restart", "multiarchd")  # (226/NAMESPACE with the old drop-in)
        assert c.run("systemctl", "is-active", "multiarchd").stdout.strip() == "active"
        c.run("sh", "-c", "printf ':other:E::xyz::/bin/true:' > /proc/sys/fs/binfmt_misc/register")
        mark = cursor(c)
        c.run("dpkg", "--remove", "multiarchd")
        assert list(c.table()) == ["other"]
        errors = [json.loads(line) for line in c.run(
            "journalctl", "-o", "json", "-p", "err", "--after-cursor", mark).stdout.splitlines()]
        assert [r["MESSAGE"] for r in errors
                if r.get("SYSLOG_IDENTIFIER") == "multiarchd"] == []
    finally:
        c.close()


FOREIGN_AT_BOOT = """[Unit]
Description=A foreign program at boot, with default dependencies and no retry
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={busybox} uname -m
[Install]
WantedBy=multi-user.target
"""


def monotonic(c: BootedContainer, unit: str, prop: str) -> int:
    return int(c.run("systemctl", "show", "-P", prop, unit).stdout)


def test_entries_are_in_before_sysinit_and_gone_at_a_clean_shutdown(
        deb: Path, busybox: dict[str, Path], tmp_path: Path) -> None:
    c = BootedContainer(tmp_path)
    try:
        c.copy_in(deb, "/root/multiarchd.deb")
        c.run("dpkg", "-i", "/root/multiarchd.deb")
        assert c.run("systemctl", "is-enabled", "multiarchd-early").stdout.strip() == "enabled"
        unit = c.merged / "etc/systemd/system/foreign-at-boot.service"
        unit.write_text(FOREIGN_AT_BOOT.format(busybox=busybox["s390x"]))
        c.run("systemctl", "enable", "foreign-at-boot")
        # An upgrade (the same package again) keeps every entry: none is registered anew.
        inodes = {n: (c.binfmt / n).stat().st_ino for n in c.table()}
        c.run("dpkg", "-i", "/root/multiarchd.deb")
        assert {n: (c.binfmt / n).stat().st_ino for n in c.table()} == inodes

        # The package's autopkgtest, as autopkgtest runs it (isolation-machine, needs-reboot):
        # this stand-in for its reboot helper messages the mark; the reboot follows.
        c.copy_in(REPO / "packaging/debian/tests/boot", "/root/autopkgtest-boot")
        c.run("sh", "-c", "cat > /tmp/autopkgtest-reboot && chmod +x /tmp/autopkgtest-reboot",
              stdin='#!/bin/sh\necho "$1" > /root/reboot-mark\n')  # /tmp: the container's own
        c.run("sh", "/root/autopkgtest-boot", timeout=300)
        mark = (c.merged / "root/reboot-mark").read_text().strip()

        said = c.reboot().split("Powering off.")[0]
        # Nothing timed out or stayed busy; no unmount failed but /tmp's, which nspawn mounts
        # where the container's systemd may not unmount it (with or without multiarchd).
        failed = [line for line in said.splitlines()
                  if re.search(r"(?i)fail\S* unmount|timed out|timeout|busy", line)
                  and "tmp.mount" not in line]
        assert not failed, said
        # The shutdown unregistered (F entries hold their interpreters open) once the daemon
        # had stopped, and told the journal.
        told = c.run("journalctl", "-b", "-1", "-u", "multiarchd", "-u", "multiarchd-early",
                     "-o", "cat").stdout.splitlines()
        stopped = max(i for i, line in enumerate(told)
                      if line.startswith("Stopped multiarchd.service"))
        assert any(line.startswith("removed multiarch-s390x") for line in told[stopped:]), told

        # This boot: the entries were in before sysinit.target, and a unit with default
        # dependencies ran a foreign program on its first try.
        c.run("systemctl", "is-system-running", "--wait", check=False)
        registered = monotonic(c, "multiarchd-early", "ExecMainExitTimestampMonotonic")
        assert 0 < registered <= monotonic(c, "sysinit.target", "ActiveEnterTimestampMonotonic")
        assert monotonic(c, "multiarchd", "ActiveEnterTimestampMonotonic") > registered
        assert c.run("systemctl", "is-active", "foreign-at-boot").stdout.strip() == "active"
        ran = c.run("journalctl", "-b", "-u", "foreign-at-boot", "-o", "cat").stdout
        assert "s390x" in ran.splitlines(), ran
        assert state(c) == 's "converged"'
        # The message the first boot left was replayed (binfmt_misc mounted for it first, as
        # the full run does, where nothing has mounted it yet).
        early = c.run("journalctl", "-b", "-u", "multiarchd-early", "-p", "debug",
                      "-o", "cat").stdout
        assert "boot record replayed" in early, early
        after = c.run("env", f"AUTOPKGTEST_REBOOT_MARK={mark}", "sh", "/root/autopkgtest-boot",
                      timeout=300).stdout
        assert "entries registered before sysinit.target" in after, after
        critical = c.run("systemd-analyze", "critical-chain", "foreign-at-boot.service",
                         check=False).stdout
        assert "sysinit.target" in critical, critical
    finally:
        c.close()


ADMIN_RULE = """polkit.addRule(function(action, subject) {
    if (action.id == "io.github.multiarchd1.manage" && subject.user == "admin")
        return polkit.Result.YES;
});
"""


def test_polkit_lets_an_admin_change_things_and_no_one_else(deb: Path, tmp_path: Path) -> None:
    c = BootedContainer(tmp_path)
    try:
        c.copy_in(deb, "/root/multiarchd.deb")
        c.run("dpkg", "-i", "/root/multiarchd.deb")
        c.run("gdbus", "wait", "--system", "--timeout", "30", "io.github.multiarchd1")
        action = c.run("pkaction", "--action-id", "io.github.multiarchd1.manage",
                       "--verbose").stdout
        assert re.search(r"implicit active:\s+auth_admin_keep", action), action
        for user in ("admin", "plain"):
            c.run("useradd", "--create-home", user)
        # A site's rule stands in for an administrator who authenticated (no password prompt
        # in a test): polkitd itself decides, from the action multiarchd asks about.
        (c.merged / "etc/polkit-1/rules.d/50-multiarchd-test.rules").write_text(ADMIN_RULE)
        c.run("systemctl", "restart", "polkit")

        def as_user(user: str, *argv: str) -> subprocess.CompletedProcess[str]:
            return c.run("runuser", "-u", user, "--", "multiarchctl", *argv, check=False)

        applied = as_user("admin", "apply")
        assert applied.returncode == 0 and "converged" in applied.stdout, applied
        tested = as_user("admin", "test", "--json", "s390x")
        assert [v["result"] for v in json.loads(tested.stdout)] == ["ok"], tested
        assert as_user("admin", "reload").returncode == 0
        for verb in ("apply", "reload", "test"):
            denied = as_user("plain", verb)
            assert denied.returncode == 1 and denied.stdout == "", denied
            assert denied.stderr.splitlines() == [
                f"multiarchctl {verb}: " + denied.stderr.split(": ", 1)[1].strip()]
            assert "needs root, or an administrator's authorization through polkit (action " \
                "io.github.multiarchd1.manage)" in denied.stderr, denied.stderr
        assert as_user("plain", "status").returncode == 0  # reading needs nothing
    finally:
        c.close()
