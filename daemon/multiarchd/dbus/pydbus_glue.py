"""io.github.multiarchd1 through pydbus: the published face, the daemon's link to the bus, and
multiarchctl's client. The only module importing pydbus (and, with the main loop, gi).

The face is thin: every method and property forwards in one line to the service, a plain object
that knows nothing about D-Bus. Objects are published before the name is requested, as pydbus
wants.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from gi.repository import Gio, GLib
from pydbus import SystemBus
from pydbus.bus import connect
from pydbus.generic import signal

from .. import __version__
from ..core.messages import Event, Record
from ..core import plan as core_plan
from ..core.plan import Outcome
from ..core.probes import Verdict
from ..core.report import Report
from ..model.problems import Problem
from ..reconciler.run import Result
from . import api, polkit
from .api import RemoteError, Unreachable

T = TypeVar("T")

# pydbus turns an exception into a D-Bus error named after its class, when that has dots.
_NAMED = {kind: type(api.error_name(kind), (Exception,), {}) for kind in api.DOMAIN_ERRORS}
_NAMED_TYPES = (*_NAMED.values(), *polkit.ERRORS)


def _answer(call: Callable[[], T]) -> T:
    try:
        return call()
    except api.DOMAIN_ERRORS as e:
        raise _NAMED[type(e)](str(e)) from None


class _QuietDomainErrors(logging.Filter):
    """pydbus logs every exception with a traceback; ours are answers, not bugs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _NAMED_TYPES))


logging.getLogger("pydbus.registration").addFilter(_QuietDomainErrors())


class Service(Protocol):
    """What the face needs from the service."""

    host_arch: str
    state: str
    last_reconcile: float

    @property
    def policy_path(self) -> str: ...
    @property
    def report(self) -> Report | None: ...
    def reconcile_now(self) -> tuple[str, tuple[Outcome, ...]]: ...
    def reload(self) -> None: ...
    def plan_now(self) -> tuple[core_plan.Plan, tuple[Problem, ...]]: ...
    def test(self, arches: list[str]) -> list[Verdict]: ...
    def wait_until(self, done: Callable[[], bool]) -> None:
        """Go on serving (the main loop) until done()."""


_EMPTY = Report((), (), ())


class ManagerFace:
    __doc__ = api.XML

    PropertiesChanged = signal()
    Reconciled = signal()

    def __init__(self, service: Service) -> None:
        self._service = service
        self._last: dict[str, Any] = {}

    @property
    def _report(self) -> Report:
        return self._service.report or _EMPTY

    @property
    def Version(self) -> str:
        return __version__

    @property
    def HostArchitecture(self) -> str:
        return self._service.host_arch

    @property
    def State(self) -> str:
        return self._service.state

    @property
    def PolicyPath(self) -> str:
        return self._service.policy_path

    @property
    def LastReconcile(self) -> int:
        return int(self._service.last_reconcile * 1_000_000)

    @property
    def Architectures(self) -> list[api.ArchRecord]:
        return [api.arch_record(s) for s in self._report.statuses]

    @property
    def ForeignEntries(self) -> list[api.ForeignRecord]:
        return [api.foreign_record(f) for f in self._report.foreign]

    @property
    def Problems(self) -> list[api.ProblemRecord]:
        return [api.problem_record(p) for p in self._report.problems]

    @property
    def BinfmtEnabled(self) -> bool:
        return self._report.binfmt_enabled

    def _may(self, what: str, context: Any) -> None:
        """Changes are for root and whom polkit lets through (pydbus hands over the call)."""
        polkit.authorize(context._mi, what, self._service.wait_until)

    def Reconcile(self, dbus_context: Any = None) -> tuple[str, list[api.AppliedRecord]]:
        self._may("reconciling", dbus_context)
        state, outcomes = _answer(self._service.reconcile_now)
        return state, [api.applied_record(o) for o in outcomes]

    def Reload(self, dbus_context: Any = None) -> None:
        self._may("reloading the policy", dbus_context)
        _answer(self._service.reload)

    def Plan(self) -> tuple[list[api.ActionRecord], list[api.ProblemRecord]]:
        plan, problems = _answer(self._service.plan_now)
        return [api.action_record(a) for a in plan.actions], [api.problem_record(p)
                                                              for p in problems]

    def Test(self, architectures: list[str],
             dbus_context: Any = None) -> list[tuple[str, str, str]]:
        self._may("testing architectures", dbus_context)
        return [(v.arch, v.result, v.message)
                for v in _answer(lambda: self._service.test(architectures))]

    def changed(self, plan: core_plan.Plan | None) -> None:
        """After a run: PropertiesChanged for what differs, Reconciled if the table changed."""
        now = {"State": self.State, "LastReconcile": self.LastReconcile,
               "Architectures": self.Architectures, "PolicyPath": self.PolicyPath,
               "ForeignEntries": self.ForeignEntries, "Problems": self.Problems,
               "BinfmtEnabled": self.BinfmtEnabled}
        diff = {k: v for k, v in now.items() if self._last.get(k) != v}
        self._last = now
        if diff:
            self.PropertiesChanged(api.INTERFACE, diff, [])
        if plan:
            self.Reconciled(api.change_records(plan), self.State)


