"""Who may change things over D-Bus (Reconcile, Reload, Test, Release): root, or whom polkit lets
through for the action io.github.multiarchd1.manage (by default an administrator,
auth_admin_keep).

Asked as hostnamed and timedated ask: the caller is the bus name that sent the call, and the
authorization is interactive (polkit's agent may prompt for a password) only when the call
carries the ALLOW_INTERACTIVE_AUTHORIZATION flag. Every question goes out without waiting and
the call is answered when the answer comes: the main loop goes on serving (and repairing) while
a person types a password, with no loop of its own nested in it.

The questions (to the bus: whose is this name; to polkit) are sent as plain messages, and their
answers picked out of the incoming ones by the server's filter. Not Gio's call() with a Python
callback: with Debian 12's PyGObject each such call leaves 130 to 270 bytes behind for good
(any local user could grow the daemon by calling Reconcile), and sending a message leaves
nothing (flat over 60,000 questions).
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable

from gi.repository import Gio, GLib

from .limits import cut, quote

ACTION = "io.github.multiarchd1.manage"
_POLKIT = ("org.freedesktop.PolicyKit1", "/org/freedesktop/PolicyKit1/Authority",
           "org.freedesktop.PolicyKit1.Authority")
_BUS = ("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus")
_ALLOW_INTERACTION = 1  # CheckAuthorizationFlags
INTERACTIVE_TIMEOUT = 300.0  # seconds: a person at a password prompt
TIMEOUT = 25.0
# Questions out at once, to polkit and to the bus (each its own lane: a stalled polkit does not
# hold up the question whose answer lets root through): the bus lets a connection wait for 128
# replies, and refuses more. More wait here, in order, each held by its caller's limit.
IN_FLIGHT = {_POLKIT[0]: 64, _BUS[0]: 32}
KNOWN = 1024  # callers whose uid is remembered (a bus never gives a unique name twice)

# The server answers an exception with a D-Bus error named after its class, when that has dots.
AccessDenied = type("org.freedesktop.DBus.Error.AccessDenied", (Exception,), {})
InteractiveAuthorizationRequired = type(
    "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired", (Exception,), {})
ERRORS = (AccessDenied, InteractiveAuthorizationRequired)

Then = Callable[[Exception | None], None]  # None: allowed; else the error to answer with
Answer = Callable[[Gio.DBusMessage | None], None]  # the reply, or None when none came in time
Timers = tuple[Callable[[float, Callable[[], None]], int], Callable[[int], None]]


def _words(reply: Gio.DBusMessage) -> str:
    """An error reply's own words (no GDBus prefix in front), cut short."""
    body = reply.get_body()
    first = body.get_child_value(0) if body is not None and body.n_children() else None
    text = first.get_string() if first is not None and first.get_type_string() == "s" else ""
    return f"{reply.get_error_name() or 'an answer'}: {cut(text)}"


class Questions:
    """Method calls the daemon itself makes; `ask` and the answers run on the main loop,
    `answered` on GDBus's worker thread (from the server's filter)."""

    def __init__(self, connection: Gio.DBusConnection, timers: Timers,
                 later: Callable[[Callable[[], None]], None]) -> None:
        self.connection = connection
        self.call_later, self.cancel = timers
        self.later = later  # onto the main loop, from any thread
        self._lock = threading.Lock()
        self._out: dict[int, Answer] = {}  # serial -> what to do with its reply
        self._expiry: dict[int, tuple[int, str]] = {}  # serial -> its timer, its lane
        self._lanes = {lane: 0 for lane in IN_FLIGHT}  # lane -> questions out
        self._waiting: dict[str, deque[tuple[Gio.DBusMessage, float, Answer]]] = {
            lane: deque() for lane in IN_FLIGHT}

    def ask(self, message: Gio.DBusMessage, timeout: float, then: Answer) -> None:
        lane = message.get_destination() or ""
        if self._lanes[lane] >= IN_FLIGHT[lane]:
            self._waiting[lane].append((message, timeout, then))
            return
        try:
            with self._lock:  # (the reply cannot be looked for before its serial is kept)
                _ok, serial = self.connection.send_message(message, Gio.DBusSendMessageFlags.NONE)
                self._out[serial] = then
        except GLib.Error:  # the connection is closed: no answer will come
            then(None)
            return
        self._lanes[lane] += 1
        self._expiry[serial] = (self.call_later(timeout, lambda: self._done(serial, None)), lane)

    def answered(self, reply: Gio.DBusMessage) -> bool:
        """Whether `reply` answers one of our questions (it is then taken care of)."""
        serial = reply.get_reply_serial()
        with self._lock:
            if serial not in self._out:
                return False
        self.later(lambda: self._done(serial, reply))
        return True

    def _done(self, serial: int, reply: Gio.DBusMessage | None) -> None:
        with self._lock:
            then = self._out.pop(serial, None)
        if then is None:  # answered, then its time ran out (or the other way round)
            return
        handle, lane = self._expiry.pop(serial)
        if reply is not None:
            self.cancel(handle)
        self._lanes[lane] -= 1
        then(reply)
        waiting = self._waiting[lane]
        while waiting and self._lanes[lane] < IN_FLIGHT[lane]:
            self.ask(*waiting.popleft())


