"""Serving the face's object on a bus connection, from a message filter: each method call to our
path is checked as it arrives on GDBus's worker thread (limits.py: what no caller may send),
queued by caller (fair.py: whom the loop serves when), handled on the main loop, and answered
when its work is done (Call), now or later. Reads are answered from a snapshot of the
properties made once per change, not built again for every caller.

Why not GDBus's object registration (pydbus's publish): with Debian 12's PyGObject (3.42)
every call dispatched through a Python method-call closure leaves about 1.6 KiB behind (the
daemon grew from 28 to 61 MiB over 20,000 calls by an unprivileged user); a message filter does
not. And a registration answers each call when the Python method returns, so a call that must
wait (for polkit, for a probe) could only wait in a main loop nested in it.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any, Protocol

from gi.repository import Gio, GLib

from . import api, polkit
from .call import Call, refuse, send
from .fair import FairCalls
from .limits import (INTROSPECTABLE, PEER, PROPERTIES, LimitsExceeded,
                     PropertyReadOnly, UnknownInterface, UnknownMethod, UnknownObject,
                     UnknownProperty, interface_of, quote, refusal)

_TRIM_AFTER = 1.0  # seconds: time enough for GDBus's worker to have freed a refused call


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


_TRIM = _malloc_trim()
_STANDARD = f"""
  <interface name='{INTROSPECTABLE}'>
    <method name='Introspect'><arg type='s' name='xml_data' direction='out'/></method>
  </interface>
  <interface name='{PROPERTIES}'>
    <method name='Get'>
      <arg type='s' name='interface_name' direction='in'/>
      <arg type='s' name='property_name' direction='in'/>
      <arg type='v' name='value' direction='out'/>
    </method>
    <method name='GetAll'>
      <arg type='s' name='interface_name' direction='in'/>
      <arg type='a{{sv}}' name='properties' direction='out'/>
    </method>
    <method name='Set'>
      <arg type='s' name='interface_name' direction='in'/>
      <arg type='s' name='property_name' direction='in'/>
      <arg type='v' name='value' direction='in'/>
    </method>
    <signal name='PropertiesChanged'>
      <arg type='s' name='interface_name'/>
      <arg type='a{{sv}}' name='changed_properties'/>
      <arg type='as' name='invalidated_properties'/>
    </signal>
  </interface>
  <interface name='org.freedesktop.DBus.Peer'>
    <method name='Ping'/>
    <method name='GetMachineId'><arg type='s' name='machine_uuid' direction='out'/></method>
  </interface>
"""
INTROSPECTION = ('<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"'
                 ' "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">\n' +
                 api.XML.replace("<node>", "<node>" + _STANDARD, 1))


def _child_on_the_way(path: str) -> str | None:
    """The next name down to our object from `path`, one of its ancestors ("io" for "/")."""
    prefix = path.rstrip("/") + "/"
    if not api.OBJECT_PATH.startswith(prefix) or path == api.OBJECT_PATH:
        return None
    return api.OBJECT_PATH[len(prefix):].split("/")[0]


class Face(Protocol):
    """The object served: properties as attributes, methods by name (api.XML)."""

    ANSWERED_LATER: frozenset[str]

    def revision(self) -> tuple[object, ...]:
        """Changes (compared item by item with `is`) whenever a property may have."""


class _Snapshot:
    """Every property's answer, made once: a Get's body by name, GetAll's body."""

    def __init__(self, face: Face, signatures: dict[str, str]) -> None:
        self.revision = face.revision()
        self.get: dict[str, GLib.Variant | Exception] = {}
        values: dict[str, GLib.Variant] = {}
        for name, signature in signatures.items():
            try:
                values[name] = GLib.Variant(signature, getattr(face, name))
                self.get[name] = GLib.Variant("(v)", (values[name],))
            except Exception as e:  # noqa: BLE001 - that property's callers are told
                self.get[name] = e
        failed = next((e for e in self.get.values() if isinstance(e, Exception)), None)
        self.all: GLib.Variant | Exception = failed or GLib.Variant("(a{sv})", (values,))

    def current(self, face: Face) -> bool:
        now = face.revision()
        return len(now) == len(self.revision) and all(a is b for a, b in zip(now, self.revision))


