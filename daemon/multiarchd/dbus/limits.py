"""What any caller may send and what each gets, before it is known who the caller is.

A call to the object is checked on GDBus's worker thread, as it arrives, before anything of it
is unpacked into Python: its interface, method and signature are known ones, and its arguments
are within the bounds below (sizes read off the message's own values, never copied). A call
that fails is answered there and then with the standard D-Bus error for it, quoting at most
QUOTED characters of what was sent. The limits are in multiarchd(8) (D-BUS).
"""

from __future__ import annotations

from typing import Protocol

from ..core.explain import HEADER_SIZE
from . import api

# Every argument of every method is a name (an architecture, an interface, a property): none is
# near this long, and D-Bus caps its own names at 255 bytes.
MAX_STRING = 255
# Test's list: the catalog has some 35 architectures and their aliases; a list longer than this
# can only repeat them.
MAX_ITEMS = 256
MAX_HEADER = HEADER_SIZE  # Explain's header: the first bytes of a file, as the kernel reads
QUOTED = 64  # characters of what a caller sent, quoted back in an error

PROPERTIES = "org.freedesktop.DBus.Properties"
INTROSPECTABLE = "org.freedesktop.DBus.Introspectable"
PEER = "org.freedesktop.DBus.Peer"
STANDARD = {INTROSPECTABLE: {"Introspect": ""},
            PROPERTIES: {"Get": "ss", "GetAll": "s", "Set": "ssv"}}


class Value(Protocol):
    """What is read of a GLib.Variant here (no copy of its contents)."""

    def n_children(self) -> int: ...
    def get_child_value(self, index: int) -> Value: ...
    def get_type_string(self) -> str: ...
    def get_size(self) -> int: ...


def _named(name: str) -> type[Exception]:
    # The server answers an exception with a D-Bus error named after its class (when dotted).
    return type(f"org.freedesktop.DBus.Error.{name}", (Exception,), {})


UnknownObject = _named("UnknownObject")
UnknownInterface = _named("UnknownInterface")
UnknownMethod = _named("UnknownMethod")
UnknownProperty = _named("UnknownProperty")
PropertyReadOnly = _named("PropertyReadOnly")
InvalidArgs = _named("InvalidArgs")
LimitsExceeded = _named("LimitsExceeded")


def quote(text: str | None) -> str:
    """What a caller sent, in quotes, cut to its first QUOTED characters."""
    text = text or ""
    return repr(text[:QUOTED]) + ("..." if len(text) > QUOTED else "")


def cut(text: str, most: int = 4 * QUOTED) -> str:
    """Words from elsewhere (another service's error), cut to their first `most` characters."""
    return text[:most] + ("..." if len(text) > most else "")


def interface_of(interface: str | None, member: str) -> str:
    """A call may leave its interface out (the spec allows it): the method's name decides."""
    if interface is not None:
        return interface
    return next((i for i, table in STANDARD.items() if member in table), api.INTERFACE)


def refusal(interface: str | None, member: str, signature: str, body: Value | None,
            methods: dict[str, str]) -> Exception | None:
    """Why a call to the object (`methods`: its interface's, name -> in signature) cannot be
    served, or None. Costs O(MAX_ITEMS) at most, whatever was sent."""
    interface = interface_of(interface, member)
    table = methods if interface == api.INTERFACE else STANDARD.get(interface)
    if table is None:
        return UnknownInterface(f"{api.OBJECT_PATH} has no interface {quote(interface)}")
    takes = table.get(member)
    if takes is None:
        return UnknownMethod(f"{interface} has no method {quote(member)}")
    if signature != takes:
        return InvalidArgs(f"{member} takes ({takes}), not ({quote(signature)})")
    return _too_big(member, body)


def _too_big(member: str, body: Value | None) -> Exception | None:
    if body is None:
        return None
    for i in range(body.n_children()):
        value = body.get_child_value(i)
        if value.get_type_string() == "s" and value.get_size() > MAX_STRING + 1:  # with its NUL
            return LimitsExceeded(f"{member}: argument {i + 1} is longer than {MAX_STRING} "
                                  "bytes (the limit of every name multiarchd takes)")
        if value.get_type_string() == "ay" and value.get_size() > MAX_HEADER:
            return LimitsExceeded(f"{member}: argument {i + 1} is longer than {MAX_HEADER} "
                                  "bytes (what the kernel reads of a file to choose its format)")
        if value.get_type_string() == "as":
            if value.n_children() > MAX_ITEMS:
                return LimitsExceeded(f"{member}: at most {MAX_ITEMS} names in one call, not "
                                      f"{value.n_children()}")
            if any(value.get_child_value(j).get_size() > MAX_STRING + 1
                   for j in range(value.n_children())):
                return LimitsExceeded(f"{member}: a name is longer than {MAX_STRING} bytes")
    return None
