"""The D-Bus API on a real private dbus-daemon that loads the shipped policy file unchanged."""

from __future__ import annotations

import json
import re
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from multiarchd import __version__

from tests.support.binfmt import PrivateBinfmt
from tests.support.bus import PrivateBus
from tests.support.commands import DaemonStarter, PolicyWriter
from tests.support.daemon import DaemonProcess
from tests.support.lines import Lines
from tests.support.paths import BIN

NAME, PATH, IFACE = "io.github.multiarchd1", "/io/github/multiarchd1", "io.github.multiarchd1.Manager"


@pytest.fixture
def served(bus: PrivateBus, binfmt: PrivateBinfmt, policy: PolicyWriter,
           start_daemon: DaemonStarter) -> tuple[DaemonProcess, Path]:
    """multiarchd with D-Bus on the private bus, once READY=1 and the name published."""
    path = policy("arches:\n  all: {}\n")
    return start_daemon(path, binfmt, bus=bus), path


def prop(bus: PrivateBus, name: str, user: str | None = None) -> Any:
    r = bus.busctl("--json=short", "get-property", NAME, PATH, IFACE, name, user=user)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["data"]


def call(bus: PrivateBus, method: str, *args: str,
         user: str | None = None) -> subprocess.CompletedProcess[str]:
    return bus.busctl("--json=short", "call", NAME, PATH, IFACE, method, *args, user=user)


def test_every_property_reads(bus: PrivateBus, served: tuple[DaemonProcess, Path]) -> None:
    d, path = served
    assert d.lines.index(f"multiarchd: D-Bus: {NAME} published at {PATH}") >= 0
    assert prop(bus, "State") == "converged"
    assert prop(bus, "Version") == __version__
    assert prop(bus, "HostArchitecture") == "x86_64"
    assert prop(bus, "PolicyPath") == str(path)
    assert prop(bus, "Table").startswith("a private one: user namespace ")
    assert prop(bus, "LastReconcile") > 1_600_000_000_000_000
    arches = {a[0]: a for a in prop(bus, "Architectures")}
    assert arches["s390x"] == ["s390x", "arch", "active", "/usr/bin/qemu-s390x-static", "qemu",
                               "PF", "multiarch-s390x", "", False]
    assert arches["x86_64"][2] == "native"
    # The model each architecture's file carries: aarch64's from the catalog, here.
    assert prop(bus, "CpuModels") == {"aarch64": "max,pauth-impdef=on"}
    assert prop(bus, "Findings") == []  # the audit of a clean table


def test_introspection_shows_the_whole_interface(bus: PrivateBus,
                                                 served: tuple[DaemonProcess, Path]) -> None:
    r = bus.busctl("introspect", NAME, PATH, IFACE, user="nobody")
    assert r.returncode == 0, r.stderr
    for member in ("Version", "HostArchitecture", "State", "PolicyPath", "LastReconcile",
                   "Architectures", "ForeignEntries", "Problems", "Findings", "BinfmtEnabled",
                   "Reconcile", "Reload", "Plan", "Test", "Release", "Reconciled"):
        assert f".{member} " in r.stdout
    assert "a(ssssssssb)" in r.stdout and "emits-change" in r.stdout


def test_methods_as_root(bus: PrivateBus, served: tuple[DaemonProcess, Path]) -> None:
    r = call(bus, "Reconcile")
    assert r.returncode == 0 and json.loads(r.stdout)["data"] == ["converged", []]
    assert call(bus, "Reload").returncode == 0
    assert json.loads(call(bus, "Plan").stdout)["data"] == [[], []]
    r = call(bus, "Test", "as", "1", "s390x")
    assert r.returncode == 0
    [[(arch, result, _message)]] = json.loads(r.stdout)["data"]
    assert arch == "s390x" and result in ("ok", "untested")


def test_domain_failures_are_named_errors(bus: PrivateBus, served: tuple[DaemonProcess, Path]
                                          ) -> None:
    r = call(bus, "Test", "as", "1", "arm65")
    assert r.returncode != 0 and "unknown architecture 'arm65' (did you mean 'arm64'?)" in r.stderr
    _, path = served
    path.write_text("arches: all\ndefaults: {flags: [Q]}\n")
    r = call(bus, "Plan")
    assert r.returncode != 0 and f"{path}:2:20: unknown flag 'Q'" in r.stderr
    # The error's D-Bus name, as a client library sees it:
    gdbus = subprocess.run(["gdbus", "call", "--system", "--dest", NAME, "--object-path", PATH,
                            "--method", f"{IFACE}.Reconcile"], capture_output=True, text=True,
                           env=dict(os.environ, **bus.env))
    assert "io.github.multiarchd1.Error.PolicyRejected" in gdbus.stderr