class Server:
    """`face` at api.OBJECT_PATH on `connection`; `timers` (call_later, cancel) on the main
    loop, for the questions the server asks (polkit.Questions)."""

    def __init__(self, connection: Gio.DBusConnection, face: Face, timers: polkit.Timers) -> None:
        self.connection = connection
        self.face = face
        iface = Gio.DBusNodeInfo.new_for_xml(api.XML).lookup_interface(api.INTERFACE)
        self.methods = {m.name: ("".join(a.signature for a in m.in_args),
                                 [a.signature for a in m.out_args]) for m in iface.methods}
        self.properties = {p.name: p.signature for p in iface.properties}
        self.signals = {s.name: "(" + "".join(a.signature for a in s.args) + ")"
                        for s in iface.signals}
        self._takes = {name: takes for name, (takes, _) in self.methods.items()}
        self._snapshot: _Snapshot | None = None
        self._trimming = False
        self.calls = FairCalls(self._handle)
        self.authority = polkit.Authority(polkit.Questions(connection, timers, self.calls.later))
        self._questions = self.authority.questions
        self._filter = connection.add_filter(self._incoming)

    def close(self) -> None:
        self.connection.remove_filter(self._filter)
        self.calls.destroy()

    def emit(self, interface: str, name: str, body: GLib.Variant) -> None:
        self.connection.emit_signal(None, api.OBJECT_PATH, interface, name, body)

    def signal(self, name: str, *args: Any) -> None:
        self.emit(api.INTERFACE, name, GLib.Variant(self.signals[name], args))

    def properties_changed(self, changed: dict[str, Any]) -> None:
        self.emit(PROPERTIES, "PropertiesChanged", GLib.Variant("(sa{sv}as)", (
            api.INTERFACE, {k: GLib.Variant(self.properties[k], v) for k, v in changed.items()},
            [])))

    # -- on GDBus's worker thread: every call to us is checked here, before anything else -------
    def _incoming(self, con: Gio.DBusConnection, message: Gio.DBusMessage,
                  incoming: bool) -> Gio.DBusMessage | None:
        if not incoming:
            return message
        kind = message.get_message_type()
        if kind in (Gio.DBusMessageType.METHOD_RETURN, Gio.DBusMessageType.ERROR):
            return None if self._questions.answered(message) else message
        if kind != Gio.DBusMessageType.METHOD_CALL:
            return message
        interface, member, path = message.get_interface(), message.get_member(), message.get_path()
        if interface == PEER:  # GDBus answers Ping and GetMachineId, at any path
            if member in ("Ping", "GetMachineId"):
                return message
            refuse(con, message, UnknownMethod(f"{PEER} has no method {quote(member)}"))
        elif path == api.OBJECT_PATH:
            why = refusal(interface, member, message.get_signature(), message.get_body(),
                          self._takes)
            full = None if why else self.calls.put(message.get_sender() or "", message)
            if why or full:
                refuse(con, message, why or LimitsExceeded(full))
            if isinstance(why, LimitsExceeded):
                self.calls.later(self._give_back)
        elif (child := _child_on_the_way(path or "")) is not None and member == "Introspect" \
                and interface in (INTROSPECTABLE, None) and not message.get_signature():
            reply = message.new_method_reply()  # `busctl tree` walks down from /
            reply.set_body(GLib.Variant("(s)", (f"<node>\n  <node name='{child}'/>\n</node>\n",)))
            send(con, message, reply)
        else:
            refuse(con, message, UnknownObject(
                f"no object at {quote(path)}: multiarchd's is {api.OBJECT_PATH}"))
        return None

    # -- on the main loop, in the callers' turns (fair.py) --------------------------------------
    def _give_back(self) -> None:
        """GDBus made the whole of a call too big for us before anyone saw it (some 170 bytes
        a name: 170 MB for a million), and freed it: give that memory back to the system
        once GDBus is done with it, not hold it for the life of the daemon."""
        if not self._trimming:
            self._trimming = True
            self._questions.call_later(_TRIM_AFTER, self._trim)

    def _trim(self) -> None:
        self._trimming = False
        if _TRIM is not None:
            _TRIM(0)

    def _handle(self, message: Gio.DBusMessage) -> None:
        interface = interface_of(message.get_interface(), message.get_member())
        member = message.get_member()
        if interface == INTROSPECTABLE:
            Call(self, message, ["s"]).value(INTROSPECTION)
            return
        if interface == PROPERTIES:
            self._property(Call(self, message, ["v"] if member == "Get" else ["a{sv}"]
                                if member == "GetAll" else []), member)
            return
        _takes, returns = self.methods[member]
        call = Call(self, message, returns)
        try:
            body = message.get_body()
            args = body.unpack() if body is not None else ()  # (its size was checked)
            method = getattr(self.face, member)
            if member in self.face.ANSWERED_LATER:
                method(call, *args)
            else:
                call.value(method(*args))
        except Exception as e:  # noqa: BLE001 - every call is answered, a bug as an error
            call.error(e)

    def _property(self, call: Call, member: str) -> None:
        interface, *rest = call.message.get_body().unpack()
        if interface != api.INTERFACE:
            call.error(UnknownInterface(f"{api.OBJECT_PATH} has no interface {quote(interface)}"))
            return
        if rest and rest[0] not in self.properties:
            call.error(UnknownProperty(f"{api.INTERFACE} has no property {quote(rest[0])}"))
            return
        if member == "Set":
            call.error(PropertyReadOnly(f"{rest[0]} is read-only, as every property of "
                                        "multiarchd"))
            return
        if self._snapshot is None or not self._snapshot.current(self.face):
            self._snapshot = _Snapshot(self.face, self.properties)
        answer = self._snapshot.get[rest[0]] if member == "Get" else self._snapshot.all
        if isinstance(answer, Exception):
            call.error(answer)
        else:
            call.body(answer)

