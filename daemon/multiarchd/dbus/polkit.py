"""Who may change things over D-Bus (Reconcile, Reload, Test): root, or whom polkit lets through
for the action io.github.multiarchd1.manage (by default an administrator, auth_admin_keep).

Asked as hostnamed and timedated ask: the caller is the bus name that sent the call, and the
authorization is interactive (polkit's agent may prompt for a password) only when the call
carries the ALLOW_INTERACTIVE_AUTHORIZATION flag. Every question goes out asynchronously and the
call is answered when polkit answers: the main loop goes on serving (and repairing) while a
person types a password, with no loop of its own nested in it.
"""

from __future__ import annotations

from collections.abc import Callable

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

Then = Callable[[Exception | None], None]  # None: allowed; else the error to answer with


def authorize(con: Gio.DBusConnection, message: Gio.DBusMessage, what: str, then: Then) -> None:
    """Find out whether the caller may do `what`, without waiting: `then(None)` when it may,
    else `then(AccessDenied(...))` (or InteractiveAuthorizationRequired) with a sentence saying
    what is needed. Every question goes out asynchronously: a stalled polkit (an agent nobody
    answers) holds up this caller only."""
    sender = message.get_sender()
    interactive = bool(message.get_flags() & Gio.DBusMessageFlags.ALLOW_INTERACTIVE_AUTHORIZATION)
    needed = (f"{what} needs root, or an administrator's authorization through polkit "
              f"(action {ACTION})")

    def unable(e: GLib.Error) -> str:
        Gio.DBusError.strip_remote_error(e)  # (in place; it returns whether it stripped)
        return f"{needed}; polkit could not be asked: {e.message}"

    def answered(c: Gio.DBusConnection, result: Gio.AsyncResult) -> None:
        try:
            authorized, challenge, _details = c.call_finish(result).unpack()[0]
        except GLib.Error as e:  # no polkitd on this bus: only root may
            then(AccessDenied(unable(e)))
            return
        if authorized:
            then(None)
        elif challenge and not interactive:
            then(InteractiveAuthorizationRequired(f"{needed}; authenticating was not allowed"))
        else:
            then(AccessDenied(needed))

    def who(c: Gio.DBusConnection, result: Gio.AsyncResult) -> None:
        try:
            uid = int(c.call_finish(result).unpack()[0])
        except GLib.Error as e:
            then(AccessDenied(f"{needed}; the caller could not be identified: {e.message}"))
            return
        if uid == 0:
            then(None)
            return
        c.call(*_POLKIT, "CheckAuthorization",
               GLib.Variant("((sa{sv})sa{ss}us)", (
                   ("system-bus-name", {"name": GLib.Variant("s", sender)}), ACTION, {},
                   _ALLOW_INTERACTION if interactive else 0, "")),
               GLib.VariantType("((bba{ss}))"), Gio.DBusCallFlags.NONE,
               _INTERACTIVE_TIMEOUT_MS if interactive else _TIMEOUT_MS, None, answered)

    con.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
             "GetConnectionUnixUser", GLib.Variant("(s)", (sender,)), GLib.VariantType("(u)"),
             Gio.DBusCallFlags.NONE, _TIMEOUT_MS, None, who)
