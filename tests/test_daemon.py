"""The running daemon on a private binfmt_misc instance: every trigger leads to the right table,
drift of every kind is healed, bad edits cost nothing, and fights stay within their bound."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from tests.support.binfmt import USERNS, PrivateBinfmt
from tests.support.commands import DaemonStarter, PolicyWriter
from tests.support.paths import DEFAULT_POLICY

ALL_BUT_S390X = "arches:\n  all: {}\n  s390x: {enabled: false}\n"


def save_by_rename(path: Path, text: str) -> None:
    """As vim, `sed -i` and config-management tools do."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_ready_after_the_first_complete_reconcile(
        binfmt: PrivateBinfmt, start_daemon: DaemonStarter) -> None:
    d = start_daemon(DEFAULT_POLICY, binfmt)
    # READY=1 came (the fixture waited for it): by then the table was complete.
    assert len(binfmt.names()) == 33
    status = next(m for m in d.messages if m.startswith("STATUS="))
    assert status == "STATUS=converged: 33 active"
    assert d.messages.index("READY=1") > 0


def test_policy_edits_of_every_kind_are_applied(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter) -> None:
    path = policy("arches: all\n")
    d = start_daemon(path, binfmt)
    assert "multiarch-s390x" in binfmt.names()

    since = d.mark()  # written in place
    path.write_text(ALL_BUT_S390X)
    d.wait_log("removed multiarch-s390x", since)
    assert "multiarch-s390x" not in binfmt.names()

    since = d.mark()  # replaced by rename
    save_by_rename(path, "arches: all\n")
    d.wait_log("registered multiarch-s390x", since)

    since = d.mark()  # a drop-in created
    dropin = path.parent / "arches.d" / "50-no-riscv.yaml"
    dropin.parent.mkdir()
    dropin.write_text("arches: {all: {}, riscv64: false}\n")
    d.wait_log("removed multiarch-riscv64", since)

    since = d.mark()  # and deleted
    dropin.unlink()
    d.wait_log("registered multiarch-riscv64", since)
    assert len(binfmt.names()) == 33


def test_drift_of_every_kind_is_healed(binfmt: PrivateBinfmt, start_daemon: DaemonStarter,
                                       busybox: dict[str, Path]) -> None:
    d = start_daemon(DEFAULT_POLICY, binfmt)
    good = binfmt.snapshot()
    drifts = [
        ("multiarch-s390x", "-1", r"repaired multiarch-s390x \(register\)"),
        ("multiarch-arm", "0", r"repaired multiarch-arm \(enable\)"),
    ]
    for name, value, log in drifts:
        since = d.mark()
        binfmt.write(name, value)
        d.wait_log(log, since)
        assert binfmt.snapshot() == good

    since = d.mark()  # content changed by another tool: same name, other interpreter
    binfmt.write("multiarch-ppc64le", "-1")
    binfmt.write("register", ":multiarch-ppc64le:M::\\x7fELF\\x02\\x01::/bin/true:")
    d.wait_log(r"repaired multiarch-ppc64le \(replace\)", since)
    assert binfmt.snapshot() == good

    since = d.mark()  # everything flushed, as systemd-binfmt does at boot
    binfmt.write("status", "-1")
    d.wait_until(lambda: binfmt.snapshot() == good, "the whole table back")
    assert binfmt.exec(str(busybox["s390x"]), "uname", "-m").stdout.strip() == "s390x"


def test_foreign_entries_are_not_touched(binfmt: PrivateBinfmt, start_daemon: DaemonStarter,
                                         policy: PolicyWriter) -> None:
    d = start_daemon(policy("arches: {s390x: {}}\n"), binfmt)
    since = d.mark()
    binfmt.write("register", ":qemu-s390x:M::\\x7fELF\\x02\\x02\\x01::/bin/true:")
    binfmt.write("register", ":other:E::xyz::/bin/true:")
    d.reload()  # a full run after the foreign writes
    assert binfmt.read("qemu-s390x").startswith("enabled")
    assert "other" in binfmt.names()
    # Not touched; the one thing said is that it takes s390x's programs over (once).
    said = [line for line in d.lines[since[0]:] if "qemu-s390x" in line or "other" in line]
    assert said == ["multiarchd: multiarch-s390x: shadowed by qemu-s390x, registered later: the "
                    "kernel hands these binaries to it (set foreign_entries: disable to take them "
                    "back)"]


