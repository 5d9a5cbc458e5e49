"""`multiarchd`: the service; `--once` applies the policy one time and exits; `--unregister`
removes its entries (at shutdown).

Every boot runs `--once` (the early unit), so it comes first: when the boot record holds
(reconciler/record.py), it is replayed having imported little more than this module; else the
full run. The service likewise replays it (BootReplay) before importing the rest and says READY=1.
Only the service (serve) imports the main loop, the watcher, D-Bus and systemd.
"""

from __future__ import annotations

import sys

from .. import __version__

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows it
if TYPE_CHECKING:
    import argparse

_LOG_TARGETS = ("auto", "journal", "stderr")


def parser() -> argparse.ArgumentParser:
    import argparse

    from ..model.options import Options
    from .common import add_path_options
    p = argparse.ArgumentParser(
        prog="multiarchd",
        description="Keep the kernel's binfmt_misc table true to the multiarch policy.")
    add_path_options(p)
    p.add_argument("--once", action="store_true", help="reconcile one time and exit")
    p.add_argument("--dry-run", action="store_true",
                   help="with --once: print the plan, write nothing")
    p.add_argument("--unregister", action="store_true",
                   help="remove every entry of ours (multiarch-*) and exit: at shutdown, since an "
                        "entry registered with F holds its interpreter's file system busy")
    p.add_argument("--no-dbus", action="store_true", help="do not publish the D-Bus API")
    p.add_argument("--no-mount", action="store_true",
                   help="never mount binfmt_misc; wait for it instead (for sandboxed services, "
                        "whose own mounts vanish when they stop)")
    p.add_argument("--private", action="store_true",
                   help="fill this user namespace's own binfmt_misc table (Linux 6.7+), "
                        "mounting it if needed; without it, a run that would mount a private "
                        "table is refused")
    p.add_argument("--metrics-textfile", metavar="PATH",
                   help="write Prometheus metrics to PATH after each run (for node-exporter's "
                        "textfile collector: a file ending in .prom in its directory)")
    p.add_argument("--log-target", choices=_LOG_TARGETS, default="auto")
    p.add_argument("--safety-interval", type=float, default=Options.safety_interval,
                   metavar="SECONDS", help="re-read everything this often even with no event "
                   f"(default {Options.safety_interval:g})")
    p.add_argument("--repair-limit", type=int, default=Options.repair_limit, metavar="N",
                   help="repairs of one entry within --repair-window before backing off from "
                   f"a writer that keeps undoing it (default {Options.repair_limit})")
    p.add_argument("--repair-window", type=float, default=Options.repair_window,
                   metavar="SECONDS", help=f"(default {Options.repair_window:g})")
    p.add_argument("--version", action="version", version=f"multiarchd {__version__}")
    return p


def light_arguments(argv: list[str]) -> tuple[bool, dict[str, str]] | None:
    """(whether --once is asked, the path and log options), when the arguments are only those
    and --no-dbus or --no-mount, well-formed: what the boot record's replay needs to know
    before argparse and the rest are imported. None: anything else (argparse decides)."""
    from ..kernel.raw import DEFAULT_PATH as BINFMT_PATH
    from ..policy import DEFAULT_PATH as POLICY_PATH
    values = {"--config": POLICY_PATH, "--binfmt-dir": BINFMT_PATH, "--log-target": "auto"}
    once, rest = False, list(argv)
    while rest:
        arg = rest.pop(0)
        name, eq, value = arg.partition("=")
        if arg in ("--once", "--no-dbus", "--no-mount", "--private"):
            once = once or arg == "--once"
            if arg in ("--no-mount", "--private"):
                values[arg] = "yes"
        elif name in values and eq:
            values[name] = value
        elif arg in values and rest and not rest[0].startswith("-"):
            name, value = arg, rest.pop(0)
            values[name] = value
        else:
            return None
        if name == "--log-target" and value not in _LOG_TARGETS:
            return None  # (every one is checked, as argparse checks each)
    return once, values


def replayed(values: dict[str, str]) -> int | None:
    """`--once` by the boot record, when it holds; None: run in full. A table not mounted yet
    (a container's boot), or for --private one inherited from an outer namespace, is mounted
    first, as the full run would (only at its standard place, and not with --no-mount)."""
    import os

    from ..reconciler.record import replay
    from ..service.logs import open_log
    binfmt, private = values["--binfmt-dir"], bool(values.get("--private"))
    if private or not os.path.exists(os.path.join(binfmt, "register")):
        import subprocess

        from ..kernel.raw import DEFAULT_PATH
        from ..kernel.table import BinfmtTable
        from ..model.errors import NotMounted, WrongTable
        table = BinfmtTable(binfmt)
        try:
            if not table.mounted() or private and not table.own():
                if binfmt != DEFAULT_PATH or values.get("--no-mount"):
                    return None
                table.mount(private)
        except (OSError, subprocess.CalledProcessError, NotMounted, WrongTable):
            return None  # the full run says why
    done = replay(values["--config"], binfmt, open_log(values["--log-target"]).send)
    if done is None:
        return None
    print(table_line(binfmt))
    print(done.printed)
    return done.code


