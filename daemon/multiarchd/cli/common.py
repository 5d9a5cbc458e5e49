"""What both commands share: the path options and how a run's outcome is told."""

from __future__ import annotations

import argparse
import sys

from ..binfmt import DEFAULT_PATH as BINFMT_PATH
from ..policy import DEFAULT_PATH as POLICY_PATH
from ..reconcile import Config, Result

EXIT_OK, EXIT_NOT_CONVERGED, EXIT_USAGE = 0, 1, 2


def add_path_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=POLICY_PATH, metavar="PATH",
                        help=f"policy file; drop-ins are read from arches.d/ beside it "
                             f"(default {POLICY_PATH})")
    parser.add_argument("--binfmt-dir", default=BINFMT_PATH, metavar="PATH",
                        help=f"the binfmt_misc mount (default {BINFMT_PATH}; tests only)")


def config_from(args: argparse.Namespace) -> Config:
    return Config(policy_path=args.config, binfmt_dir=args.binfmt_dir)


def tell_outcomes(result: Result, prog: str) -> None:
    """One line per change on stderr, then the problems."""
    for o in result.report.outcomes:
        if o.ok:
            verb = {"register": "registered", "remove": "removed", "replace": "replaced",
                    "enable": "enabled", "disable": "disabled"}[o.action.kind.value]
            print(f"{prog}: {verb} {o.action.entry}: {o.action.reason}", file=sys.stderr)
        else:
            print(f"{prog}: {o.error}; will retry on the next run", file=sys.stderr)
    for p in result.report.problems:
        print(p, file=sys.stderr)
    if result.rejected:
        print(f"{prog}: policy rejected; the kernel table was left as it is", file=sys.stderr)


def plan_exit_code(result: Result) -> int:
    """2 for policy problems, else 1 when the plan has work to do (the table is not as wanted)."""
    code = result.report.exit_code()
    return code if code == EXIT_USAGE else max(code, int(bool(result.plan)))
