#!/usr/bin/env python3
"""How the work grows with the table: 33 entries (the default policy), 133 and 1,033 (the same
plus custom entries), each phase of a run timed on its own, against two floors measured in the
same process with trials interleaved (floor, phase, floor, phase ...):

  table read : BinfmtTable.read() of the whole table (what every run must do);
  raw writes : a bare loop of os.write() of the same register lines into an empty table.

Phases: parse (a run's: the files read, and parsed again only if a text changed; and cold,
from nothing: the first run, or every file changed), host (the candidate interpreters),
desired, plan, register (apply into an empty table), report; and a whole no-op run of a
daemon (converged table, policy unchanged since the last run).

Usage: .venv/bin/python -m bench.scale [--trials 20]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from multiarchd.catalog import load_catalog
from multiarchd.core.desired import desired
from multiarchd.core.plan import plan
from multiarchd.core.report import build_report
from multiarchd.host.facts import candidate_paths, probe_host
from multiarchd.host.filecache import FileCache
from multiarchd.kernel.apply import apply
from multiarchd.kernel.table import BinfmtTable
from multiarchd.model.options import Config
from multiarchd.model.observed import Observed
from multiarchd.policy.files import PolicyCache, load_policy
from multiarchd.reconciler.history import History
from multiarchd.reconciler.run import reconcile_once

from bench.stats import in_turn, median
from tests.support.binfmt import PrivateBinfmt
from tests.support.paths import DEFAULT_POLICY

SIZES = (33, 133, 1033)


def policy_with(extra: int, directory: Path) -> Path:
    """The default policy and `extra` custom entries (distinct magics, a trusted interpreter)."""
    path = directory / f"arches-{extra}.yaml"
    customs = "".join(f"  - {{name: c{i:04d}, magic: '\\x7fMA{i:04d}', interpreter: /usr/bin/true}}\n"
                      for i in range(extra))
    path.write_text(DEFAULT_POLICY.read_text() + (f"\ncustom:\n{customs}" if extra else ""))
    return path


def median_ms(times: list[float]) -> float:
    return median(times) * 1000


def timed(fn: Callable[[], object], least: float = 0.005) -> Callable[[], float]:
    """A trial of fn: repeated until it has taken `least` seconds (a tenth of a millisecond is
    near the clock's noise), the time of one call."""
    def run() -> float:
        start, calls = time.perf_counter(), 0
        while True:
            fn()
            calls += 1
            took = time.perf_counter() - start
            if took >= least:
                return took / calls
    return run


def measure(size: int, trials: int, directory: Path) -> dict[str, float]:
    catalog = load_catalog()
    path = str(policy_with(size - 33, directory))
    policy = load_policy(path, catalog)
    host = probe_host(catalog, candidate_paths(policy, catalog))
    want = desired(policy, catalog, host)
    todo = plan(want, Observed(()))
    lines = [a.registration.register_line().encode() for a in todo.actions if a.registration]
    assert len(lines) == size, (len(lines), size)

    def into_empty(write: Callable[[PrivateBinfmt], object]) -> Callable[[], float]:
        def run() -> float:
            with PrivateBinfmt() as ns:  # (not timed)
                start = time.perf_counter()
                write(ns)
                took = time.perf_counter() - start
                assert len(ns.names()) == size
            return took
        return run

    def raw(ns: PrivateBinfmt) -> None:
        register = os.path.join(ns.path, "register")
        for line in lines:
            fd = os.open(register, os.O_WRONLY)
            os.write(fd, line)
            os.close(fd)

    raw_t, register_t = in_turn(trials, into_empty(raw),
                                    into_empty(lambda ns: apply(todo, BinfmtTable(ns.path))))
    with PrivateBinfmt() as ns:
        table = BinfmtTable(ns.path)
        config = Config(path, ns.path)
        # As the daemon's Reconciler runs it: its history, and its caches of the parsed policy
        # and of what the interpreter files were found to be.
        history, policies, files = History(), PolicyCache(), FileCache()

        def run() -> None:
            reconcile_once(config, catalog=catalog, history=history, policies=policies,
                           files=files)
        run()  # converged, and the policy parsed once
        observed = table.read()
        cache = PolicyCache()
        cache.load(path, catalog)
        read_t, noop_t, parse_t, cold_t, host_t, desired_t, plan_t, report_t = in_turn(
            trials, timed(table.read), timed(run),
            timed(lambda: cache.load(path, catalog)), timed(lambda: load_policy(path, catalog)),
            timed(lambda: probe_host(catalog, candidate_paths(policy, catalog))),
            timed(lambda: desired(policy, catalog, host)),
            timed(lambda: plan(want, observed)), timed(lambda: build_report(want, observed)))
    return {"table read": median_ms(read_t), "raw writes": median_ms(raw_t),
            "parse": median_ms(parse_t), "parse, cold": median_ms(cold_t),
            "host": median_ms(host_t),
            "desired": median_ms(desired_t), "plan": median_ms(plan_t),
            "register": median_ms(register_t), "report": median_ms(report_t),
            "no-op run": median_ms(noop_t)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        results = {size: measure(size, args.trials, Path(tmp)) for size in SIZES}
    names = list(results[SIZES[0]])
    print(f"Medians in ms over {args.trials} interleaved trials; entries: "
          + ", ".join(map(str, SIZES)))
    print(f"  {'':<12}" + "".join(f"{s:>10}" for s in SIZES) + f"{'1033/133':>10}")
    for name in names:
        row = [results[s][name] for s in SIZES]
        print(f"  {name:<12}" + "".join(f"{v:>10.3f}" for v in row) + f"{row[2] / row[1]:>9.1f}x")
    for s in SIZES:
        r = results[s]
        print(f"  at {s:>4}: no-op run / table read {r['no-op run'] / r['table read']:.1f}x, "
              f"register / raw writes {r['register'] / r['raw writes']:.1f}x")


if __name__ == "__main__":
    main()