class Authority:
    def __init__(self, questions: Questions) -> None:
        self.questions = questions
        self._uids: OrderedDict[str, int] = OrderedDict()  # caller -> uid, the latest KNOWN

    def authorize(self, message: Gio.DBusMessage, what: str, then: Then) -> None:
        """Find out whether the caller may do `what`, without waiting: `then(None)` when it
        may, else `then(AccessDenied(...))` (or InteractiveAuthorizationRequired) with a
        sentence saying what is needed. A stalled polkit holds up its own callers only."""
        sender = message.get_sender() or ""
        interactive = bool(message.get_flags() &
                           Gio.DBusMessageFlags.ALLOW_INTERACTIVE_AUTHORIZATION)
        needed = (f"{what} needs root, or an administrator's authorization through polkit "
                  f"(action {ACTION})")

        def answered(reply: Gio.DBusMessage | None) -> None:
            if reply is None:
                then(AccessDenied(f"{needed}; polkit did not answer in time"))
            elif reply.get_message_type() == Gio.DBusMessageType.ERROR:  # no polkitd: root only
                then(AccessDenied(f"{needed}; polkit could not be asked: {_words(reply)}"))
            elif reply.get_signature() != "(bba{ss})":
                then(AccessDenied(f"{needed}; polkit answered with "
                                  f"({quote(reply.get_signature())[1:-1]})"))
            else:
                authorized, challenge, _details = reply.get_body().unpack()[0]
                if authorized:
                    then(None)
                elif challenge and not interactive:
                    then(InteractiveAuthorizationRequired(
                        f"{needed}; authenticating was not allowed"))
                else:
                    then(AccessDenied(needed))

        def known(uid: int) -> None:
            if uid == 0:
                then(None)
                return
            question = Gio.DBusMessage.new_method_call(*_POLKIT, "CheckAuthorization")
            question.set_body(GLib.Variant("((sa{sv})sa{ss}us)", (
                ("system-bus-name", {"name": GLib.Variant("s", sender)}), ACTION, {},
                _ALLOW_INTERACTION if interactive else 0, "")))
            if interactive:  # polkit's agent may take its time: the bus must not give up first
                question.set_flags(Gio.DBusMessageFlags.ALLOW_INTERACTIVE_AUTHORIZATION)
            self.questions.ask(question, INTERACTIVE_TIMEOUT if interactive else TIMEOUT,
                               answered)

        def who(reply: Gio.DBusMessage | None) -> None:
            if reply is None or reply.get_signature() != "u":
                words = "no answer in time" if reply is None else _words(reply)
                then(AccessDenied(f"{needed}; the caller could not be identified: {words}"))
                return
            uid = int(reply.get_body().unpack()[0])
            self._uids[sender] = uid
            while len(self._uids) > KNOWN:
                self._uids.popitem(last=False)
            known(uid)

        if sender in self._uids:
            self._uids.move_to_end(sender)
            known(self._uids[sender])
            return
        question = Gio.DBusMessage.new_method_call(*_BUS, "GetConnectionUnixUser")
        question.set_body(GLib.Variant("(s)", (sender,)))
        self.questions.ask(question, TIMEOUT, who)
