"""Faults and hostile input against the real kernel and a running daemon: what a hostile tester
tried, each with what it gets (docs/faults.md)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import select
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from multiarchd.core.plan import Kind
from multiarchd.model.options import Config
from multiarchd.reconciler.run import reconcile_once

from tests.support.binfmt import USERNS, PrivateBinfmt
from tests.support.bus import PrivateBus
from tests.support.commands import DaemonStarter, PolicyWriter, run
from tests.support.inotify import IN_MODIFY, Inotify
from tests.support.paths import BIN, DEFAULT_POLICY

# Race trials: a few in every run of the suite, 200 when MULTIARCH_LONG_TESTS is set.
TRIALS = 200 if os.environ.get("MULTIARCH_LONG_TESTS") else 15

# Entries another tool could register: names and interpreters with bytes that are not UTF-8,
# control characters and line separators. The kernel takes them all.
HOSTILE = [b":foo:E::xyz::/tmp/\xff:", b":bar\x01baz:E::abc::/opt/a\x0bb \x85\xe2\x80\xa8:",
           b":\xc3\x28:E::zz\x1e::/usr/bin/x\ry:"]


def test_foreign_entries_with_any_bytes_are_read_shown_escaped_and_harm_nothing(
        binfmt: PrivateBinfmt, policy: PolicyWriter, bus: PrivateBus,
        start_daemon: DaemonStarter) -> None:
    for line in HOSTILE:
        fd = os.open(os.path.join(binfmt.path, "register"), os.O_WRONLY)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    path = policy("arches: {s390x: {}}\n")
    once = run("multiarchd", "--once", config=path, binfmt=binfmt)
    assert once.returncode == 0, once.stderr
    assert "foo  enabled  /tmp/\\xff" in once.stdout
    assert "bar\\x01baz  enabled  /opt/a\\x0bb \\x85\\u2028" in once.stdout
    assert "\\xc3(  enabled  /usr/bin/x\\ry" in once.stdout
    d = start_daemon(path, binfmt, bus=bus)
    since = d.mark()
    binfmt.write("multiarch-s390x", "-1")  # drift is still healed with them around
    d.wait_log("repaired multiarch-s390x", since)
    remote = subprocess.run([str(BIN / "multiarchctl"), "status", "--json"], capture_output=True,
                            text=True, env=dict(os.environ, **bus.env), timeout=60)
    assert remote.returncode == 0, remote.stderr
    foreign = {f["name"]: f["interpreter"] for f in json.loads(remote.stdout)["foreign"]}
    assert foreign == {"foo": "/tmp/\\xff", "bar\\x01baz": "/opt/a\\x0bb \\x85\\u2028",
                       "\\xc3(": "/usr/bin/x\\ry"}


def busctl_prop(bus: PrivateBus, name: str) -> Any:
    r = bus.busctl("--json=short", "get-property", "io.github.multiarchd1",
                   "/io/github/multiarchd1", "io.github.multiarchd1.Manager", name)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["data"]


def test_during_a_policy_error_the_last_good_policy_stays_in_force_and_is_healed(
        binfmt: PrivateBinfmt, policy: PolicyWriter, bus: PrivateBus,
        start_daemon: DaemonStarter) -> None:
    path = policy("arches: {s390x: {}, arm: {}}\n")
    d = start_daemon(path, binfmt, bus=bus)
    good = binfmt.snapshot()
    since = d.mark()
    path.write_text("arches: {s390x: {}}\ndefaults: {flags: [Q]}\n")
    d.wait_notify("STATUS=policy error, keeping the last good registrations: "
                  f"{path}:2:20: unknown flag 'Q'", since)
    d.wait_log("policy rejected; the last good policy stays in force", since)
    since = d.mark()
    binfmt.write("multiarch-arm", "-1")
    d.wait_log("repaired multiarch-arm", since)
    assert binfmt.snapshot() == good
    assert busctl_prop(bus, "State") == "policy-error"
    states = {a[0]: a[2] for a in busctl_prop(bus, "Architectures")}
    assert states["s390x"] == states["arm"] == "active"


def test_started_on_a_bad_policy_it_changes_nothing_and_says_so(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter) -> None:
    assert run("multiarchd", "--once", config=policy("arches: {s390x: {}}\n"),
               binfmt=binfmt).returncode == 0
    before = binfmt.snapshot()
    d = start_daemon(policy("arches: {arm: {}}\ndefaults: {flags: [Q]}\n"), binfmt)
    d.wait_log("policy rejected; every registration is left as it was")
    assert "STATUS=policy error, keeping the last good registrations" in "\n".join(d.messages)
    assert binfmt.snapshot() == before


def test_an_empty_or_null_policy_is_an_error_not_a_wipe(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter) -> None:
    path = policy("arches: {s390x: {}, arm: {}}\n")
    d = start_daemon(path, binfmt)
    good = binfmt.snapshot()
    for text, words in (("", "the policy file is empty"), ("  \n\n", "the policy file is empty"),
                        ("# all off?\n", "the policy file is empty"),
                        ("arches: null\n", "arches is empty (null)"),
                        ("defaults: {flags: [F]}\n", "no policy file says which architectures")):
        since = d.mark()
        path.write_text(text)
        d.wait_log(re.escape(words), since)
        assert binfmt.snapshot() == good, text
        since = d.mark()
        path.write_text("arches: {s390x: {}, arm: {}}\n")
        d.wait_log("policy accepted", since)
    since = d.mark()
    path.write_text("arches: {}\n")  # only this asks for no entries
    d.wait_until(lambda: binfmt.names() == [], "every owned entry removed")


def test_a_policy_written_in_place_slowly_is_not_applied_half_written(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter) -> None:
    path = policy("arches: {s390x: {}, arm: {}}\n")
    d = start_daemon(path, binfmt)
    since = d.mark()
    with open(path, "w") as f:  # truncated: in-place writers (echo >, cat >, config tools)
        f.write("arches:\n  s390x: {}\n")
        f.flush()
        # A slow writer: longer than the editors' debounce, within the bound a writer gets.
        time.sleep(0.3)
        f.write("  arm: {}\n  riscv64: {}\n")
    d.wait_log("registered multiarch-riscv64", since)
    assert not any("removed multiarch-arm" in line for line in d.lines[since[0]:])
    assert binfmt.names() == ["multiarch-arm", "multiarch-riscv64", "multiarch-s390x"]


def test_a_fifo_or_a_device_as_a_drop_in_is_refused_at_once_and_stop_still_works(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter) -> None:
    path = policy("arches: {s390x: {}}\n")
    d = start_daemon(path, binfmt)
    dropins = path.parent / "arches.d"
    dropins.mkdir()
    for make, words in ((lambda p: os.mkfifo(p), "is a FIFO"),
                        (lambda p: p.symlink_to("/dev/zero"), "is a character device")):
        since = d.mark()
        make(dropins / "bad.yaml")
        d.wait_log(words, since)
        (dropins / "bad.yaml").unlink()
        d.wait_log("policy accepted", since)
    assert binfmt.names() == ["multiarch-s390x"]
    assert d.stop() == 0


def test_an_interpreter_that_becomes_changeable_by_others_is_unregistered_at_once(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter,
        trusted_dir: Path) -> None:
    emu = trusted_dir / "qemu-s390x-static"
    shutil.copy("/usr/bin/qemu-s390x-static", emu)
    d = start_daemon(policy(f"arches:\n  s390x: {{interpreter: {emu}}}\n  arm: {{}}\n"), binfmt)
    assert binfmt.names() == ["multiarch-arm", "multiarch-s390x"]
    since = d.mark()
    os.chown(emu, 65534, 65534)  # now `nobody` could put any program there, run as root
    d.wait_log("removed multiarch-s390x", since)
    d.wait_log(f"interpreter {emu} is not trusted: interpreter {emu} is owned by uid 65534", since)
    assert binfmt.names() == ["multiarch-arm"]
    since = d.mark()
    os.chown(emu, 0, 0)
    d.wait_log("registered multiarch-s390x", since)


# Runs inside the table's namespace: execs the given programs in a loop until stdin closes, then
# prints how many ran and how many failed (posix_spawn, not a shell: on ENOEXEC a shell would
# run the file as a script instead).
_EXEC_LOOP = """
import os, select, sys
runs = fails = 0
print("ready", flush=True)
while not select.select([sys.stdin], [], [], 0)[0]:
    for path in sys.argv[1:]:
        try:
            pid = os.posix_spawn(path, [path, "true"], {})
            fails += os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0
        except OSError:
            fails += 1
        runs += 1
