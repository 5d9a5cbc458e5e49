"""`multiarchctl explain FILE`: which entry of this table would run FILE, with which interpreter
and CPU model, or why nothing would, and the fix. Decided here, without the daemon, from the
same policy, host and table a run reads (core/explain.py decides; this reads the file)."""

from __future__ import annotations

import argparse
import os
import stat
import sys
from dataclasses import asdict

from ..catalog import load_catalog
from ..core.explain import (HEADER_SIZE, Explanation, Outcome, Program, Reason, explain,
                            shebang)
from ..core.render import dumps, problem_json
from ..core.report import EXIT_NOT_CONVERGED, EXIT_OK, EXIT_USAGE
from ..host.facts import host_arch
from ..model.problems import Problem
from ..model.registration import printable
from ..reconciler.explain import observe, where
from ..reconciler.run import evaluate
from .common import config_from

MAX_DEPTH = 4  # the kernel follows at most this many interpreters (BINPRM_MAX_RECURSION)


def _program(path: str) -> Program:
    """The file's first bytes and whether execve may run it (OSError when it cannot be read)."""
    with open(path, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        header = f.read(HEADER_SIZE)
    runnable = stat.S_ISREG(mode) and bool(mode & 0o111)
    return Program(path, header, runnable)


def explain_file(args: argparse.Namespace, path: str
                 ) -> tuple[list[Explanation], tuple[Problem, ...]]:
    """FILE's explanation, then its #! interpreter's, and so on as far as the kernel goes; and
    the policy's problems."""
    config = config_from(args)
    catalog = load_catalog()
    observed, mounted = observe(config)
    policy, want, _, _ = evaluate(config, catalog, observed=observed)
    root = (args.root or "").rstrip("/")
    out: list[Explanation] = []
    while len(out) <= MAX_DEPTH:
        program = _program(path)
        here = where(config, host_arch(catalog), observed, mounted, root,
                     shebang(program.header))
        out.append(explain(program, observed, want, catalog, here))
        if out[-1].outcome is not Outcome.SCRIPT or out[-1].interpreter is None:
            break
        path = root + out[-1].interpreter
    return out, policy.problems if want is None else want.problems


def _text(e: Explanation, depth: int) -> list[str]:
    lead = "  " * depth
    runs = {Outcome.ENTRY: f"yes, through entry {e.entry}", Outcome.NATIVE: "yes, natively",
            Outcome.SCRIPT: f"yes, as a script run by {e.interpreter}",
            Outcome.FAILS: f"no ({e.reason})"}[e.outcome]
    lines = [f"{e.file}: {e.format}", f"runs: {runs}"]
    if e.interpreter and e.outcome is not Outcome.SCRIPT:
        flags = f"flags {e.flags or '-'}, " if e.entry else ""
        cpu = f"CPU model {e.cpu}" if e.cpu else "the emulator's own CPU model"
        emulator = f"emulator {e.emulator}, " if e.emulator else ""
        lines.append(f"interpreter: {e.interpreter} ({emulator}{flags}{cpu})")
    lines.append(f"why: {e.message}")
    if e.fix:
        lines.append(f"fix: {e.fix}")
    if e.matches:
        lines.append("matching entries (newest first): " + ", ".join(
            f"{m.entry} ({'enabled' if m.enabled else 'disabled'})" for m in e.matches))
    if depth == 0:
        lines.append(f"table: {e.table}")
    return [lead + line for line in lines]


def cmd_explain(args: argparse.Namespace) -> int:
    try:
        chain, problems = explain_file(args, args.file)
    except OSError as err:
        message = f"multiarchctl explain: {printable(args.file)}: {err.strerror or err}"
        if args.json:
            print(dumps({"error": message, "exit_code": EXIT_USAGE}))
        else:
            print(message, file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        records = [dict(asdict(one), runs=one.runs) for one in chain]
        print(dumps(dict(records[0], then=records[1:],
                         policy_problems=[problem_json(p) for p in problems])))
    else:
        if any(one.reason is Reason.POLICY_ERROR for one in chain):
            for p in problems:  # (the policy's words for it)
                print(p, file=sys.stderr)
        for depth, one in enumerate(chain):
            print("\n".join(_text(one, depth)))
    return EXIT_OK if all(one.runs for one in chain) else EXIT_NOT_CONVERGED


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser],
               parents: list[argparse.ArgumentParser]) -> None:
    s = sub.add_parser("explain", parents=parents,
                       help="which entry would run FILE here, with what, or why nothing would")
    s.add_argument("file", metavar="FILE")
    s.add_argument("--root", metavar="DIR", default="",
                   help="the file runs in a container or chroot whose root is DIR (an entry "
                        "without F needs its interpreter there)")
    s.set_defaults(func=cmd_explain)
