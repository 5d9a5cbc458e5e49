"""`multiarchctl`: look at and steer multiarchd.

`status`, `plan`, `apply`, `reload` and `test` talk to the running daemon over D-Bus. `plan`,
`check-config`, `arches`, `cat-config` and `test` also work without it, and so do `status` and
`apply` with `--local` (implied by --config or --binfmt-dir: another policy or table than the
daemon's can only be worked on here).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING

from ..binfmt import DEFAULT_PATH as BINFMT_PATH
from ..binfmt import BinfmtTable, Observed
from ..catalog import load_catalog
from ..desired import State, desired
from ..errors import NotMounted, UnknownArchitecture
from ..host import candidate_paths, probe_host
from ..policy import DEFAULT_PATH as POLICY_PATH
from ..policy import Policy
from ..policyfile import load_policy, policy_files
from ..reconcile import Result, evaluate, reconcile_once
from ..render import columns, dumps, plan_json, report_json, report_text, status_rows
from ..report import build_report
from ..systemd_glue import Log
from ..verify import resolve, verify
from .common import (EXIT_NOT_CONVERGED, EXIT_OK, EXIT_USAGE, add_path_options, config_from,
                     plan_exit_code, tell_outcomes)

if TYPE_CHECKING:
    from ..dbus import Client


def _daemon_unreachable(verb: str, local: bool) -> int:
    hint = f"; `multiarchctl {verb} --local` works without it" if local else ""
    print(f"multiarchctl: multiarchd is not running (no io.github.multiarchd1 on the system "
          f"bus){hint}", file=sys.stderr)
    return EXIT_NOT_CONVERGED


def _remote(verb: str, local: bool, work: Callable[[Client], int]) -> int:
    """Run `work` against the daemon, turning D-Bus failures into one line and an exit code."""
    from ..dbus import Client, RemoteError, Unreachable
    try:
        return work(Client())
    except Unreachable:
        return _daemon_unreachable(verb, local)
    except RemoteError as e:
        print(f"multiarchctl: {e} ({e.name})", file=sys.stderr)
        if e.name.endswith((".PolicyRejected", ".UnknownArchitecture")):
            return EXIT_USAGE
        if e.name.endswith(".AccessDenied"):
            print("multiarchctl: changing things needs root", file=sys.stderr)
        return EXIT_NOT_CONVERGED


_STATE_EXIT = {"converged": EXIT_OK, "policy-error": EXIT_USAGE}


def _print_remote_status(client: Client, as_json: bool, show_unmanaged: bool) -> int:
    from ..dbus import status_from_record
    state = client.get("State")
    statuses = [status_from_record(r) for r in client.get("Architectures")]
    if as_json:
        print(dumps({"state": state, "host": client.get("HostArchitecture"),
                     "policy": client.get("PolicyPath"),
                     "last_reconcile_usec": client.get("LastReconcile"),
                     "architectures": [asdict(s) for s in statuses]}))
    else:
        shown = [s for s in statuses if show_unmanaged or s.state is not State.UNMANAGED]
        if shown:
            print(columns(status_rows(shown)))
        print(f"state: {state}")
    return _STATE_EXIT.get(state, EXIT_NOT_CONVERGED)


def cmd_status(args: argparse.Namespace) -> int:
    if not args.local:
        return _remote("status", True,
                       lambda c: _print_remote_status(c, args.json, args.all))
    policy, want, observed, todo = evaluate(config_from(args))
    if want is None:
        for p in policy.problems:
            print(p, file=sys.stderr)
        return EXIT_USAGE
    report = build_report(want, observed)
    print(dumps(report_json(report, todo)) if args.json else report_text(report, args.all))
    return report.exit_code()


def cmd_plan(args: argparse.Namespace) -> int:
    if not args.local:
        from ..dbus import Client, RemoteError, Unreachable
        try:
            actions = Client().call("Plan")
        except Unreachable:
            pass  # a plan needs no daemon: compute it here
        except RemoteError as e:
            print(f"multiarchctl: {e} ({e.name})", file=sys.stderr)
            return EXIT_USAGE if e.name.endswith(".PolicyRejected") else EXIT_NOT_CONVERGED
        else:
            if args.json:
                print(dumps([{"action": k, "entry": n, "reason": r} for k, n, r in actions]))
            else:
                print("\n".join(f"{k:<8} {n}: {r}" for k, n, r in actions) or "nothing to do")
            return EXIT_NOT_CONVERGED if actions else EXIT_OK
    policy, want, observed, todo = evaluate(config_from(args))
    for p in policy.problems if want is None else want.problems:
        print(p, file=sys.stderr)
    if want is None:
        return EXIT_USAGE
    print(dumps(plan_json(todo)) if args.json else todo)
    return plan_exit_code(Result(policy, want, todo, build_report(want, observed)))


def cmd_apply(args: argparse.Namespace) -> int:
    if not args.local:
        def apply_remote(client: Client) -> int:
            client.call("Reconcile")
            return _print_remote_status(client, args.json, False)
        return _remote("apply", True, apply_remote)
    result = reconcile_once(config_from(args))
    if args.json:
        print(dumps(report_json(result.report, result.plan)))
    else:
        tell_outcomes(result, Log("stderr", "multiarchctl"))
        if not result.rejected:
            print(report_text(result.report))
    return result.report.exit_code()


def cmd_reload(args: argparse.Namespace) -> int:
    def reload(client: Client) -> int:
        client.call("Reload")
        return _STATE_EXIT.get(client.get("State"), EXIT_NOT_CONVERGED)
    return _remote("reload", False, reload)


def _print_verdicts(verdicts: list[tuple[str, str, str]], as_json: bool) -> int:
    if as_json:
        print(dumps([{"architecture": a, "result": r, "message": m} for a, r, m in verdicts]))
    elif verdicts:
        print(columns([["ARCH", "RESULT", "MESSAGE"], *[list(v) for v in verdicts]]))
    return EXIT_NOT_CONVERGED if any(r == "failed" for _, r, _ in verdicts) else EXIT_OK


def _managed(args: argparse.Namespace) -> list[str]:
    """The architectures the policy has registered (what `test` probes by default)."""
    policy, want, _, _ = evaluate(config_from(args))
    return [w.label for w in want.wants if w.kind == "arch" and w.registration] if want else []


def cmd_test(args: argparse.Namespace) -> int:
    def local() -> int:
        catalog = load_catalog()
        try:
            names = resolve(args.arches, catalog) if args.arches else _managed(args)
        except UnknownArchitecture as e:
            print(f"multiarchctl: {e}", file=sys.stderr)
            return EXIT_USAGE
        verdicts = verify(names, catalog, args.binfmt_dir)
        return _print_verdicts([(v.arch, v.result, v.message) for v in verdicts], args.json)
    if args.local:
        return local()
    from ..dbus import Client, RemoteError, Unreachable
    try:
        return _print_verdicts([tuple(v) for v in Client().call("Test", args.arches)],
                               args.json)
    except Unreachable:
        return local()  # a probe needs no daemon
    except RemoteError as e:
        print(f"multiarchctl: {e} ({e.name})", file=sys.stderr)
        return EXIT_USAGE if e.name.endswith(".UnknownArchitecture") else EXIT_NOT_CONVERGED


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
                     "problems": [{"file": p.place.file, "line": p.place.line,
                                   "column": p.place.column, "message": p.message}
                                  for p in problems]}))
    else:
        for p in problems:
            print(p)
        if not problems:
            print(f"{', '.join(policy.files)}: ok")
    return EXIT_USAGE if problems else EXIT_OK


def cmd_arches(args: argparse.Namespace) -> int:
    catalog = load_catalog()
    policy = load_policy(args.config, catalog)
    if policy.rejected:
        policy = Policy(files=policy.files)  # still tell what this host could run
    table = BinfmtTable(args.binfmt_dir)
    observed = table.read() if table.mounted() else Observed(())
    host = probe_host(catalog, candidate_paths(policy, catalog))
    report = build_report(desired(policy, catalog, host), observed)
    arches = [s for s in report.statuses if s.kind == "arch"]
    if args.json:
        records = [dict(asdict(s), aliases=list(catalog.arches[s.name].aliases),
                        family=catalog.arches[s.name].family) for s in arches]
        print(dumps({"host": host.arch, "architectures": records}))
        return EXIT_OK
    rows = status_rows(arches)
    rows[0].insert(1, "ALIASES")
    for row, s in zip(rows[1:], arches):
        row.insert(1, ",".join(catalog.arches[s.name].aliases) or "-")
    print(f"host: {host.arch}")
    print(columns(rows))
    return EXIT_OK


def cmd_cat_config(args: argparse.Namespace) -> int:
    code = EXIT_OK
    for path in policy_files(args.config):
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            print(f"# {path}: {e.strerror}", file=sys.stderr)
            code = EXIT_USAGE
            continue
        print(f"# {path}")
        print(text, end="" if text.endswith("\n") else "\n")
    return code


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="multiarchctl", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")
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
    s.set_defaults(func=cmd_apply)
    s = sub.add_parser("reload", parents=[common], help="make the daemon re-read its policy")
    s.set_defaults(func=cmd_reload)
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
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # Another policy or table than the daemon's can only mean: work on it here.
    if hasattr(args, "local") and (args.config != POLICY_PATH or args.binfmt_dir != BINFMT_PATH):
        args.local = True
    try:
        code: int = args.func(args)
        return code
    except NotMounted as e:
        print(f"multiarchctl: {e}", file=sys.stderr)
        return EXIT_NOT_CONVERGED
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