def test_fighting_writer_is_bounded_and_recovery_is_automatic(
        binfmt: PrivateBinfmt, start_daemon: DaemonStarter, policy: PolicyWriter) -> None:
    limit, window = 3, 2.0
    d = start_daemon(policy("arches: {s390x: {}}\n"), binfmt, "--repair-limit", str(limit),
                     "--repair-window", str(window))
    start = d.mark()
    for _ in range(limit):  # the other writer undoes every repair
        since = d.mark()
        binfmt.write("multiarch-s390x", "-1")
        d.wait_log("repaired multiarch-s390x", since)
    since = d.mark()
    binfmt.write("multiarch-s390x", "-1")
    d.wait_log(r"conflict on multiarch-s390x: another writer keeps undoing it", since)
    d.reload()
    assert "multiarch-s390x" not in binfmt.names(), "repaired while backing off"
    repairs = [line for line in d.lines[start[0]:] if "repaired multiarch-s390x" in line]
    assert len(repairs) == limit
    # The writer stops: once the window has passed the daemon repairs by itself.
    d.wait_log("repaired multiarch-s390x", since, timeout=window + 10)
    assert "multiarch-s390x" in binfmt.names()


def test_bad_edit_leaves_the_table_byte_identical_then_good_edit_applies(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter) -> None:
    path = policy("arches: all\n")
    d = start_daemon(path, binfmt)
    table = binfmt.snapshot()
    since = d.mark()
    save_by_rename(path, "arches: {all: {}, s390x: false\n")
    d.wait_log(rf"{path}:\d+:\d+: malformed YAML", since)
    d.wait_notify("STATUS=policy error", since)
    d.reload()
    assert binfmt.snapshot() == table
    since = d.mark()
    save_by_rename(path, ALL_BUT_S390X)
    d.wait_log("policy accepted", since)
    d.wait_log("removed multiarch-s390x", since)


def test_deleted_policy_is_an_error_not_an_order_to_remove(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter) -> None:
    path = policy("arches: all\n")
    d = start_daemon(path, binfmt)
    table = binfmt.snapshot()
    since = d.mark()
    path.unlink()
    d.wait_log("policy file not found", since)
    d.reload()
    assert binfmt.snapshot() == table
    since = d.mark()
    path.write_text("arches: {}\n")  # the way to ask for no entries
    d.wait_until(lambda: binfmt.names() == [], "every owned entry removed")


def test_burst_of_saves_gives_one_run(binfmt: PrivateBinfmt, policy: PolicyWriter,
                                      start_daemon: DaemonStarter) -> None:
    path = policy("arches: all\n")
    d = start_daemon(path, binfmt)
    since = d.mark()
    for i in range(20):
        save_by_rename(path, ALL_BUT_S390X if i % 2 == 0 else "arches: all\n")
    save_by_rename(path, ALL_BUT_S390X)
    d.wait_log("removed multiarch-s390x", since)
    d.reload()
    changes = [line for line in d.lines[since[0]:] if "multiarch-s390x" in line]
    assert changes == [next(line for line in changes)], changes


def test_replaced_interpreter_is_registered_again(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter,
        trusted_dir: Path, busybox: dict[str, Path]) -> None:
    emu = trusted_dir / "emu" / "qemu-s390x-static"
    emu.parent.mkdir()
    shutil.copy("/usr/bin/qemu-s390x-static", emu)
    d = start_daemon(policy(f"arches:\n  s390x: {{interpreter: {emu}}}\n"), binfmt)
    since = d.mark()
    new = emu.with_name("qemu-s390x-static.dpkg-new")  # what a package upgrade does
    shutil.copy("/usr/bin/qemu-s390x-static", new)
    os.replace(new, emu)
    d.wait_log(r"replaced multiarch-s390x: .* was replaced on disk", since)
    assert binfmt.exec(str(busybox["s390x"]), "uname", "-m").stdout.strip() == "s390x"


def test_emulator_appearing_in_a_directory_made_later_is_noticed_at_once(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter,
        trusted_dir: Path) -> None:
    # Its directory does not exist yet, nor the one above: the nearest existing one is watched
    # (the safety timer is 300 s; the wait below is 15 s).
    emu = trusted_dir / "later" / "bin" / "qemu-s390x-static"
    d = start_daemon(policy(f"arches:\n  s390x: {{interpreter: {emu}}}\n"), binfmt)
    assert binfmt.names() == []
    since = d.mark()
    emu.parent.mkdir(parents=True)
    shutil.copy("/usr/bin/qemu-s390x-static", emu)
    d.wait_log("registered multiarch-s390x", since)


def test_sighup_reloads_with_notifications(binfmt: PrivateBinfmt, start_daemon: DaemonStarter) -> None:
    d = start_daemon(DEFAULT_POLICY, binfmt)
    since = d.mark()
    d.reload()
    assert d.messages[since[1]].startswith("RELOADING=1")
    assert any(m.startswith("MONOTONIC_USEC=") for m in d.messages[since[1]:])


def test_sigterm_stops_cleanly_and_leaves_registrations(
        binfmt: PrivateBinfmt, start_daemon: DaemonStarter) -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        d = start_daemon(DEFAULT_POLICY, binfmt)
        since = d.mark()
        d.signal(signum)
        d.wait_notify("STOPPING=1", since)
        assert d.stop() == 0
        assert len(binfmt.names()) == 33


