"""io.github.multiarchd1 through pydbus: the published face, the daemon's link to the bus, and
multiarchctl's client. The only module importing pydbus.

The face is thin: every method and property forwards in one line to the service, a plain object
that knows nothing about D-Bus. server.py serves it (pydbus's own publish answers every call
when its Python method returns, and leaks with Debian 12's PyGObject: see there); the object is
in place before the name is requested.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any, Protocol

from gi.repository import Gio, GLib
from pydbus import SystemBus
from pydbus.bus import connect

from .. import __version__
from ..core import plan as core_plan
from ..core.explain import Explanation
from ..core.messages import Event, Message
from ..core.plan import Outcome
from ..core.probes import Verdict
from ..core.report import DaemonState, Report, Status
from ..core.result import Result
from ..model.problems import Problem
from ..model.reply import Reply
from . import api
from .api import RemoteError, Unreachable
from .call import Call
from .server import Server


class Service(Protocol):
    """What the face needs from the service."""

    host_arch: str
    state: DaemonState
    last_reconcile: float

    @property
    def policy_path(self) -> str: ...
    @property
    def table(self) -> str: ...
    @property
    def report(self) -> Report | None: ...
    def reconcile(self, reply: Reply[tuple[str, tuple[Outcome, ...]]]) -> None: ...
    def reload(self, reply: Reply[None] | None = None) -> None: ...
    def plan_now(self) -> tuple[core_plan.Plan, tuple[Problem, ...]]: ...
    def test(self, arches: list[str], reply: Reply[list[Verdict]]) -> None: ...
    def release(self, arch: str, reply: Reply[Status]) -> None: ...
    def explain(self, name: str, header: bytes, executable: bool) -> Explanation: ...


_EMPTY = Report((), (), ())


class ManagerFace:
    """The object on the bus (served by server.Server): properties and methods by their D-Bus
    names, each forwarding to the service in a line."""

    def __init__(self, service: Service) -> None:
        self._service = service
        self._last: dict[str, Any] = {}
        self.server: Server | None = None  # while published

    def revision(self) -> tuple[object, ...]:
        """What every property is made of: the server's snapshot of them is made again when
        one of these is another object."""
        return (self._service.report, self._service.state, self._service.last_reconcile,
                self._service.policy_path)

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
        return self._service.state.value

    @property
    def PolicyPath(self) -> str:
        return self._service.policy_path

    @property
    def LastReconcile(self) -> int:
        return int(self._service.last_reconcile * 1_000_000)

    @property
    def Architectures(self) -> list[api.ArchStruct]:
        return [api.arch_struct(s) for s in self._report.statuses]

    @property
    def Table(self) -> str:
        return self._service.table

    @property
    def CpuModels(self) -> dict[str, str]:
        return api.cpu_models(self._report.statuses)

    @property
    def ForeignEntries(self) -> list[api.ForeignStruct]:
        return [api.foreign_struct(f) for f in self._report.foreign]

    @property
    def Problems(self) -> list[api.ProblemStruct]:
        return [api.problem_struct(p) for p in self._report.problems]

    @property
    def Findings(self) -> list[api.FindingStruct]:
        return [api.finding_struct(f) for f in self._report.findings]

    @property
    def BinfmtEnabled(self) -> bool:
        return self._report.binfmt_enabled

    # The methods that change things are answered when their work is done (Call), not when
    # they return: a slow polkit or a hung probe holds up its own caller only.
    ANSWERED_LATER = frozenset({"Reconcile", "Reload", "Test", "Release"})

    def _may(self, call: Call, what: str, then: Callable[[], None]) -> None:
        """Changes are for root and whom polkit lets through."""
        call.authorize(what, lambda denied: call.error(denied) if denied else then())

    def Reconcile(self, call: Call) -> None:
        self._may(call, "reconciling", lambda: self._service.reconcile(call.mapped(
            lambda r: (r[0], [api.applied_struct(o) for o in r[1]]))))

    def Reload(self, call: Call) -> None:
        self._may(call, "reloading the policy", lambda: self._service.reload(call))

    def Plan(self) -> tuple[list[api.ActionStruct], list[api.ProblemStruct]]:
        plan, problems = self._service.plan_now()
        return [api.action_struct(a) for a in plan.actions], [api.problem_struct(p)
                                                              for p in problems]

    def Test(self, call: Call, architectures: list[str]) -> None:
        self._may(call, "testing architectures", lambda: self._service.test(
            architectures, call.mapped(lambda verdicts: [(v.arch, v.result, v.message)
                                                         for v in verdicts])))

    def Release(self, call: Call, architecture: str) -> None:
        self._may(call, "releasing a held architecture", lambda: self._service.release(
            architecture, call.mapped(lambda s: (s.state.value, s.message))))

    def Explain(self, name: str, header: list[int] | bytes, executable: bool
                ) -> api.ExplainStruct:
        return api.explain_struct(self._service.explain(name, bytes(header), executable))

    def changed(self, plan: core_plan.Plan | None) -> None:
        """After a run: PropertiesChanged for what differs, Reconciled if the table changed."""
        now = {"State": self.State, "LastReconcile": self.LastReconcile,
               "Architectures": self.Architectures, "CpuModels": self.CpuModels,
               "PolicyPath": self.PolicyPath,
               "ForeignEntries": self.ForeignEntries, "Problems": self.Problems,
               "Findings": self.Findings,
               "BinfmtEnabled": self.BinfmtEnabled}
        diff = {k: v for k, v in now.items() if self._last.get(k) != v}
        self._last = now
        if self.server is None:
            return
        if diff:
            self.server.properties_changed(diff)
        if plan:
            self.server.signal("Reconciled", api.change_structs(plan), self.State)


class BusLink:
    """The daemon's connection to the system bus; reconnects when the bus comes back."""

    def __init__(self, face: ManagerFace, emit: Callable[[Message], None],
                 on_change: Callable[[], None],
                 call_later: Callable[[float, Callable[[], None]], int],
                 cancel: Callable[[int], None]) -> None:
        self.face = face
        # The service's one timer source (no GLib source of its own, as every other retry).
        self.call_later, self.cancel = call_later, cancel
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
            self.face.server = Server(bus.con, self.face, (self.call_later, self.cancel))
            try:  # objects first, then the name (as pydbus's publish)
                self.publication = bus.request_name(api.BUS_NAME, allow_replacement=True,
                                                    replace=False)
            except BaseException:
                self.face.server.close()
                self.face.server = None
                raise
        except (GLib.Error, RuntimeError) as e:
            self.emit(Message(Event.BUS_LOST, f"D-Bus: cannot publish {api.BUS_NAME}: {e}; "
                             f"retrying in {self._retry_delay:g} s, reconciling meanwhile"))
            self.call_later(self._retry_delay, self._retry)
            self._retry_delay = min(self._retry_delay * 2, 30.0)
            self.on_change()
            return False
        self.bus = bus
        self._retry_delay = 1.0
        bus.con.connect("closed", self._closed)
        self.emit(Message(Event.BUS_CONNECTED,
                         f"D-Bus: {api.BUS_NAME} published at {api.OBJECT_PATH}"))
        self.on_change()
        return True

    @property
    def connected(self) -> bool:
        return self.bus is not None

    def _retry(self) -> None:
        self.connect()

    def after_run(self, result: Result | None, changed: bool) -> None:
        # What was done: an action the kernel refused changed nothing (the journal says why).
        done = core_plan.Plan(tuple(o.action for o in result.report.outcomes if o.ok)) \
            if result and changed else None
        self.face.changed(done)

    def _closed(self, _con: Any, _remote: bool, error: Any) -> None:
        if self.face.server is not None:
            self.face.server.close()
        self.bus = self.publication = self.face.server = None
        self.emit(Message(Event.BUS_LOST, f"D-Bus: lost the connection to the system bus "
                         f"({error.message if error else 'closed'}); still reconciling, "
                         "reconnecting"))
        self.on_change()
        self.call_later(self._retry_delay, self._retry)


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
