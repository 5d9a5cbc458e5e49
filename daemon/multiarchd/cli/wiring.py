"""Wiring the service from its real parts: GLib's loop, watchdog's inotify, systemd's notify,
the kernel table, the probes and the D-Bus link (imported only when the service runs)."""

from __future__ import annotations

import time
from dataclasses import replace
from functools import partial

from ..catalog import load_catalog
from ..core.probes import Verdict
from ..host.facts import host_arch
from ..host.keep import remove_file, write_whole
from ..host.native import native
from ..host.probing import verify
from ..kernel.table import DEFAULT_PATH, BinfmtTable
from ..model.options import Config, Options
from ..reconciler.reconciler import Reconciler
from ..service.background import Workers
from ..service.glib_loop import GLibLoop
from ..service.inotify import InotifyWatcher
from ..service.lock import TableLock
from ..service.exporter import Exporter
from ..service.node_features import NodeFeatures
from ..service.protocols import Bus, Log
from ..service.proven import Proven
from ..service.service import Parts, Service
from ..service.systemd_glue import notify, watchdog_interval
from ..service.verifier import Verifier


def _bus(service: Service) -> Bus:
    from ..dbus.pydbus_glue import BusLink, ManagerFace  # only a D-Bus run needs pydbus
    return BusLink(ManagerFace(service), service.log.emit, on_change=service.bus_changed,
                   call_later=service.loop.call_later, cancel=service.loop.cancel)


def build_service(config: Config, options: Options, log: Log, dbus: bool = True,
                  metrics: str | None = None, lock: TableLock | None = None) -> Service:
    catalog = load_catalog()
    reconciler = Reconciler(config, options, BinfmtTable(config.binfmt_dir),
                            standard_place=config.binfmt_dir == DEFAULT_PATH)
    def probe(arches: list[str], runs: int) -> list[Verdict]:
        return verify(arches, catalog, config.binfmt_dir, runs)
    loop = GLibLoop()
    verifier = Verifier(probe, log, Workers(loop), proven=Proven())
    return Service(Parts(
        reconciler, verifier, replace(options, watchdog=watchdog_interval()), catalog,
        host_arch(catalog), loop, time.monotonic, InotifyWatcher, notify, log,
        native_why=lambda: native()[1], bus=_bus if dbus else None,
        lock=(lock or TableLock(config.binfmt_dir)).take,
        metrics=Exporter(partial(write_whole, metrics), log) if metrics else None,
        node_features=NodeFeatures(partial(write_whole, sync=True), remove_file, log)))
