"""Serving the face's object on a bus connection, from a message filter: each method call to our
path is taken off GDBus's worker thread, handled on the main loop, and answered when its work
is done (Call), now or later.

Why not GDBus's object registration (pydbus's publish): with Debian 12's PyGObject (3.42)
every call dispatched through a Python method-call closure leaves about 1.6 KiB behind (the
daemon grew from 28 to 61 MiB over 20,000 calls by an unprivileged user); a message filter does
not. And a registration answers each call when the Python method returns, so a call that must
wait (for polkit, for a probe) could only wait in a main loop nested in it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from gi.repository import Gio, GLib

from ..model.reply import Reply
from . import api

U = TypeVar("U")

PROPERTIES = "org.freedesktop.DBus.Properties"
INTROSPECTABLE = "org.freedesktop.DBus.Introspectable"
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


def _error_name(error: Exception) -> str:
    """Each domain failure has its D-Bus name; an exception class named with dots (polkit's
    AccessDenied) is its own name; anything else is a bug of ours and says so."""
    kind = type(error).__name__
    if isinstance(error, api.DOMAIN_ERRORS):
        return api.error_name(type(error))
    return kind if "." in kind else f"{api.ERROR}.Internal"


class Call:
    """One method call, answered once: value() or error()."""

    def __init__(self, connection: Gio.DBusConnection, message: Gio.DBusMessage,
                 returns: list[str]) -> None:
        self.connection = connection
        self.message = message
        self.returns = returns  # the out arguments' signatures
        self.answered = False

    def _send(self, reply: Gio.DBusMessage) -> None:
        self.answered = True
        if not self.message.get_flags() & Gio.DBusMessageFlags.NO_REPLY_EXPECTED:
            self.connection.send_message(reply, Gio.DBusSendMessageFlags.NONE)

    def value(self, value: Any) -> None:
        """Nothing, one value, or a tuple of them, as the out arguments say."""
        if self.answered:
            return
        reply = self.message.new_method_reply()
        if self.returns:
            signature = "(" + "".join(self.returns) + ")"
            try:
                reply.set_body(GLib.Variant(signature, (value,) if len(self.returns) == 1
                                            else value))
            except (TypeError, ValueError, OverflowError) as e:  # ours: said, never hung
                self.error(RuntimeError(f"bad answer: {e}"))
                return
        self._send(reply)

    def error(self, error: Exception) -> None:
        if not self.answered:
            self._send(self.message.new_method_error_literal(_error_name(error), str(error)))

    def mapped(self, convert: Callable[[U], Any]) -> Reply[U]:
        """This call, answered with convert(value)."""
        return _Mapped(self, convert)


class _Mapped(Generic[U]):
    def __init__(self, call: Call, convert: Callable[[U], Any]) -> None:
        self.call, self.convert = call, convert

    def value(self, value: U) -> None:
        self.call.value(self.convert(value))

    def error(self, error: Exception) -> None:
        self.call.error(error)


class Face(Protocol):
    """The object served: properties as attributes, methods by name (api.XML)."""

    ANSWERED_LATER: frozenset[str]


UnknownMethod = type("org.freedesktop.DBus.Error.UnknownMethod", (Exception,), {})
InvalidArgs = type("org.freedesktop.DBus.Error.InvalidArgs", (Exception,), {})
UnknownProperty = type("org.freedesktop.DBus.Error.UnknownProperty", (Exception,), {})
PropertyReadOnly = type("org.freedesktop.DBus.Error.PropertyReadOnly", (Exception,), {})


class Server:
    """`face` at api.OBJECT_PATH on `connection`; `soon` runs a function on the main loop (from
    any thread)."""

    def __init__(self, connection: Gio.DBusConnection, face: Face,
                 soon: Callable[[Callable[[], None]], None]) -> None:
        self.connection = connection
        self.face = face
        self.soon = soon
        iface = Gio.DBusNodeInfo.new_for_xml(api.XML).lookup_interface(api.INTERFACE)
        self.methods = {m.name: ("".join(a.signature for a in m.in_args),
                                 [a.signature for a in m.out_args]) for m in iface.methods}
        self.properties = {p.name: p.signature for p in iface.properties}
        self.signals = {s.name: "(" + "".join(a.signature for a in s.args) + ")"
                        for s in iface.signals}
        self._filter = connection.add_filter(self._incoming)

    def close(self) -> None:
        self.connection.remove_filter(self._filter)

    def emit(self, interface: str, name: str, body: GLib.Variant) -> None:
        self.connection.emit_signal(None, api.OBJECT_PATH, interface, name, body)

    def signal(self, name: str, *args: Any) -> None:
        self.emit(api.INTERFACE, name, GLib.Variant(self.signals[name], args))

    def properties_changed(self, changed: dict[str, Any]) -> None:
        self.emit(PROPERTIES, "PropertiesChanged", GLib.Variant("(sa{sv}as)", (
            api.INTERFACE, {k: GLib.Variant(self.properties[k], v) for k, v in changed.items()},
            [])))

    # -- on GDBus's worker thread: only pick our calls out -------------------------------------
    def _incoming(self, _con: Gio.DBusConnection, message: Gio.DBusMessage,
                  incoming: bool) -> Gio.DBusMessage | None:
        if not incoming or message.get_message_type() != Gio.DBusMessageType.METHOD_CALL or \
                message.get_interface() == "org.freedesktop.DBus.Peer":  # GDBus answers those
            return message
        if message.get_path() == api.OBJECT_PATH:
            self.soon(lambda: self._handle(message))
            return None
        child = _child_on_the_way(message.get_path() or "")
        if child is not None and message.get_interface() in (INTROSPECTABLE, None) and \
                message.get_member() == "Introspect":  # `busctl tree` walks down from /
            node = f"<node>\n  <node name='{child}'/>\n</node>\n"
            self.soon(lambda: Call(self.connection, message, ["s"]).value(node))
            return None
        return message

    # -- on the main loop -----------------------------------------------------------------------
    def _handle(self, message: Gio.DBusMessage) -> None:
        interface, member = message.get_interface(), message.get_member()
        body = message.get_body()
        args = body.unpack() if body is not None else ()
        signature = message.get_signature()
        if interface == INTROSPECTABLE and member == "Introspect":
            Call(self.connection, message, ["s"]).value(INTROSPECTION)
        elif interface == PROPERTIES:
            self._property(message, member, signature, args)
        elif interface in (api.INTERFACE, None) and member in self.methods:
            takes, returns = self.methods[member]
            call = Call(self.connection, message, returns)
            try:
                if signature != takes:
                    raise InvalidArgs(f"{member} takes ({takes}), not ({signature})")
                method = getattr(self.face, member)
                if member in self.face.ANSWERED_LATER:
                    method(call, *args)
                else:
                    call.value(method(*args))
            except Exception as e:  # noqa: BLE001 - every call is answered, a bug as an error
                call.error(e)
        else:
            Call(self.connection, message, []).error(
                UnknownMethod(f"no method {interface}.{member} at {api.OBJECT_PATH}"))

    def _property(self, message: Gio.DBusMessage, member: str, signature: str,
                  args: tuple[Any, ...]) -> None:
        if member == "Get" and signature == "ss":
            call = Call(self.connection, message, ["v"])
            interface, name = args
            if interface != api.INTERFACE or name not in self.properties:
                call.error(UnknownProperty(f"no property {interface}.{name}"))
                return
            try:
                call.value(GLib.Variant(self.properties[name], getattr(self.face, name)))
            except Exception as e:  # noqa: BLE001 - answered, never left hanging
                call.error(e)
        elif member == "GetAll" and signature == "s":
            call = Call(self.connection, message, ["a{sv}"])
            try:
                call.value({name: GLib.Variant(sig, getattr(self.face, name))
                            for name, sig in self.properties.items()}
                           if args[0] == api.INTERFACE else {})
            except Exception as e:  # noqa: BLE001
                call.error(e)
        elif member == "Set":
            Call(self.connection, message, []).error(
                PropertyReadOnly("every property of multiarchd is read-only"))
        else:
            Call(self.connection, message, []).error(
                UnknownMethod(f"no method {PROPERTIES}.{member} with ({signature})"))