def test_the_watchdog_is_pinged_when_systemd_asks_for_it(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter) -> None:
    """WATCHDOG_USEC in the environment, as systemd sets it, is heard (how often it pings, half
    the timeout, is tested on a virtual clock in test_service_parts.py)."""
    d = start_daemon(policy("arches: {}\n"), binfmt, env={"WATCHDOG_USEC": "400000"})
    since = d.mark()
    d.wait_notify("WATCHDOG=1", since, timeout=5)
    d.wait_notify("WATCHDOG=1", (since[0], d.messages.index("WATCHDOG=1", since[1]) + 1),
                  timeout=5)  # and again


def test_mounts_binfmt_misc_when_nothing_has(policy: PolicyWriter, start_daemon: DaemonStarter) -> None:
    # In a fresh user and mount namespace nothing is mounted at the standard path.
    d = start_daemon(policy("arches: {s390x: {}}\n"), None, "--private", prefix=(
        "unshare", *USERNS))  # (a user namespace of its own: a private table, on purpose)
    table = f"/proc/{d.proc.pid}/root/proc/sys/fs/binfmt_misc"
    assert os.stat(table).st_dev != os.stat("/proc/sys/fs").st_dev
    assert "multiarch-s390x" in os.listdir(table)
    [mount] = [line.split() for line in Path(f"/proc/{d.proc.pid}/mountinfo").read_text()
               .splitlines() if line.split()[4] == "/proc/sys/fs/binfmt_misc"]
    assert {"nosuid", "nodev", "noexec"} <= set(mount[5].split(","))  # as systemd mounts it


def test_waits_for_binfmt_misc_and_applies_when_it_appears(
        policy: PolicyWriter, start_daemon: DaemonStarter, tmp_path: Path) -> None:
    where = tmp_path / "bm"
    where.mkdir()
    d = start_daemon(policy("arches: {s390x: {}}\n"), None, "--binfmt-dir", where, prefix=(
        "unshare", *USERNS))
    d.wait_log(f"binfmt_misc is not mounted at {where}")
    since = d.mark()
    subprocess.run(["nsenter", "-t", str(d.proc.pid), "--user", "--mount", "mount", "-t",
                    "binfmt_misc", "binfmt_misc", str(where)], check=True)
    d.wait_log("registered multiarch-s390x", since)
    assert "multiarch-s390x" in os.listdir(f"/proc/{d.proc.pid}/root{where}")


def test_configmap_style_update_is_applied(binfmt: PrivateBinfmt, tmp_path: Path,
                                           start_daemon: DaemonStarter) -> None:
    """The kubelet updates a mounted ConfigMap by swapping a `..data` symlink to a new directory;
    arches.yaml itself is a symlink through it and never changes."""
    etc = tmp_path / "configmap"
    (etc / "..v1").mkdir(parents=True)
    (etc / "..v1" / "arches.yaml").write_text("arches: {s390x: {}}\n")
    (etc / "..data").symlink_to("..v1")
    (etc / "arches.yaml").symlink_to("..data/arches.yaml")
    d = start_daemon(etc / "arches.yaml", binfmt)
    assert binfmt.names() == ["multiarch-s390x"]
    since = d.mark()
    (etc / "..v2").mkdir()
    (etc / "..v2" / "arches.yaml").write_text("arches: {arm64: {}}\n")
    (etc / "..data_tmp").symlink_to("..v2")
    os.replace(etc / "..data_tmp", etc / "..data")
    d.wait_log("registered multiarch-aarch64", since)
    d.wait_until(lambda: binfmt.names() == ["multiarch-aarch64"], "s390x removed")


def test_a_drop_in_in_a_run_directory_made_later_is_applied_at_once(
        binfmt: PrivateBinfmt, tmp_path: Path, start_daemon: DaemonStarter) -> None:
    """A VM tool or a package adds a drop-in under /run or /usr/lib without touching /etc; the
    directory need not exist when the daemon starts (here ROOT is a scratch directory)."""
    main = tmp_path / "etc/multiarch/arches.yaml"
    main.parent.mkdir(parents=True)
    main.write_text("arches: {s390x: {}}\n")
    d = start_daemon(main, binfmt)
    since = d.mark()
    dropin = tmp_path / "run/multiarch/arches.d/50-vm.yaml"
    dropin.parent.mkdir(parents=True)
    dropin.write_text("arches: {arm: {}}\n")
    d.wait_log("registered multiarch-arm", since)
    since = d.mark()
    (tmp_path / "etc/multiarch/arches.d").mkdir()
    (tmp_path / "etc/multiarch/arches.d/50-vm.yaml").write_text("arches: {riscv64: {}}\n")
    d.wait_log("removed multiarch-arm", since)  # the admin's file of that name wins
    d.wait_until(lambda: binfmt.names() == ["multiarch-riscv64", "multiarch-s390x"], "riscv64")
