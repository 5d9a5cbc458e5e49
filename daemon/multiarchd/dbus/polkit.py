"""Who may change things over D-Bus (Reconcile, Reload, Test): root, or whom polkit lets through
for the action io.github.multiarchd1.manage (by default an administrator, auth_admin_keep).

Asked as hostnamed and timedated ask: the caller is the bus name that sent the call, and the
authorization is interactive (polkit's agent may prompt for a password) only when the call
carries the ALLOW_INTERACTIVE_AUTHORIZATION flag. The question goes out asynchronously and the
main loop goes on serving (and repairing) while a person types a password.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gi.repository import Gio, GLib

ACTION = "io.github.multiarchd1.manage"
_POLKIT = ("org.freedesktop.PolicyKit1", "/org/freedesktop/PolicyKit1/Authority",
           "org.freedesktop.PolicyKit1.Authority")
_ALLOW_INTERACTION = 1  # CheckAuthorizationFlags
_INTERACTIVE_TIMEOUT_MS = 300_000  # a person at a password prompt
_TIMEOUT_MS = 25_000

# pydbus answers an exception with a D-Bus error named after its class, when that has dots.
AccessDenied = type("org.freedesktop.DBus.Error.AccessDenied", (Exception,), {})
InteractiveAuthorizationRequired = type(
    "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired", (Exception,), {})
ERRORS = (AccessDenied, InteractiveAuthorizationRequired)

Wait = Callable[[Callable[[], bool]], None]  # go on dispatching the main loop until done()


def _uid(con: Gio.DBusConnection, sender: str) -> int:
    reply = con.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                          "GetConnectionUnixUser", GLib.Variant("(s)", (sender,)),
                          GLib.VariantType("(u)"), Gio.DBusCallFlags.NONE, _TIMEOUT_MS, None)
    return int(reply.unpack()[0])


def authorize(invocation: Gio.DBusMethodInvocation, what: str, wait: Wait) -> None:
    """Return when the caller may do `what`; raise AccessDenied (or
    InteractiveAuthorizationRequired) with a sentence saying what is needed."""
    con, sender = invocation.get_connection(), invocation.get_sender()
    if _uid(con, sender) == 0:
        return
    interactive = bool(invocation.get_message().get_flags()
                       & Gio.DBusMessageFlags.ALLOW_INTERACTIVE_AUTHORIZATION)
    needed = (f"{what} needs root, or an administrator's authorization through polkit "
              f"(action {ACTION})")
    replies: list[Any] = []
    con.call(*_POLKIT, "CheckAuthorization",
             GLib.Variant("((sa{sv})sa{ss}us)", (
                 ("system-bus-name", {"name": GLib.Variant("s", sender)}), ACTION, {},
                 _ALLOW_INTERACTION if interactive else 0, "")),
             GLib.VariantType("((bba{ss}))"), Gio.DBusCallFlags.NONE,
             _INTERACTIVE_TIMEOUT_MS if interactive else _TIMEOUT_MS, None,
             lambda c, result: replies.append(result))
    wait(lambda: bool(replies))
    if not replies:  # stopping meanwhile
        raise AccessDenied(f"{needed}; multiarchd is stopping")
    try:
        authorized, challenge, _details = con.call_finish(replies[0]).unpack()[0]
    except GLib.Error as e:  # no polkitd on this bus: only root may
        Gio.DBusError.strip_remote_error(e)  # (in place; it returns whether it stripped)
        raise AccessDenied(f"{needed}; polkit could not be asked: {e.message}") from None
    if authorized:
        return
    if challenge and not interactive:
        raise InteractiveAuthorizationRequired(f"{needed}; authenticating was not allowed")
    raise AccessDenied(needed)
