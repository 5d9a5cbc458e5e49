"""`multiarchctl`: look at and steer multiarchd.

`status`, `plan`, `apply`, `reload`, `release`, `audit` and `test` talk to the running daemon
over D-Bus. `plan`, `audit`, `check-config`, `arches`, `cat-config` and `test` also work without
it (`explain` always works here, cli/explain.py), and so do `status` and `apply` with `--local` (implied by --config or --binfmt-dir: another
policy or table than the daemon's can only be worked on here).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import asdict

from .. import __version__
from ..catalog import load_catalog
from ..core.desired import desired
from ..core.probes import Verdict
from ..core.render import (View, columns, dumps, findings_json, plan_json, problem_json,
                           report_text, status_rows, view_json)
from ..core.report import EXIT_NOT_CONVERGED, EXIT_OK, EXIT_USAGE, DaemonState, build_report
from ..dbus import api
from ..host.facts import candidate_paths, probe_host
from ..kernel.table import DEFAULT_PATH as BINFMT_PATH
from ..kernel.table import BinfmtTable
from ..model.errors import NotHeld, NotMounted, PolicyRejected, UnknownArchitecture, WrongTable
from ..policy import DEFAULT_PATH as POLICY_PATH
from ..model.policy import Policy
from ..model.observed import Observed
from ..policy.files import Unreadable, dropins, load_policy, policy_files, read_text, role
from ..service.logs import StderrLog
from .common import add_path_options, config_from, tell_outcomes
from .explain import add_parser as add_explain
from .sources import Local, Source, connect

# What multiarchctl says for each error the daemon names, and its exit code: the one place
# D-Bus error names become messages.
_REMOTE_ERRORS: dict[str, tuple[Callable[[str, str], str], int]] = {
    # The policy's problems, one a line, exactly as a local run prints them.
    api.error_name(PolicyRejected): (lambda _verb, m: m, EXIT_USAGE),
    api.error_name(UnknownArchitecture): (lambda _verb, m: f"multiarchctl: {m}", EXIT_USAGE),
    api.error_name(NotMounted): (lambda _verb, m: f"multiarchctl: {m}", EXIT_NOT_CONVERGED),
    api.error_name(NotHeld): (lambda verb, m: f"multiarchctl {verb}: {m}", EXIT_NOT_CONVERGED),
    # The daemon's words say what is needed; a bus that refused the call itself says less.
    **{name: (lambda verb, m: f"multiarchctl {verb}: " + (
        m if "polkit" in m else "changes the system: run it as root, or as an administrator "
        "polkit lets through (action io.github.multiarchd1.manage)"), EXIT_NOT_CONVERGED)
       for name in ("org.freedesktop.DBus.Error.AccessDenied",
                    "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired")},
}


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    """An error, as the caller reads it: a line on stderr, or with --json a JSON document on
    stdout (so a script always gets one)."""
    if getattr(args, "json", False):
        print(dumps({"error": message, "exit_code": code}))
    else:
        print(message, file=sys.stderr)
    return code


def _remote_failed(args: argparse.Namespace, verb: str, e: api.RemoteError) -> int:
    known = _REMOTE_ERRORS.get(e.name)
    if known is None:
        return _fail(args, f"multiarchctl: {e} ({e.name})", EXIT_NOT_CONVERGED)
    return _fail(args, known[0](verb, str(e)), known[1])


def _unreachable(args: argparse.Namespace, verb: str, local_works: bool) -> int:
    hint = f"; `multiarchctl {verb} --local` works without it" if local_works else ""
    return _fail(args, f"multiarchctl: multiarchd is not running (no {api.BUS_NAME} on the "
                 f"system bus){hint}", EXIT_NOT_CONVERGED)


def _with_source(args: argparse.Namespace, verb: str, work: Callable[[Source], int],
                 fallback: bool = False) -> int:
    """Run `work` against the daemon (or locally with --local); with `fallback`, a verb that
    needs no daemon works locally when none runs."""
    if getattr(args, "local", False):
        return work(Local(config_from(args)))
    try:
        return work(connect())
    except api.Unreachable:
        if fallback:
            return work(Local(config_from(args)))
        return _unreachable(args, verb, local_works=True)
    except api.RemoteError as e:
        return _remote_failed(args, verb, e)


def _show(view: View, as_json: bool, show_all: bool = False, applied: bool = False) -> int:
    if as_json:
        print(dumps(view_json(view, applied)))
    elif view.report.rejected and not view.report.statuses:
        for p in view.report.problems:
            print(p, file=sys.stderr)
    else:
        print(f"binfmt_misc table: {view.table}")
        print(report_text(view.report, show_all, view.state))
    return view.exit_code()


def cmd_status(args: argparse.Namespace) -> int:
    return _with_source(args, "status", lambda src: _show(src.view(), args.json, args.all))


def cmd_plan(args: argparse.Namespace) -> int:
    def plan(src: Source) -> int:
        try:
            todo, problems, state = src.plan()
        except PolicyRejected as e:
            return _fail(args, str(e), EXIT_USAGE)
        for p in problems:
            print(p, file=sys.stderr)
        print(dumps(plan_json(todo)) if args.json else todo)
        if problems:
            return EXIT_USAGE
        return EXIT_NOT_CONVERGED if todo or state is not DaemonState.CONVERGED else EXIT_OK
    return _with_source(args, "plan", plan, fallback=True)


def cmd_apply(args: argparse.Namespace) -> int:
    def apply(src: Source) -> int:
        view = src.apply()
        if args.json:
            return _show(view, True, applied=True)
        tell_outcomes(view.report, StderrLog("multiarchctl"))
        if view.report.statuses:
            print(f"binfmt_misc table: {view.table}")
            print(report_text(view.report, state=view.state))
        return view.exit_code()
    return _with_source(args, "apply", apply)


def cmd_reload(args: argparse.Namespace) -> int:
    try:
        daemon = connect()
        daemon.reload()
        return daemon.view().exit_code()
    except api.Unreachable:
        return _unreachable(args, "reload", local_works=False)
    except api.RemoteError as e:
        return _remote_failed(args, "reload", e)


def cmd_audit(args: argparse.Namespace) -> int:
    """The whole table judged (core/audit.py): exit 0 clean, 1 with findings."""
    def audit(src: Source) -> int:
        view = src.view()
        findings = view.report.findings
        if args.json:
            print(dumps({"table": view.table, "findings": findings_json(findings)}))
        elif findings:
            print(columns([["SEVERITY", "ENTRY", "KIND", "REASON AND FIX"],
                           *[[f.severity.value, f.entry, f.kind, f"{f.reason}; {f.fix}"]
                             for f in findings]]))
        else:
            print(f"no findings in {view.table}")
        return EXIT_NOT_CONVERGED if findings else EXIT_OK
    return _with_source(args, "audit", audit, fallback=True)


def cmd_release(args: argparse.Namespace) -> int:
    """Only the daemon knows which file the kernel holds for an entry: no --local."""
    try:
        state, message = connect().release(args.arch)
    except api.Unreachable:
        return _unreachable(args, "release", local_works=False)
    except api.RemoteError as e:
        return _remote_failed(args, "release", e)
    print(f"{args.arch}: {state}: {message}" if message else f"{args.arch}: {state}")
    return EXIT_OK if state in ("active", "verified") else EXIT_NOT_CONVERGED


def _print_verdicts(verdicts: list[Verdict], as_json: bool) -> int:
    if as_json:
        print(dumps([{"architecture": v.arch, "result": v.result, "message": v.message}
                     for v in verdicts]))
    elif verdicts:
        print(columns([["ARCH", "RESULT", "MESSAGE"],
                       *[[v.arch, v.result, v.message] for v in verdicts]]))
    return EXIT_NOT_CONVERGED if any(v.result == "failed" for v in verdicts) else EXIT_OK


def cmd_test(args: argparse.Namespace) -> int:
    def test(src: Source) -> int:
        try:
            verdicts = src.test(args.arches)
        except UnknownArchitecture as e:
            return _fail(args, f"multiarchctl: {e}", EXIT_USAGE)
        except PolicyRejected as e:  # which architectures does it register? It cannot say.
            return _fail(args, str(e), EXIT_USAGE)
        return _print_verdicts(verdicts, args.json)
    return _with_source(args, "test", test, fallback=True)  # a probe needs no daemon


def cmd_check_config(args: argparse.Namespace) -> int:
    catalog = load_catalog()
    policy = load_policy(args.config, catalog, only=args.file)
    # Interpreter paths are checked against this host too: a missing one is an error here.
    problems = policy.problems
    if not policy.rejected:
        host = probe_host(catalog, candidate_paths(policy, catalog))
        problems = desired(policy, catalog, host).problems
    if args.json:
        print(dumps({"files": list(policy.files), "ok": not problems,
                     "role": role(args.file) if args.file else None,
                     "problems": [{"file": p.place.file, "line": p.place.line,
                                   "column": p.place.column, "message": p.message}
                                  for p in problems]}))
    else:
        for p in problems:
            print(p)
        if not problems:
            judged = f" (judged as {role(args.file)})" if args.file else ""
            print(f"{', '.join(policy.files)}: ok{judged}")
    return EXIT_USAGE if problems else EXIT_OK


def cmd_arches(args: argparse.Namespace) -> int:
    catalog = load_catalog()
    policy = load_policy(args.config, catalog)
    problems = policy.problems
    if policy.rejected:
        policy = Policy(files=policy.files)  # still tell what this host could run
    table = BinfmtTable(args.binfmt_dir)
    observed = table.read() if table.mounted() else Observed(())
    host = probe_host(catalog, candidate_paths(policy, catalog))
    report = build_report(desired(policy, catalog, host), observed)
    arches = [s for s in report.statuses if s.kind == "arch"]
    if args.json:
        records = [dict(asdict(s), aliases=list(catalog.arches[s.name].aliases),
                        runs=list(catalog.arches[s.name].runs)) for s in arches]
        print(dumps({"host": host.arch, "architectures": records,
                     "problems": [problem_json(p) for p in problems]}))
        return EXIT_USAGE if problems else EXIT_OK
    rows = status_rows(arches)
    rows[0].insert(1, "ALIASES")
    for row, s in zip(rows[1:], arches):
        row.insert(1, ",".join(catalog.arches[s.name].aliases) or "-")
    print(f"host: {host.arch}")
    print(columns(rows))
    for p in problems:  # the table is what this host can do; the policy could not be read
        print(p, file=sys.stderr)
    return EXIT_USAGE if problems else EXIT_OK


def cmd_cat_config(args: argparse.Namespace) -> int:
    code = EXIT_OK
    for path in policy_files(args.config):
        try:
            text = read_text(path)  # as the daemon reads it: a FIFO is refused, not waited on
        except Unreadable as e:
            print(f"# {e.place}: {e.message}", file=sys.stderr)
            code = EXIT_USAGE
            continue
        print(f"# {path}")
        print(text, end="" if text.endswith("\n") else "\n")
    for loser, winner in sorted(dropins(args.config)[1].items()):
        print(f"# {loser}: overridden by {winner}, not read")
    return code


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="multiarchctl", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"multiarchctl {__version__}")
    sub = p.add_subparsers(dest="verb", metavar="VERB", help="(default: status)")
    common = argparse.ArgumentParser(add_help=False)
    add_path_options(common)
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print JSON")
    local = argparse.ArgumentParser(add_help=False)
    local.add_argument("--local", action="store_true",
                       help="work on the kernel table directly, without the daemon")

    s = sub.add_parser("status", parents=[common, as_json, local], help="per-architecture state")
    s.add_argument("--all", action="store_true", help="also list architectures not in the policy")
    s.set_defaults(func=cmd_status)
    s = sub.add_parser("plan", parents=[common, as_json, local],
                       help="what applying would change")
    s.set_defaults(func=cmd_plan)
    s = sub.add_parser("apply", parents=[common, as_json, local], help="apply the policy now")
    s.add_argument("--private", action="store_true",
                   help="fill this user namespace's own table (implies --local; see "
                        "multiarchd(8))")
    s.set_defaults(func=cmd_apply)
    s = sub.add_parser("reload", parents=[common], help="make the daemon re-read its policy")
    s.set_defaults(func=cmd_reload)
    s = sub.add_parser("audit", parents=[common, as_json, local],
                       help="judge every entry of the table, ours or not (exit 1: findings)")
    s.set_defaults(func=cmd_audit)
    s = sub.add_parser("release", parents=[common],
                       help="take the new interpreter file of an architecture hold: true keeps")
    s.add_argument("arch", metavar="ARCH")
    s.set_defaults(func=cmd_release)
    s = sub.add_parser("test", parents=[common, as_json, local],
                       help="run a probe program of each architecture (default: all managed)")
    s.add_argument("arches", nargs="*", metavar="ARCH")
    s.set_defaults(func=cmd_test)
    s = sub.add_parser("check-config", parents=[common, as_json],
                       help="validate the policy (or FILE alone)")
    s.add_argument("file", nargs="?", metavar="FILE")
    s.set_defaults(func=cmd_check_config)
    s = sub.add_parser("arches", parents=[common, as_json],
                       help="every known architecture, its state here and its interpreter")
    s.set_defaults(func=cmd_arches)
    s = sub.add_parser("cat-config", parents=[common], help="print the policy files in order")
    s.set_defaults(func=cmd_cat_config)
    add_explain(sub, [common, as_json])
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.verb is None:  # as hostnamectl does: no verb shows the status
        args = parser().parse_args([*(argv or sys.argv[1:]), "status"])
    # Another policy or table than the daemon's can only mean: work on it here.
    if hasattr(args, "local") and (args.config != POLICY_PATH or args.binfmt_dir != BINFMT_PATH
                                   or getattr(args, "private", False)):
        args.local = True
    try:
        code: int = args.func(args)
        return code
    except WrongTable as e:  # --private given where it cannot be, or wanted and not given
        return _fail(args, f"multiarchctl: {e}", EXIT_USAGE)
    except NotMounted as e:
        return _fail(args, f"multiarchctl: {e}", EXIT_NOT_CONVERGED)
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
