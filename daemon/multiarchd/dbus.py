"""The D-Bus face: io.github.multiarchd1 on the system bus. The only module importing pydbus.

Names, errors and record types of the interface sit here together. The published object is a
thin face: every method and property forwards to the daemon (a plain object that knows nothing
about D-Bus). Objects are published before the name is requested, as pydbus wants.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from gi.repository import Gio, GLib
from pydbus import SystemBus
from pydbus.bus import connect
from pydbus.generic import signal

from . import __version__, errors
from .events import Event, Record
from .plan import Plan as ActionPlan
from .desired import State
from .report import Status

BUS_NAME = "io.github.multiarchd1"
OBJECT_PATH = "/io/github/multiarchd1"
INTERFACE = "io.github.multiarchd1.Manager"
ERROR = "io.github.multiarchd1.Error"

# One record per architecture or custom entry.
ARCH_RECORD = "(ssssssss)"  # name, kind, state, interpreter, emulator, flags, entry, message
ACTION_RECORD = "(sss)"  # action, entry, reason
TEST_RECORD = "(sss)"  # architecture, result (ok, failed, untested), message


def _error(name: str) -> type[Exception]:
    # pydbus turns an exception into a D-Bus error named after its class, when that has dots.
    return type(f"{ERROR}.{name}", (Exception,), {})


# Each domain failure has its D-Bus name, on purpose; anything else is a bug and says so.
_NAMED = {domain: _error(domain.__name__) for domain in
          (errors.PolicyRejected, errors.UnknownArchitecture, errors.NotMounted)}
DOMAIN_ERRORS = tuple(_NAMED.values())

T = TypeVar("T")


def _answer(call: Callable[[], T]) -> T:
    try:
        return call()
    except tuple(_NAMED) as e:
        raise _NAMED[type(e)](str(e)) from None


class _QuietDomainErrors(logging.Filter):
    """pydbus logs every exception with a traceback; ours are answers, not bugs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DOMAIN_ERRORS))


logging.getLogger("pydbus.registration").addFilter(_QuietDomainErrors())