def test_unprivileged_reads_work_and_changes_are_denied(
        bus: PrivateBus, served: tuple[DaemonProcess, Path]) -> None:
    assert prop(bus, "State", user="nobody") == "converged"
    r = bus.busctl("--json=short", "call", NAME, PATH, "org.freedesktop.DBus.Properties",
                   "GetAll", "s", IFACE, user="nobody")
    assert r.returncode == 0 and "Architectures" in r.stdout
    assert call(bus, "Plan", user="nobody").returncode == 0
    for method, args in (("Reconcile", ()), ("Reload", ()), ("Test", ("[]",))):
        # The daemon asked polkit (there is none on this bus: only root may); gdbus shows the
        # error's words, which busctl reduces to "Access denied".
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            "gdbus", "call", "--system", "--dest", NAME, "--object-path", PATH,
                            "--method", f"{IFACE}.{method}", *args], capture_output=True,
                           text=True, env=dict(os.environ, **bus.env), timeout=60)
        assert r.returncode != 0 and "org.freedesktop.DBus.Error.AccessDenied" in r.stderr
        assert "needs root, or an administrator's authorization through " \
            "polkit (action io.github.multiarchd1.manage)" in r.stderr, r.stderr
        # polkit's own words, not a bool ("polkit could not be asked: True" before)
        assert "polkit could not be asked: " in r.stderr and "asked: True" not in r.stderr
    for verb in ("apply", "reload", "test"):  # one line, saying what is needed
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            str(BIN / "multiarchctl"), verb], capture_output=True, text=True,
                           env=dict(os.environ, **bus.env), timeout=60)
        assert r.returncode == 1 and r.stdout == "", r
        assert len(r.stderr.splitlines()) == 1 and "root" in r.stderr and "polkit" in r.stderr, \
            r.stderr


def test_only_root_may_own_the_name(bus: PrivateBus) -> None:
    script = ("import pydbus.bus as b, os; c = b.connect(os.environ['DBUS_SYSTEM_BUS_ADDRESS']); "
              f"c.request_name('{NAME}')")
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        "/usr/bin/python3", "-c", script], capture_output=True, text=True,
                       env=dict(os.environ, **bus.env), timeout=30)
    assert r.returncode != 0 and "AccessDenied" in r.stderr


def test_properties_changed_and_reconciled_arrive_after_a_policy_edit(
        bus: PrivateBus, served: tuple[DaemonProcess, Path]) -> None:
    _, path = served
    monitor = subprocess.Popen(["busctl", "--system", "--json=short", "monitor", NAME],
                               stdout=subprocess.PIPE, text=True, env=dict(os.environ, **bus.env))
    stdout = monitor.stdout
    assert stdout is not None
    try:
        seen: dict[str, Any] = {}

        lines = Lines(stdout)

        def read_until(member: str) -> Any:
            while member not in seen:
                line = lines.next(15)
                assert line is not None, f"no {member} signal; saw {list(seen)}"
                msg = json.loads(line)
                if msg.get("type") == "signal":
                    seen[msg["member"]] = msg["payload"]["data"]
            return seen[member]

        # busctl monitor starts asynchronously: a first change proves it listens.
        call(bus, "Reload")
        path.write_text("arches:\n  all: {}\n  s390x: false\n")
        reconciled = read_until("Reconciled")
        assert reconciled[0] == [["remove", "multiarch-s390x", reconciled[0][0][2]]]
        assert reconciled[1] == "converged"
        changed = read_until("PropertiesChanged")
        assert changed[0] == IFACE and "Architectures" in changed[1]
    finally:
        monitor.kill()
        monitor.wait()
        stdout.close()