class BusLink:
    """The daemon's connection to the system bus; reconnects when the bus comes back."""

    def __init__(self, face: ManagerFace, emit: Callable[[Record], None],
                 on_change: Callable[[], None]) -> None:
        self.face = face
        self.emit = emit
        self.on_change = on_change  # published, or lost
        self.bus: Any = None
        self.publication: Any = None
        self._retry_delay = 1.0

    def connect(self) -> bool:
        try:
            address = Gio.dbus_address_get_for_bus_sync(Gio.BusType.SYSTEM, None)
            bus = connect(address)
            bus.con.set_exit_on_close(False)
            self.publication = bus.publish(api.BUS_NAME, (api.OBJECT_PATH, self.face))
        except (GLib.Error, RuntimeError) as e:
            self.emit(Record(Event.BUS_LOST, f"D-Bus: cannot publish {api.BUS_NAME}: {e}; "
                             f"retrying in {self._retry_delay:g} s, reconciling meanwhile"))
            GLib.timeout_add(int(self._retry_delay * 1000), self._retry)
            self._retry_delay = min(self._retry_delay * 2, 30.0)
            self.on_change()
            return False
        self.bus = bus
        self._retry_delay = 1.0
        bus.con.connect("closed", self._closed)
        self.emit(Record(Event.BUS_CONNECTED,
                         f"D-Bus: {api.BUS_NAME} published at {api.OBJECT_PATH}"))
        self.on_change()
        return True

    @property
    def connected(self) -> bool:
        return self.bus is not None

    def _retry(self) -> bool:
        self.connect()
        return False

    def after_run(self, result: Result | None, changed: bool) -> None:
        # What was done: an action the kernel refused changed nothing (the journal says why).
        done = core_plan.Plan(tuple(o.action for o in result.report.outcomes if o.ok)) \
            if result and changed else None
        self.face.changed(done)

    def _closed(self, _con: Any, _remote: bool, error: Any) -> None:
        self.bus = self.publication = None
        self.emit(Record(Event.BUS_LOST, f"D-Bus: lost the connection to the system bus "
                         f"({error.message if error else 'closed'}); still reconciling, "
                         "reconnecting"))
        self.on_change()
        GLib.timeout_add(int(self._retry_delay * 1000), self._retry)


# -- the client side, for multiarchctl ------------------------------------------------------------
_NO_DAEMON = ("org.freedesktop.DBus.Error.ServiceUnknown",
              "org.freedesktop.DBus.Error.NameHasNoOwner",
              "org.freedesktop.DBus.Error.FileNotFound",
              "org.freedesktop.DBus.Error.NoServer")


def _remote_error(e: GLib.Error) -> Exception:
    remote = Gio.DBusError.get_remote_error(e)
    # The server's own words, without GDBus's "GDBus.Error:NAME: " in front.
    message = e.message.removeprefix(f"GDBus.Error:{remote}: ")
    if remote is None or remote in _NO_DAEMON:
        return Unreachable(message)
    return RemoteError(remote, message)


class Client:
    """multiarchctl's view of the daemon."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout_ms = int(timeout * 1000)
        try:
            self.bus = SystemBus()
            self.proxy = self.bus.get(api.BUS_NAME, api.OBJECT_PATH, timeout=timeout)
        except GLib.Error as e:
            raise _remote_error(e) from e

    def get(self, name: str) -> Any:
        try:
            return getattr(self.proxy, name)
        except GLib.Error as e:
            raise _remote_error(e) from e

    def call(self, method: str, *args: Any) -> Any:
        """Call a method the way busctl does, allowing interactive authorization: where a
        polkit agent runs for this session, it may ask for a password."""
        takes, gives = _signatures(method)
        try:
            reply = self.bus.con.call_sync(
                api.BUS_NAME, api.OBJECT_PATH, api.INTERFACE, method, GLib.Variant(takes, args),
                GLib.VariantType(gives), Gio.DBusCallFlags.ALLOW_INTERACTIVE_AUTHORIZATION,
                self.timeout_ms, None).unpack()
        except GLib.Error as e:
            raise _remote_error(e) from e
        return None if not reply else reply[0] if len(reply) == 1 else reply


def _signatures(method: str) -> tuple[str, str]:
    """A method's in and out signatures, from the interface's XML."""
    [node] = [m for m in ET.fromstring(api.XML).iter("method") if m.get("name") == method]
    args = node.findall("arg")
    return ("(" + "".join(a.get("type", "") for a in args if a.get("direction", "in") == "in") + ")",
            "(" + "".join(a.get("type", "") for a in args if a.get("direction") == "out") + ")")
