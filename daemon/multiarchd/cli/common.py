"""What both commands share: the path options and how a run's outcome is told."""

from __future__ import annotations

import argparse

from ..core.messages import outcome_messages
from ..core.report import EXIT_USAGE, Report
from ..core.result import Result
from ..kernel.table import DEFAULT_PATH as BINFMT_PATH
from ..model.options import Config
from ..policy import DEFAULT_PATH as POLICY_PATH
from ..service.protocols import Log


def add_path_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=POLICY_PATH, metavar="PATH",
                        help=f"policy file; drop-ins are read from arches.d/ beside it, or for "
                             "ROOT/etc/multiarch/arches.yaml from ROOT/{usr/lib,run,etc}/"
                             "multiarch/arches.d "
                             f"(default {POLICY_PATH})")
    parser.add_argument("--binfmt-dir", default=BINFMT_PATH, metavar="PATH",
                        help=f"the binfmt_misc mount (default {BINFMT_PATH}; tests only)")


def config_from(args: argparse.Namespace) -> Config:
    return Config(policy_path=args.config, binfmt_dir=args.binfmt_dir,
                  private=getattr(args, "private", False))


def tell_outcomes(report: Report, log: Log, drift: frozenset[str] = frozenset()) -> None:
    """One message per change, then the policy's problems."""
    for message in outcome_messages(report, drift):
        log.emit(message)


def plan_exit_code(result: Result) -> int:
    """2 for policy problems, else 1 when the plan has work to do (the table is not as wanted)."""
    code = result.report.exit_code()
    return code if code == EXIT_USAGE else max(code, int(bool(result.plan)))
