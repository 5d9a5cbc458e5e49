"""One method call to the object, answered once (now or when its work is done), and the
answers the server gives without one: the error a call gets, by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from gi.repository import Gio, GLib

from ..model.reply import Reply
from . import api, polkit

if TYPE_CHECKING:
    from .server import Server

U = TypeVar("U")


def _error_name(error: Exception) -> str:
    """Each domain failure has its D-Bus name; an exception class named with dots (polkit's
    AccessDenied, the standard errors) is its own name; anything else is a bug of ours and
    says so."""
    kind = type(error).__name__
    if isinstance(error, api.DOMAIN_ERRORS):
        return api.error_name(type(error))
    return kind if "." in kind else f"{api.ERROR}.Internal"


def send(connection: Gio.DBusConnection, call: Gio.DBusMessage, reply: Gio.DBusMessage) -> None:
    if call.get_flags() & Gio.DBusMessageFlags.NO_REPLY_EXPECTED:
        return
    try:
        connection.send_message(reply, Gio.DBusSendMessageFlags.NONE)
    except GLib.Error:  # the connection closed meanwhile: the link reconnects
        pass


def refuse(connection: Gio.DBusConnection, call: Gio.DBusMessage, error: Exception) -> None:
    send(connection, call, call.new_method_error_literal(_error_name(error), str(error)))


class Call:
    """One method call, answered once: value() or error()."""

    def __init__(self, server: Server, message: Gio.DBusMessage, returns: list[str]) -> None:
        self.server = server
        self.connection = server.connection
        self.message = message
        self.returns = returns  # the out arguments' signatures
        self.answered = False

    def _send(self, reply: Gio.DBusMessage) -> None:
        self.answered = True
        self.server.calls.finished(self.message.get_sender() or "")
        send(self.connection, self.message, reply)

    def body(self, body: GLib.Variant) -> None:
        """Answer with a body made before (a snapshot's)."""
        if not self.answered:
            reply = self.message.new_method_reply()
            reply.set_body(body)
            self._send(reply)

    def value(self, value: Any) -> None:
        """Nothing, one value, or a tuple of them, as the out arguments say."""
        if self.answered:
            return
        if not self.returns:
            self._send(self.message.new_method_reply())
            return
        signature = "(" + "".join(self.returns) + ")"
        try:
            body = GLib.Variant(signature, (value,) if len(self.returns) == 1 else value)
        except (TypeError, ValueError, OverflowError) as e:  # ours: said, never hung
            self.error(RuntimeError(f"bad answer: {e}"))
            return
        self.body(body)

    def error(self, error: Exception) -> None:
        if not self.answered:
            self._send(self.message.new_method_error_literal(_error_name(error), str(error)))

    def authorize(self, what: str, then: polkit.Then) -> None:
        """Whether the caller may do `what` (polkit.Authority.authorize)."""
        self.server.authority.authorize(self.message, what, then)

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
