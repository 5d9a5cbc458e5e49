"""A D-Bus caller for load tests, run as its own process (any user: `python3 -c SOURCE ...`, it
imports nothing of the tests): it calls one method of multiarchd COUNT times, at most INFLIGHT
at once, and stops by itself after COUNT calls or SECONDS, whichever comes first. Bounded in
both, and only to the bus named by DBUS_SYSTEM_BUS_ADDRESS (a unix socket on this machine).

    flood.py read   COUNT SECONDS INFLIGHT METHOD [ARGS-JSON]  # reads every reply
    flood.py silent COUNT SECONDS INFLIGHT METHOD [ARGS-JSON]  # never reads one

METHOD is `Interface.Member` (Get, GetAll: org.freedesktop.DBus.Properties; the others
io.github.multiarchd1.Manager). It prints "sent N answered M errors E" at the end.
"""

import json
import os
import socket
import sys
import threading
import time
from typing import Any

from gi.repository import Gio, GLib

NAME, PATH = "io.github.multiarchd1", "/io/github/multiarchd1"
SIGNATURES = {"Get": "(ss)", "GetAll": "(s)", "Set": "(ssv)", "Test": "(as)", "Release": "(s)",
              "Explain": "(sayb)"}


def message(method: str, args: list[Any]) -> Gio.DBusMessage:
    interface, member = method.rsplit(".", 1)
    m = Gio.DBusMessage.new_method_call(NAME, PATH, interface, member)
    if args:
        m.set_body(GLib.Variant(SIGNATURES[member], tuple(args)))
    return m


def read(count: int, seconds: float, inflight: int, method: str, args: list[Any]) -> str:
    con = Gio.DBusConnection.new_for_address_sync(
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"], Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT |
        Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)
    slots = threading.Semaphore(inflight)
    lock = threading.Lock()
    out: set[int] = set()
    seen = {"answered": 0, "errors": 0}

    def incoming(_c: Gio.DBusConnection, m: Gio.DBusMessage,
                 is_incoming: bool) -> Gio.DBusMessage | None:
        if is_incoming and m.get_message_type() in (Gio.DBusMessageType.METHOD_RETURN,
                                                    Gio.DBusMessageType.ERROR):
            with lock:
                if m.get_reply_serial() not in out:
                    return m
                out.discard(m.get_reply_serial())
            seen["answered"] += 1
            seen["errors"] += m.get_message_type() == Gio.DBusMessageType.ERROR
            slots.release()
            return None
        return m
    con.add_filter(incoming)
    end, sent = time.monotonic() + seconds, 0
    while sent < count and time.monotonic() < end:
        if not slots.acquire(timeout=max(0.0, end - time.monotonic())):
            break
        with lock:
            _ok, serial = con.send_message(message(method, args), Gio.DBusSendMessageFlags.NONE)
            out.add(serial)
        sent += 1
    while out and time.monotonic() < end + 30:  # the last answers (bounded)
        slots.acquire(timeout=1)
    return f"sent {sent} answered {seen['answered']} errors {seen['errors']}"


def silent(count: int, seconds: float, method: str, args: list[Any]) -> str:
    """Speaks D-Bus on a raw socket, and never reads past the greeting."""
    path = os.environ["DBUS_SYSTEM_BUS_ADDRESS"].split("unix:path=", 1)[1].split(",")[0]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(max(1.0, seconds))
    sock.connect(path)
    sock.sendall(b"\0AUTH EXTERNAL " + str(os.getuid()).encode().hex().encode() + b"\r\n")
    assert sock.recv(4096).startswith(b"OK"), "the bus refused us"
    sock.sendall(b"BEGIN\r\n")
    hello = Gio.DBusMessage.new_method_call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                            "org.freedesktop.DBus", "Hello")
    hello.set_serial(1)
    sock.sendall(hello.to_blob(Gio.DBusCapabilityFlags.NONE))
    end, sent = time.monotonic() + seconds, 0
    try:
        while sent < count and time.monotonic() < end:
            m = message(method, args)
            m.set_serial(sent + 2)
            sock.sendall(m.to_blob(Gio.DBusCapabilityFlags.NONE))
            sent += 1
    except OSError:  # the bus stopped reading us: our share of it is full
        pass
    return f"sent {sent} answered 0 errors 0"


def main() -> None:
    mode, count, seconds, inflight, method = sys.argv[1:6]
    args = json.loads(sys.argv[6]) if len(sys.argv) > 6 else []
    if mode == "silent":
        print(silent(int(count), float(seconds), method, args), flush=True)
    else:
        print(read(int(count), float(seconds), int(inflight), method, args), flush=True)


if __name__ == "__main__":
    main()
