"""The private bus of the tests keeps answering whatever dbus-daemon says meanwhile: it warns at
every call its policy refuses (some 300 bytes each), and a pipe nobody read filled after about
200 of them and hung the bus (and with it any flood test, for the harness's sake)."""

from __future__ import annotations

from gi.repository import Gio

from tests.support.bus import PrivateBus


def test_the_bus_answers_after_thousands_of_warnings(bus: PrivateBus) -> None:
    con = Gio.DBusConnection.new_for_address_sync(
        bus.address, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT |
        Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)
    try:
        for _ in range(2000):  # each refused by the policy, and said on dbus-daemon's stderr
            con.send_message(Gio.DBusMessage.new_method_call(
                con.get_unique_name(), "/", "org.example.Refused", "Call"),
                Gio.DBusSendMessageFlags.NONE)
        r = bus.busctl("call", "org.freedesktop.DBus", "/org/freedesktop/DBus",
                       "org.freedesktop.DBus", "GetId", timeout=20)
        assert r.returncode == 0, r.stderr
        assert bus.log.stat().st_size > 65536  # more than a pipe holds
    finally:
        con.close_sync(None)