class BootReplay:
    """A service's start before the rest of it is imported: the log, the table's lock, a stop
    asked for meanwhile (kept, and done once the main loop runs), and READY=1 when the table is
    as the boot record says (the first full run follows at once and checks it all). With
    `private`, only into this namespace's own table: one inherited is the full run's to mount
    over, and the initial namespace's is refused (serve)."""

    def __init__(self, config: str, binfmt_dir: str, log_target: str,
                 private: bool = False) -> None:
        import signal

        from ..reconciler.record import replay
        from ..service.lock import TableLock
        from ..service.logs import open_log
        from ..service.systemd_glue import notify
        self.log = open_log(log_target)
        self.asked: list[int] = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda n, _: self.asked.append(n))
        self.lock = TableLock(binfmt_dir)
        if self.lock.take() is None and (not private or _own(binfmt_dir)):
            done = replay(config, binfmt_dir, self.log.send, settled=True)
            if done is not None:
                notify("READY=1", f"STATUS={done.summary}; starting")


def _own(binfmt_dir: str) -> bool:
    """Whether the table at `binfmt_dir` is mounted and this namespace's own (false where that
    cannot be told)."""
    from ..kernel.table import BinfmtTable
    table = BinfmtTable(binfmt_dir)
    try:
        return table.mounted() and table.own()
    except Exception:  # noqa: BLE001 - the full run tells why; this only skips a replay
        return False


def table_line(binfmt_dir: str) -> str:
    """--once's first line: which table it wrote."""
    from ..kernel.owner import describe
    return f"binfmt_misc table: {describe(binfmt_dir)}"


def run_once(args: argparse.Namespace) -> int:
    from ..core.render import report_text
    from ..core.report import EXIT_NOT_CONVERGED, EXIT_REFUSED
    from ..model.errors import NotMounted, WrongTable
    from ..reconciler.run import reconcile_once
    from ..service.logs import open_log
    from .common import config_from, plan_exit_code, tell_outcomes
    try:
        result = reconcile_once(config_from(args), dry_run=args.dry_run, mount=not args.no_mount,
                                keep_record=True)
    except (NotMounted, WrongTable) as e:
        print(f"multiarchd: {e}", file=sys.stderr)
        return EXIT_REFUSED if isinstance(e, WrongTable) else EXIT_NOT_CONVERGED
    if args.dry_run:
        for p in result.report.problems:
            print(p, file=sys.stderr)
        print(result.plan)
        return plan_exit_code(result)
    tell_outcomes(result.report, open_log(args.log_target), result.drift)
    print(table_line(args.binfmt_dir))
    print(report_text(result.report))
    return result.report.exit_code()


def unregister(args: argparse.Namespace) -> int:
    from ..core.messages import change_messages
    from ..reconciler.run import unregister_owned
    from ..service.logs import open_log
    from .common import config_from
    outcomes = unregister_owned(config_from(args))
    for message in change_messages(outcomes):
        open_log(args.log_target).emit(message)
    return 0 if all(o.ok for o in outcomes) else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    light, early = light_arguments(argv), None
    if light is not None and light[0]:
        code = replayed(light[1])
        if code is not None:
            return code
    elif light is not None:
        given = light[1]
        early = BootReplay(given["--config"], given["--binfmt-dir"], given["--log-target"],
                           bool(given.get("--private")))
    args = parser().parse_args(argv)
    if args.dry_run and not args.once:
        parser().error("--dry-run goes with --once")
    if args.metrics_textfile and (args.once or args.unregister):
        parser().error("--metrics-textfile goes with the service (not --once or --unregister)")
    if args.unregister and args.once:
        parser().error("--unregister and --once are two different runs")
    if args.unregister:
        return unregister(args)
    if args.once:
        return run_once(args)
    return serve(args, early or BootReplay(args.config, args.binfmt_dir, args.log_target,
                                            args.private))


def refusal(args: argparse.Namespace) -> str | None:
    """Why the service must not start on this table, whatever a restart does: a private table
    no one asked for, or --private where the only table is the host's."""
    from ..kernel.owner import accidental_mount, not_private
    from ..kernel.raw import DEFAULT_PATH
    from ..kernel.table import BinfmtTable
    if args.private:
        return not_private(args.binfmt_dir)
    if args.binfmt_dir == DEFAULT_PATH and not BinfmtTable(args.binfmt_dir).mounted():
        return accidental_mount(args.binfmt_dir)
    return None


def serve(args: argparse.Namespace, early: BootReplay) -> int:
    why = refusal(args)
    if why is not None:  # said, and stopped for good: the units do not restart on this code
        from ..core.report import EXIT_REFUSED
        from ..service.systemd_glue import notify
        early.log.send({"MESSAGE": f"not starting: {why}", "PRIORITY": "3"})
        notify(f"STATUS=not starting: {why}")
        return EXIT_REFUSED
    # Only the service needs the main loop, the watcher and systemd: imported here.
    from ..model.options import Options
    from .common import config_from
    from .wiring import build_service
    options = Options(safety_interval=args.safety_interval, repair_limit=args.repair_limit,
                      repair_window=args.repair_window, mount=not args.no_mount)
    service = build_service(config_from(args), options, early.log, dbus=not args.no_dbus,
                            metrics=args.metrics_textfile, lock=early.lock)
    service.start()
    if early.asked and not service.exit_code:
        service.loop.call_soon_threadsafe(service.stop)
    if not service.exit_code:
        service.loop.run()
    return service.exit_code


if __name__ == "__main__":
    sys.exit(main())
