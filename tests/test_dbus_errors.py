"""What a caller may send, on the real private bus with the shipped policy: the standard D-Bus
error for each wrong call (the freedesktop spec's names, as sd-bus gives them), at most a
bounded prefix of what was sent quoted back, sizes refused before anything is unpacked, and a
Test that probes each architecture once however often it is named."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gi.repository import Gio, GLib

from tests.support.binfmt import PrivateBinfmt
from tests.support.bus import PrivateBus
from tests.support.commands import DaemonStarter, PolicyWriter
from tests.support.daemon import DaemonProcess

NAME, PATH, IFACE = "io.github.multiarchd1", "/io/github/multiarchd1", "io.github.multiarchd1.Manager"
PROPS, PEER = "org.freedesktop.DBus.Properties", "org.freedesktop.DBus.Peer"
INTROSPECTABLE = "org.freedesktop.DBus.Introspectable"
STD = "org.freedesktop.DBus.Error."


@pytest.fixture
def served(bus: PrivateBus, binfmt: PrivateBinfmt, policy: PolicyWriter,
           start_daemon: DaemonStarter) -> DaemonProcess:
    return start_daemon(policy("arches:\n  all: {}\n"), binfmt, bus=bus)


@pytest.fixture
def con(bus: PrivateBus) -> Iterator[Gio.DBusConnection]:
    c = Gio.DBusConnection.new_for_address_sync(
        bus.address, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT |
        Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)
    yield c
    c.close_sync(None)


def call(con: Gio.DBusConnection, path: str, interface: str, member: str,
         args: GLib.Variant | None = None) -> tuple[str | None, str]:
    """(the D-Bus error's name, its words), or (None, the answer printed)."""
    try:
        answer = con.call_sync(NAME, path, interface, member, args, None,
                               Gio.DBusCallFlags.NONE, 20_000, None)
    except GLib.Error as e:
        name = Gio.DBusError.get_remote_error(e)
        Gio.DBusError.strip_remote_error(e)
        return name, e.message
    return None, answer.print_(False)


def test_each_wrong_call_gets_its_standard_error(served: DaemonProcess,
                                                 con: Gio.DBusConnection) -> None:
    ss = GLib.Variant("(ss)", (IFACE, "State"))
    cases = [
        (("/io/github/nope", PROPS, "Get", ss), "UnknownObject"),
        (("/io/github", PROPS, "Get", ss), "UnknownObject"),
        ((PATH, "org.example.Nope", "Frob", None), "UnknownInterface"),
        ((PATH, IFACE, "Frob", None), "UnknownMethod"),
        ((PATH, PROPS, "Frob", None), "UnknownMethod"),
        ((PATH, PROPS, "Get", GLib.Variant("(s)", (IFACE,))), "InvalidArgs"),
        ((PATH, PROPS, "Get", GLib.Variant("(ss)", ("org.example.Nope", "State"))),
         "UnknownInterface"),
        ((PATH, PROPS, "Get", GLib.Variant("(ss)", (IFACE, "Nope"))), "UnknownProperty"),
        ((PATH, PROPS, "GetAll", GLib.Variant("(s)", ("org.example.Nope",))), "UnknownInterface"),
        ((PATH, PROPS, "Set", GLib.Variant("(ssv)", (IFACE, "Nope", GLib.Variant("s", "x")))),
         "UnknownProperty"),
        ((PATH, PROPS, "Set", GLib.Variant("(ssv)", (IFACE, "State", GLib.Variant("s", "x")))),
         "PropertyReadOnly"),
        ((PATH, INTROSPECTABLE, "Introspect", GLib.Variant("(s)", ("extra",))), "InvalidArgs"),
        ((PATH, PEER, "Frob", None), "UnknownMethod"),
        ((PATH, IFACE, "Plan", GLib.Variant("(s)", ("extra",))), "InvalidArgs"),
    ]
    got = {args[:3]: call(con, *args)[0] for args, _ in cases}
    assert got == {args[:3]: STD + name for args, name in cases}
    # and what is right still answers
    assert call(con, PATH, PEER, "Ping")[0] is None
    assert call(con, "/io", INTROSPECTABLE, "Introspect")[1].count("<node name='github'/>") == 1
    assert "converged" in call(con, PATH, PROPS, "Get", ss)[1]


def test_errors_quote_only_a_bounded_prefix_and_sizes_come_first(
        served: DaemonProcess, con: Gio.DBusConnection) -> None:
    name, words = call(con, PATH, PROPS, "Get", GLib.Variant("(ss)", (IFACE, "N" * 250)))
    assert name == STD + "UnknownProperty" and "N" * 64 in words and "N" * 65 not in words
    name, words = call(con, PATH, PROPS, "Get", GLib.Variant("(ss)", (IFACE, "N" * 100_000)))
    assert name == STD + "LimitsExceeded" and "255 bytes" in words and len(words) < 200, words
    name, words = call(con, PATH, IFACE, "Test", GLib.Variant("(as)", (["s390x"] * 257,)))
    assert name == STD + "LimitsExceeded" and "at most 256 names" in words, words
    name, words = call(con, PATH, IFACE, "Release", GLib.Variant("(s)", ("x" * 300,)))
    assert name == STD + "LimitsExceeded", words


def _rss_kib(pid: int) -> int:
    return next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text()
                .splitlines() if line.startswith("VmRSS:"))