print(runs, fails)
"""


def test_replacing_entries_leaves_no_instant_without_one(
        binfmt: PrivateBinfmt, policy: PolicyWriter, busybox: dict[str, Path],
        tmp_path: Path) -> None:
    """500 runs each replace the arm64 entry and an extension entry (flags F P <-> F) while
    other processes exec an arm64 busybox and an .xyzt file through them, without pause."""
    ext = tmp_path / "prog.xyzt"
    ext.write_text("")
    ext.chmod(0o755)
    tmp_path.chmod(0o755)
    texts = [f"defaults: {{flags: {flags}}}\narches: {{arm64: {{}}}}\ncustom:\n"
             f"  - {{name: t, extension: xyzt, interpreter: /usr/bin/true, flags: {flags}}}\n"
             for flags in ("[F, P]", "[F]")]
    path = policy(texts[0])
    config = Config(str(path), binfmt.path)
    reconcile_once(config)
    loops = [subprocess.Popen(binfmt.enter(sys.executable, "-c", _EXEC_LOOP, str(program)),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for program in (busybox["arm64"], ext, ext)]
    for loop in loops:  # each is execing before the first replacement
        assert loop.stdout is not None and loop.stdout.readline() == "ready\n"
    replaced = 0
    try:
        for i in range(500):
            path.write_text(texts[(i + 1) % 2])
            result = reconcile_once(config)
            replaced += sum(o.ok and o.action.kind is Kind.REPLACE for o in result.report.outcomes)
    finally:
        counts = [loop.communicate("", timeout=60)[0].split() for loop in loops]
    assert replaced == 1000
    assert binfmt.names() == ["multiarch-aarch64", "multiarch-t"]  # no stand-in left
    runs = [int(c[0]) for c in counts]
    assert runs[0] > 20 and runs[1] > 500 and runs[2] > 500, runs
    assert [int(c[1]) for c in counts] == [0, 0, 0], (runs, counts)


def test_a_second_daemon_on_the_same_table_refuses_and_names_the_first(
        binfmt: PrivateBinfmt, policy: PolicyWriter, bus: PrivateBus,
        start_daemon: DaemonStarter) -> None:
    path = policy("arches: {s390x: {}}\n")
    first = start_daemon(path, binfmt, bus=bus)
    for how in ({}, {"bus": bus}):
        second = start_daemon(path, binfmt, ready=False, **how)
        assert second.proc.wait(timeout=30) == 1
        second.wait_log(f"another multiarchd \\(pid {first.proc.pid}\\) already keeps the "
                        f"binfmt_misc table at {re.escape(binfmt.path)}")
        assert "READY=1" not in second.messages
    assert first.proc.poll() is None and binfmt.names() == ["multiarch-s390x"]


def test_a_policy_directory_deleted_and_made_again_or_renamed_over_is_watched_again(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter) -> None:
    path = policy("arches: {s390x: {}}\n")
    d = start_daemon(path, binfmt)
    since = d.mark()
    shutil.rmtree(path.parent)
    d.wait_log("policy file not found", since)
    path.parent.mkdir()
    path.write_text("arches: {arm: {}}\n")
    d.wait_log("registered multiarch-arm", since)
    since = d.mark()
    path.write_text("arches: {arm: {}, riscv64: {}}\n")  # the new directory is watched
    d.wait_log("registered multiarch-riscv64", since)
    since = d.mark()
    new = path.parent.with_name("etc.new")  # as configuration management swaps a directory
    new.mkdir()
    (new / "arches.yaml").write_text("arches: {riscv64: {}}\n")
    os.rename(new, path.parent.with_name("etc.old"))
    os.rename(path.parent, path.parent.with_name("etc.gone"))
    os.rename(path.parent.with_name("etc.old"), path.parent)
    d.wait_log("removed multiarch-arm", since)
    since = d.mark()
    path.write_text("arches: {s390x: {}}\n")
    d.wait_log("registered multiarch-s390x", since)


def test_binfmt_misc_mounted_again_is_a_new_table_and_is_filled_at_once(
        policy: PolicyWriter, start_daemon: DaemonStarter, tmp_path: Path) -> None:
    where = tmp_path / "bm"
    where.mkdir()
    d = start_daemon(policy("arches: {s390x: {}}\n"), None, "--binfmt-dir", where,
                     prefix=("unshare", *USERNS), ready=False)

    def inside(*argv: str) -> None:
        subprocess.run(["nsenter", "-t", str(d.proc.pid), "--user", "--mount", *argv],
                       check=True)
    d.wait_log(f"binfmt_misc is not mounted at {where}")  # started, in its namespace, waiting
    inside("mount", "-t", "binfmt_misc", "binfmt_misc", str(where))
    d.wait_log("registered multiarch-s390x")
    for _ in range(3):
        since = d.mark()
        inside("umount", str(where))  # the daemon's own namespace: the last mount, so empty
        inside("mount", "-t", "binfmt_misc", "binfmt_misc", str(where))
        d.wait_log("(registered|repaired) multiarch-s390x", since)  # not at the safety timer
        assert "multiarch-s390x" in os.listdir(f"/proc/{d.proc.pid}/root{where}")


def test_a_removal_at_any_instant_after_start_is_healed(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter) -> None:
    """Watches are armed before the first look: whenever another tool removes an entry, even
    while the first run is under way, a run follows (not the 300 s safety timer)."""
    # In the table's namespace, so that the first run's probes really run (and take a while).
    path = policy("arches: {s390x: {}, arm: {}, riscv64: {}, ppc64le: {}, mips64el: {}}\n")
    rng = random.Random(42)
    for _ in range(TRIALS):
        d = start_daemon(path, binfmt, inside=True, ready=False)
        d.wait_until(lambda: "multiarch-s390x" in binfmt.names(), "the first registration")
        time.sleep(rng.uniform(0, 0.5))  # the race itself: a removal at a random instant
        binfmt.write("multiarch-s390x", "-1")
        d.wait_until(lambda: "multiarch-s390x" in binfmt.names(), "the repair")
        assert d.stop() == 0


def test_an_unprivileged_flood_of_calls_does_not_hold_up_repairs(
        binfmt: PrivateBinfmt, policy: PolicyWriter, bus: PrivateBus,
        start_daemon: DaemonStarter) -> None:
    d = start_daemon(policy("arches: all\n"), binfmt, bus=bus)
    call = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c",
            "while busctl --system call io.github.multiarchd1 /io/github/multiarchd1 "
            "io.github.multiarchd1.Manager Plan >/dev/null; do :; done"]
    flood = [subprocess.Popen(call, env=dict(os.environ, **bus.env)) for _ in range(4)]
    try:
        for _ in range(10):
            since = d.mark()
            binfmt.write("multiarch-s390x", "-1")
            d.wait_log("repaired multiarch-s390x", since)
    finally:
        for p in flood:
            p.kill()
            p.wait()


def test_a_hanging_emulator_delays_nothing_else(
        binfmt: PrivateBinfmt, policy: PolicyWriter, bus: PrivateBus, trusted_dir: Path,
        start_daemon: DaemonStarter) -> None:
    hang = trusted_dir / "qemu-hangs"
    hang.write_text("#!/bin/sh\nexec sleep 600\n")
    hang.chmod(0o755)
    d = start_daemon(policy(f"arches:\n  s390x: {{interpreter: {hang}}}\n  arm: {{}}\n"), binfmt,
                     inside=True, bus=bus)  # in the table's namespace: the probes really run
    assert busctl_prop(bus, "State") == "converged"  # properties answer while s390x's hangs
    since = d.mark()
    binfmt.write("multiarch-arm", "-1")
    d.wait_log("repaired multiarch-arm", since)  # repairs happen
    states = {a[0]: a[2] for a in busctl_prop(bus, "Architectures")}
    assert states["s390x"] == "active" and states["arm"] in ("active", "verified")
    assert d.stop() == 0  # SIGTERM does not wait for the hung probe (stop() would kill it)


def test_killed_at_any_step_of_an_apply_a_restart_converges(
        binfmt: PrivateBinfmt, start_daemon: DaemonStarter) -> None:
    """kill -9 after about the k-th write of applying the 33-entry default policy, then a new
    daemon: every entry right, no stand-in left."""
    for k in (1, 9, 17, 32):
        with Inotify(binfmt.path) as events:
            once = subprocess.Popen([str(BIN / "multiarchd"), "--once", "--config",
                                     str(DEFAULT_POLICY), "--binfmt-dir", binfmt.path],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # Each write shows as an event (the kernel merges those not read yet): look again
            # at each until k entries are there.
            while len(binfmt.names()) < k:
                events.wait("register", IN_MODIFY)
            once.kill()
            once.wait()
        d = start_daemon(DEFAULT_POLICY, binfmt)
        assert len(binfmt.names()) == 33 and not [n for n in binfmt.names() if "~" in n]
        assert d.stop() == 0
        for name in binfmt.names():
            binfmt.write(name, "-1")


def test_an_emulator_deleted_or_made_unexecutable_is_said_and_its_entry_kept(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter,
        trusted_dir: Path, busybox: dict[str, Path]) -> None:
    """With F the kernel holds the file it opened: the entry still works, so it is left in
    place and the problem is said; fixing the file needs no restart."""
    emu = trusted_dir / "qemu-s390x-static"
    shutil.copy("/usr/bin/qemu-s390x-static", emu)
    d = start_daemon(policy(f"arches: {{s390x: {{interpreter: {emu}}}}}\n"), binfmt)
    breakings: list[tuple[Callable[[], None], str]] = [
        (lambda: emu.chmod(0o644), "is not an executable file"),
        (lambda: emu.unlink(), "does not exist")]
    for breaking, words in breakings:
        since = d.mark()
        breaking()
        d.wait_log(re.escape(f"interpreter {emu} {words}"), since)
        assert binfmt.names() == ["multiarch-s390x"]
        assert binfmt.exec(str(busybox["s390x"]), "uname", "-m").stdout.strip() == "s390x"
        since = d.mark()
        new = emu.with_name("new")  # the kernel holds the old file open: replace, not rewrite
        shutil.copy("/usr/bin/qemu-s390x-static", new)
        os.replace(new, emu)
        d.wait_log("policy accepted", since)


def test_test_with_no_policy_file_says_so(tmp_path: Path) -> None:
    r = run("multiarchctl", "test", "--local", config=tmp_path / "none.yaml")
    assert r.returncode == 2
    assert f"{tmp_path}/none.yaml: policy file not found" in r.stderr


def test_a_full_notify_socket_holds_up_no_repair_and_a_missing_one_no_stop(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter,
        tmp_path: Path) -> None:
    path = policy("arches: {s390x: {}}\n")
    # A service manager that reads nothing: its socket's queue is full before we start.
    full = tmp_path / "full.sock"
    manager = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    manager.bind(str(full))
    with manager, socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as filler:
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:
                filler.sendto(b"X=1", str(full))
        d = start_daemon(path, binfmt, env={"NOTIFY_SOCKET": str(full)}, ready=False)
        d.wait_log("registered multiarch-s390x")
        d.wait_log("cannot notify systemd at .*: Resource temporarily unavailable")
        since = d.mark()
        binfmt.write("multiarch-s390x", "-1")
        d.wait_log("repaired multiarch-s390x", since)  # the main loop was not held up
        assert d.stop() == 0
    # No socket at all where NOTIFY_SOCKET points: the first SIGTERM stops it.
    d = start_daemon(path, binfmt, env={"NOTIFY_SOCKET": str(tmp_path / "gone.sock")},
                     ready=False)
    d.wait_log("cannot notify systemd at .*: No such file or directory")
    assert d.stop() == 0


def test_a_test_call_on_a_hung_probe_delays_no_other_caller(
        binfmt: PrivateBinfmt, policy: PolicyWriter, bus: PrivateBus, trusted_dir: Path,
        start_daemon: DaemonStarter) -> None:
    """Two Test calls at once: the second on an emulator that hangs (its probe gives up after
    20 s) comes while the first one's probe runs. The first is answered when its own probe
    ends. With a nested main loop per call, the first waited behind the second (last in,
    first out)."""
    hang = trusted_dir / "qemu-hangs"
    hang.write_text("#!/bin/sh\nexec sleep 600\n")
    started = trusted_dir / "started"
    os.mkfifo(started)
    slow = trusted_dir / "qemu-slow"  # says when arm's probe starts, then takes a second
    slow.write_text(f"#!/bin/sh\necho >{started}\nsleep 1\nexec /usr/bin/qemu-arm-static \"$@\"\n")
    for script in (hang, slow):
        script.chmod(0o755)
    start_daemon(policy(f"verify: false\narches:\n  s390x: {{interpreter: {hang}}}\n"
                        f"  arm: {{interpreter: {slow}, flags: []}}\n"), binfmt,
                 inside=True, bus=bus)

    def test_call(arch: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["busctl", "--system", "--json=short", "--timeout=120", "call",
             "io.github.multiarchd1", "/io/github/multiarchd1", "io.github.multiarchd1.Manager",
             "Test", "as", "1", arch], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, **bus.env))
    fifo = os.open(started, os.O_RDONLY | os.O_NONBLOCK)  # kept open: the script never blocks
    first = test_call("arm")
    stuck: subprocess.Popen[str] | None = None
    try:
        assert select.select([fifo], [], [], 60)[0], "arm's probe did not start"
        stuck = test_call("s390x")  # while the first call waits for its probe
        out, err = first.communicate(timeout=60)
        assert first.returncode == 0, err
        assert json.loads(out)["data"] == [[["arm", "ok", "probe ran"]]]
        again = bus.busctl("call", "io.github.multiarchd1", "/io/github/multiarchd1",
                           "io.github.multiarchd1.Manager", "Reconcile")
        assert again.returncode == 0, again.stderr
        assert stuck.poll() is None  # the hung one still waits for its own probe
        out, err = stuck.communicate(timeout=60)  # and gets its own answer in the end
        assert "hung for more than" in out, err
    finally:
        os.close(fifo)
        for p in (first, stuck):
            if p is not None and p.poll() is None:
                p.kill()
                p.communicate()
