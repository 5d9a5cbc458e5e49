"""`multiarchd`: the service; `--once` applies the policy one time and exits; `--unregister`
removes its entries (at shutdown).

The one-shot path imports neither the main loop, the watcher, D-Bus nor systemd-python: only
the service (serve) needs them.
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..core.messages import change_records
from ..core.render import report_text
from ..model.errors import NotMounted
from ..model.options import Options
from ..reconciler.run import reconcile_once, unregister_owned
from ..service.logs import open_log
from .common import add_path_options, config_from, plan_exit_code, tell_outcomes


def parser() -> argparse.ArgumentParser:
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
    p.add_argument("--metrics-textfile", metavar="PATH",
                   help="write Prometheus metrics to PATH after each run (for node-exporter's "
                        "textfile collector: a file ending in .prom in its directory)")
    p.add_argument("--log-target", choices=("auto", "journal", "stderr"), default="auto")
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


def run_once(args: argparse.Namespace) -> int:
    try:
        result = reconcile_once(config_from(args), dry_run=args.dry_run)
    except NotMounted as e:
        print(f"multiarchd: {e}", file=sys.stderr)
        return 1
    if args.dry_run:
        for p in result.report.problems:
            print(p, file=sys.stderr)
        print(result.plan)
        return plan_exit_code(result)
    tell_outcomes(result.report, open_log(args.log_target), result.drift)
    print(report_text(result.report))
    return result.report.exit_code()


def unregister(args: argparse.Namespace) -> int:
    outcomes = unregister_owned(config_from(args))
    for record in change_records(outcomes):
        open_log(args.log_target).emit(record)
    return 0 if all(o.ok for o in outcomes) else 1


def main(argv: list[str] | None = None) -> int:
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
    return serve(args)


def serve(args: argparse.Namespace) -> int:
    # Only the service needs the main loop, the watcher and systemd: imported here.
    from .service import build_service
    options = Options(safety_interval=args.safety_interval, repair_limit=args.repair_limit,
                      repair_window=args.repair_window, mount=not args.no_mount)
    service = build_service(config_from(args), options, open_log(args.log_target),
                            dbus=not args.no_dbus, metrics=args.metrics_textfile)
    service.start()
    if not service.exit_code:
        service.loop.run()
    return service.exit_code


if __name__ == "__main__":
    sys.exit(main())