_HUGE_TEST = """
import sys
from gi.repository import Gio, GLib
con = Gio.bus_get_sync(Gio.BusType.SYSTEM, None)
try:
    con.call_sync("io.github.multiarchd1", "/io/github/multiarchd1",
                  "io.github.multiarchd1.Manager", "Test",
                  GLib.Variant("(as)", (["s390x"] * int(sys.argv[1]),)), None, 0, 60000, None)
except GLib.Error as e:
    print(Gio.DBusError.get_remote_error(e))
"""


def test_a_huge_call_by_anyone_is_refused_before_it_costs(
        bus: PrivateBus, served: DaemonProcess, con: Gio.DBusConnection) -> None:
    """One Test of 1,000,000 names by `nobody` took the daemon from 29 to 233 MB for good, and
    froze it 4.4 s: now refused by its size, before the caller is even asked about, and what
    GDBus itself made of it (it reads a whole message before anyone can look at it, some 170
    bytes a name) goes back to the system within seconds. What stays is GDBus's read buffer,
    once, as large as the largest message (under 16 MiB here)."""
    def huge_call() -> None:
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            "/usr/bin/python3", "-c", _HUGE_TEST, "1000000"], capture_output=True,
                           text=True, timeout=120, env=dict(os.environ, **bus.env))
        assert r.stdout.strip() == STD + "LimitsExceeded", r.stdout + r.stderr

    def settles_within(kib: int, since: int) -> None:
        deadline = time.monotonic() + 15
        while _rss_kib(served.proc.pid) - since >= kib and time.monotonic() < deadline:
            time.sleep(0.1)  # (no event says "memory given back": looked at, bounded)
        assert _rss_kib(served.proc.pid) - since < kib, (since, _rss_kib(served.proc.pid))
    start = _rss_kib(served.proc.pid)
    huge_call()
    settles_within(16 * 1024, start)
    before = _rss_kib(served.proc.pid)
    huge_call()
    settles_within(2 * 1024, before)
    assert "converged" in call(con, PATH, PROPS, "Get", GLib.Variant("(ss)", (IFACE, "State")))[1]


def test_a_test_naming_one_architecture_many_times_probes_it_once(
        served: DaemonProcess, con: Gio.DBusConnection) -> None:
    name, answer = call(con, PATH, IFACE, "Test",
                        GLib.Variant("(as)", (["s390x", "s390x", "arm64", "aarch64"] * 64,)))
    assert name is None and answer.count("'s390x'") == 1 and answer.count("'aarch64'") == 1, answer
    assert answer.count("', '") == 4  # two verdicts of three strings each


def test_polkits_words_come_without_gdbus_prefix(bus: PrivateBus, served: DaemonProcess) -> None:
    script = ("from gi.repository import Gio, GLib\n"
              "con = Gio.bus_get_sync(Gio.BusType.SYSTEM, None)\n"
              "try:\n"
              "    con.call_sync('io.github.multiarchd1', '/io/github/multiarchd1',"
              " 'io.github.multiarchd1.Manager', 'Reload', None, None, 0, 60000, None)\n"
              "except GLib.Error as e:\n"
              "    print(e.message)\n")
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        "/usr/bin/python3", "-c", script], capture_output=True, text=True,
                       timeout=60, env=dict(os.environ, **bus.env))
    # (GDBus puts its own prefix before the error it got: once, not twice)
    assert "polkit could not be asked: org.freedesktop.DBus.Error." in r.stdout, r.stdout
    assert r.stdout.count("GDBus.Error") == 1, r.stdout