def test_survives_clients_that_disconnect_mid_call(bus: PrivateBus,
                                                   served: tuple[DaemonProcess, Path]) -> None:
    d, _ = served
    for _ in range(20):
        client = subprocess.Popen(["busctl", "--system", "call", NAME, PATH, IFACE, "Reconcile"],
                                  env=dict(os.environ, **bus.env), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        client.send_signal(signal.SIGKILL)
        client.wait()
    assert d.proc.poll() is None
    assert prop(bus, "State") == "converged"


def test_a_thousand_reads_while_the_policy_changes(
        bus: PrivateBus, served: tuple[DaemonProcess, Path]) -> None:
    _, path = served
    import pydbus.bus
    client = pydbus.bus.connect(bus.address).get(NAME, PATH)
    stop = threading.Event()

    def edit() -> None:
        i = 0
        while not stop.is_set():
            text = "arches: all\n" if i % 2 else "arches: {all: {}, s390x: false}\n"
            tmp = path.with_name("arches.yaml.tmp")
            tmp.write_text(text)
            os.replace(tmp, path)
            i += 1
            stop.wait(0.01)

    editor = threading.Thread(target=edit)
    editor.start()
    try:
        states = set()
        for i in range(1000):
            states.add(client.State)
            if i % 10 == 0:
                assert len(client.Architectures) == 35
    finally:
        stop.set()
        editor.join()
    assert states <= {"converged"}


def test_bus_loss_does_not_stop_reconciling_and_it_reconnects(
        bus: PrivateBus, binfmt: PrivateBinfmt, served: tuple[DaemonProcess, Path]) -> None:
    d, _ = served
    since = d.mark()
    bus.stop()
    d.wait_log("D-Bus: lost the connection to the system bus", since)
    since = d.mark()
    binfmt.write("multiarch-s390x", "-1")
    d.wait_log("repaired multiarch-s390x", since)
    since = d.mark()
    bus.start()
    d.wait_log(f"D-Bus: {NAME} published", since)
    assert prop(bus, "State") == "converged"
    assert d.messages.count("READY=1") == 1


def test_multiarchctl_over_dbus(bus: PrivateBus, served: tuple[DaemonProcess, Path]) -> None:
    env = dict(os.environ, **bus.env)

    def ctl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "multiarchctl"), *args], capture_output=True, text=True,
                              env=env, timeout=60)
    r = ctl("status")
    assert r.returncode == 0 and "converged: 33 active" in r.stdout
    assert "s390x" in r.stdout and "/usr/bin/qemu-s390x-static" in r.stdout
    assert re.search(r"\naarch64 +active +qemu +max,pauth-impdef=on +PF ", r.stdout), r.stdout
    data = json.loads(ctl("status", "--json").stdout)
    assert data["state"] == "converged" and len(data["architectures"]) == 35
    assert {a["name"]: a["cpu"] for a in data["architectures"]}["aarch64"] == \
        "max,pauth-impdef=on"
    assert ctl("apply").returncode == 0
    assert ctl("reload").returncode == 0
    r = ctl("plan")
    assert (r.returncode, r.stdout.strip()) == (0, "nothing to do")
    r = ctl("test", "arm65")
    assert r.returncode == 2 and "did you mean 'arm64'" in r.stderr
    r = ctl("audit")  # through the daemon
    assert (r.returncode, r.stdout.split(" in ")[0]) == (0, "no findings"), r.stdout


def test_ready_does_not_wait_for_the_bus(binfmt: PrivateBinfmt, policy: PolicyWriter,
                                         start_daemon: DaemonStarter, bus: PrivateBus) -> None:
    """With no bus (dbus masked, or not started yet) the service is ready, the table converged,
    and STATUS says D-Bus is unavailable; when the bus comes, the name is taken."""
    bus.stop()
    d = start_daemon(policy("arches: {s390x: {}}\n"), binfmt, env=bus.env, dbus=True)
    assert binfmt.names() == ["multiarch-s390x"]
    d.wait_notify("STATUS=converged: 1 active; D-Bus unavailable (retrying)")
    since = d.mark()
    bus.start()
    d.wait_log(f"D-Bus: {NAME} published", since)
    d.wait_until(lambda: "STATUS=converged: 1 active" in d.messages[since[1]:], "STATUS")
    assert prop(bus, "State") == "converged"