class Service(Protocol):
    """What the face needs from the daemon."""

    @property
    def host_arch(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def policy_path(self) -> str: ...
    @property
    def last_reconcile(self) -> float: ...
    def statuses(self) -> tuple[Status, ...]: ...
    def reconcile_now(self) -> str: ...
    def reload(self) -> None: ...
    def plan_now(self) -> ActionPlan: ...
    def test(self, arches: list[str]) -> list[tuple[str, str, str]]: ...


def arch_record(s: Status) -> tuple[str, ...]:
    return (s.name, s.kind, s.state.value, s.interpreter, s.emulator, s.flags, s.entry, s.message)


def status_from_record(record: tuple[str, ...]) -> Status:
    name, kind, state, interpreter, emulator, flags, entry, message = record
    return Status(name, kind, State(state), entry, interpreter, emulator, flags, message,
                  explicit=False)


def action_records(plan: ActionPlan) -> list[tuple[str, str, str]]:
    return [(a.kind.value, a.entry, a.reason) for a in plan.actions]


class ManagerFace:
    __doc__ = f"""
    <node>
      <interface name='{INTERFACE}'>
        <property name='Version' type='s' access='read'>
          <annotation name='org.freedesktop.DBus.Property.EmitsChangedSignal' value='const'/>
        </property>
        <property name='HostArchitecture' type='s' access='read'>
          <annotation name='org.freedesktop.DBus.Property.EmitsChangedSignal' value='const'/>
        </property>
        <!-- starting, converged, degraded, policy-error, waiting -->
        <property name='State' type='s' access='read'/>
        <property name='PolicyPath' type='s' access='read'/>
        <!-- microseconds since the epoch of the last run, 0 before the first -->
        <property name='LastReconcile' type='t' access='read'/>
        <!-- name, kind (arch or custom), state, interpreter, emulator, flags, entry, message -->
        <property name='Architectures' type='a{ARCH_RECORD}' access='read'/>
        <method name='Reconcile'>
          <arg direction='out' type='s' name='state'/>
        </method>
        <method name='Reload'/>
        <method name='Plan'>
          <arg direction='out' type='a{ACTION_RECORD}' name='actions'/>
        </method>
        <method name='Test'>
          <arg direction='in' type='as' name='architectures'/>
          <arg direction='out' type='a{TEST_RECORD}' name='results'/>
        </method>
        <signal name='Reconciled'>
          <arg type='a{ACTION_RECORD}' name='changes'/>
          <arg type='s' name='state'/>
        </signal>
      </interface>
    </node>
    """

    PropertiesChanged = signal()
    Reconciled = signal()

    def __init__(self, service: Service) -> None:
        self._service = service
        self._last: dict[str, Any] = {}

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
    def Architectures(self) -> list[tuple[str, ...]]:
        return [arch_record(s) for s in self._service.statuses()]

    def Reconcile(self) -> str:
        return _answer(self._service.reconcile_now)

    def Reload(self) -> None:
        _answer(self._service.reload)

    def Plan(self) -> list[tuple[str, str, str]]:
        return action_records(_answer(self._service.plan_now))

    def Test(self, architectures: list[str]) -> list[tuple[str, str, str]]:
        return _answer(lambda: self._service.test(architectures))

    def changed(self, plan: ActionPlan | None) -> None:
        """After a run: PropertiesChanged for what differs, Reconciled if the table changed."""
        now = {"State": self.State, "LastReconcile": self.LastReconcile,
               "Architectures": self.Architectures, "PolicyPath": self.PolicyPath}
        diff = {k: v for k, v in now.items() if self._last.get(k) != v}
        self._last = now
        if diff:
            self.PropertiesChanged(INTERFACE, diff, [])
        if plan:
            self.Reconciled(action_records(plan), self.State)


class BusLink:
    """The daemon's connection to the system bus; reconnects when the bus comes back."""

    def __init__(self, face: ManagerFace, emit: Callable[[Record], None],
                 on_owned: Callable[[], None]) -> None:
        self.face = face
        self.emit = emit
        self.on_owned = on_owned
        self.bus: Any = None
        self.publication: Any = None
        self._retry_delay = 1.0

    def connect(self) -> bool:
        try:
            address = Gio.dbus_address_get_for_bus_sync(Gio.BusType.SYSTEM, None)
            bus = connect(address)
            bus.con.set_exit_on_close(False)
            self.publication = bus.publish(BUS_NAME, (OBJECT_PATH, self.face))
        except (GLib.Error, RuntimeError) as e:
            self.emit(Record(Event.BUS_LOST, f"D-Bus: cannot publish {BUS_NAME}: {e}; "
                             f"retrying in {self._retry_delay:g} s, reconciling meanwhile"))
            GLib.timeout_add(int(self._retry_delay * 1000), self._retry)
            self._retry_delay = min(self._retry_delay * 2, 30.0)
            return False
        self.bus = bus
        self._retry_delay = 1.0
        bus.con.connect("closed", self._closed)
        self.emit(Record(Event.BUS_CONNECTED, f"D-Bus: {BUS_NAME} published at {OBJECT_PATH}"))
        self.on_owned()
        return True

    def _retry(self) -> bool:
        self.connect()
        return False

    def _closed(self, _con: Any, _remote: bool, error: Any) -> None:
        self.bus = self.publication = None
        self.emit(Record(Event.BUS_LOST, f"D-Bus: lost the connection to the system bus "
                         f"({error.message if error else 'closed'}); still reconciling, "
                         "reconnecting"))
        GLib.timeout_add(int(self._retry_delay * 1000), self._retry)


# -- the client side, for multiarchctl ------------------------------------------------------------
class Unreachable(Exception):
    pass


class RemoteError(Exception):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def _remote_error(e: GLib.Error) -> Exception:
    remote = Gio.DBusError.get_remote_error(e)
    Gio.DBusError.strip_remote_error(e)  # in place: leaves the server's own words
    message = e.message
    if remote in ("org.freedesktop.DBus.Error.ServiceUnknown",
                  "org.freedesktop.DBus.Error.NameHasNoOwner",
                  "org.freedesktop.DBus.Error.FileNotFound",
                  "org.freedesktop.DBus.Error.NoServer") or remote is None:
        return Unreachable(message)
    return RemoteError(remote, message)


class Client:
    """multiarchctl's view of the daemon."""

    def __init__(self, timeout: float = 30.0) -> None:
        try:
            self.proxy = SystemBus().get(BUS_NAME, OBJECT_PATH, timeout=timeout)
        except GLib.Error as e:
            raise _remote_error(e) from e

    def get(self, name: str) -> Any:
        try:
            return getattr(self.proxy, name)
        except GLib.Error as e:
            raise _remote_error(e) from e

    def call(self, method: str, *args: Any) -> Any:
        try:
            return getattr(self.proxy, method)(*args)
        except GLib.Error as e:
            raise _remote_error(e) from e

