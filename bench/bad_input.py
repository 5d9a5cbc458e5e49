#!/usr/bin/env python3
"""How long multiarchd takes to refuse each kind of hostile policy file, up to the 1 MiB size
limit, against reading the shipped default policy in the same run (the anchor). A refusal
should cost about what reading a policy costs, and never block: each is well under 100 ms.

Usage: .venv/bin/python -m bench.bad_input [--trials 20]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from multiarchd.catalog import load_catalog
from multiarchd.policy.files import load_policy

from bench.stats import median, trials
from tests.support.paths import DEFAULT_POLICY

BOMB = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8))
TEXTS = {
    "a megabyte of comments": "# " + "x" * 1_000_000 + "\n",
    "100,000 keys": "".join(f"k{i}: v\n" for i in range(100_000)),
    "5,000 unknown architectures": "arches: {" + ", ".join(f"arm{i}: {{}}" for i in range(5000))
                                   + "}\n",
    "an alias bomb (9^9 values)": BOMB,
    "10,000 levels of nesting": "arches: " + "[" * 10_000 + "\n",
    "NUL bytes": "arches: all\n" + "\0" * 100_000,
    "over 1 MiB": "arches: all\n" + "#" * (1 << 20),
}


def median_ms(fn: Callable[[], object], count: int) -> float:
    return median(trials(fn, count)) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    catalog = load_catalog()
    tmp = Path(tempfile.mkdtemp(prefix="multiarchd-bench-"))
    files: dict[str, Path] = {}
    for name, text in TEXTS.items():
        files[name] = tmp / f"{len(files)}.yaml"
        files[name].write_text(text)
    os.mkfifo(tmp / "fifo.yaml")
    files["a FIFO"] = tmp / "fifo.yaml"
    (tmp / "zero.yaml").symlink_to("/dev/zero")
    files["a symlink to /dev/zero"] = tmp / "zero.yaml"
    anchor = median_ms(lambda: load_policy(str(DEFAULT_POLICY), catalog), args.trials)
    print(f"{'policy file':34} {'median':>10} {'ratio':>8}   (medians of {args.trials})")
    print(f"{'the shipped default (anchor)':34} {anchor:8.2f} ms")
    for name, path in files.items():
        ms = median_ms(lambda: load_policy(str(path), catalog), args.trials)
        assert load_policy(str(path), catalog).rejected, name
        print(f"{name:34} {ms:8.2f} ms {ms / anchor:7.1f}x")


if __name__ == "__main__":
    main()