_CALLS = """
import sys
from gi.repository import Gio, GLib
con = Gio.bus_get_sync(Gio.BusType.SYSTEM, None)
get = GLib.Variant("(ss)", ("io.github.multiarchd1.Manager", "State"))
for i in range(int(sys.argv[1])):
    con.call_sync("io.github.multiarchd1", "/io/github/multiarchd1",
                  "org.freedesktop.DBus.Properties", "Get", get, None, 0, 5000, None)
    con.call_sync("io.github.multiarchd1", "/io/github/multiarchd1",
                  "io.github.multiarchd1.Manager", "Plan", None, None, 0, 5000, None)
"""


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_memory_stays_flat_over_twenty_thousand_calls_by_anyone(
        bus: PrivateBus, served: tuple[DaemonProcess, Path]) -> None:
    """Each call used to leave about 1.9 KiB behind (PyGObject 3.42's method-call closures), for
    any user: a way for anyone to grow the daemon without bound."""
    def calls(n: int) -> None:
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            "/usr/bin/python3", "-c", _CALLS, str(n)], capture_output=True,
                           text=True, timeout=300, env=dict(os.environ, **bus.env))
        assert r.returncode == 0, r.stderr
    pid = served[0].proc.pid
    calls(1000)  # warmed up: caches, the first of each kind of answer
    before = _rss_kib(pid)
    calls(10_000)  # 20,000 calls: a Get and a Plan each time
    assert _rss_kib(pid) - before <= 1024, (before, _rss_kib(pid))


def test_reconciled_lists_only_what_was_applied() -> None:
    """An action the kernel refused changed nothing: the signal leaves it out (the journal
    says why)."""
    from multiarchd.dbus.pydbus_glue import BusLink
    from tests.support.fakes import result
    told: list[Any] = []

    class Face:
        def changed(self, plan: Any) -> None:
            told.append(plan)
    link = BusLink(Face(), lambda record: None, lambda: None,  # type: ignore[arg-type]
                   call_later=lambda s, f: 0, cancel=lambda h: None)
    done = result(refusals=1, changes=1)
    link.after_run(done, True)
    [plan] = told
    assert [a.entry for a in plan.actions] == ["multiarch-y0"]  # not the refused multiarch-x0


_STALLED_POLKIT = """
import os
from gi.repository import Gio, GLib
con = Gio.DBusConnection.new_for_address_sync(
    os.environ["DBUS_SYSTEM_BUS_ADDRESS"], Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT |
    Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)
held = []  # every question kept, never answered: an agent nobody answers
con.add_filter(lambda c, m, incoming: held.append(m) if incoming and
               m.get_member() == "CheckAuthorization" else m)
con.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
              "RequestName", GLib.Variant("(su)", ("org.freedesktop.PolicyKit1", 4)), None, 0,
              -1, None)
print("owned", flush=True)
GLib.MainLoop().run()
"""


def test_a_stalled_polkit_delays_nothing_but_its_own_caller(
        bus: PrivateBus, served: tuple[DaemonProcess, Path], binfmt: PrivateBinfmt) -> None:
    d, _ = served
    env = dict(os.environ, **bus.env)
    polkit = subprocess.Popen([sys.executable, "-c", _STALLED_POLKIT], stdout=subprocess.PIPE,
                              text=True, env=env)
    waiting: list[subprocess.Popen[str]] = []
    try:
        assert polkit.stdout is not None and polkit.stdout.readline().strip() == "owned"
        for _ in range(150):  # callers whose authorization never comes (130 nested loops broke)
            waiting.append(subprocess.Popen(
                ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "busctl",
                 "--system", "--timeout=120", "call", NAME, PATH, IFACE, "Reconcile"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
        assert prop(bus, "State", user="nobody") == "converged"  # reads answered
        assert call(bus, "Reconcile").returncode == 0  # root's call, not asked of polkit
        since = d.mark()
        binfmt.write("multiarch-s390x", "-1")  # drift is healed meanwhile
        d.wait_log("repaired multiarch-s390x", since)
        # Only they still wait, or were refused (the bus allows 128 questions in flight per
        # connection: past that it refuses the question, and the caller is told at once).
        done = [p for p in waiting if p.poll() is not None]
        assert all("Access denied" in p.communicate()[1] for p in done), done
        assert len(done) < len(waiting)
    finally:
        for p in waiting:
            p.kill()
            p.communicate()
        polkit.kill()
        polkit.wait()


def test_busctl_tree_finds_the_object(bus: PrivateBus, served: tuple[DaemonProcess, Path]) -> None:
    r = bus.busctl("tree", NAME, user="nobody")
    assert r.returncode == 0 and PATH in r.stdout, r.stdout + r.stderr
