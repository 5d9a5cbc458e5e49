#!/usr/bin/env python3
"""What `multiarchd --once` imports: every module loaded by the time it exits, in all and of
multiarchd's own, and whether PyYAML is among them; once replaying the boot record (as every
boot after the first), once as a full run (no record: the first boot, or something changed).

Each run is in a fresh private binfmt_misc instance, with the shipped policy.

Usage: .venv/bin/python -m bench.imports
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from tests.support.binfmt import PrivateBinfmt
from tests.support.paths import DEFAULT_POLICY

# Run as the service's --once runs, then say what was loaded on a descriptor of its own.
COUNT = """
import json, os, sys
from multiarchd.cli.multiarchd import main
fd = int(sys.argv.pop(1))
sys.argv[0] = "multiarchd"
try:
    main()
except SystemExit:
    pass
mods = list(sys.modules)
os.write(fd, json.dumps([len(mods), sum(m.startswith("multiarchd") for m in mods),
                         "yaml" in mods]).encode())
"""


def loaded(cache: str) -> tuple[int, int, bool]:
    with PrivateBinfmt() as ns:
        read, write = os.pipe()
        env = dict(os.environ, CACHE_DIRECTORY=cache, RUNTIME_DIRECTORY=f"{cache}-run")
        subprocess.run(ns.enter(sys.executable, "-c", COUNT, str(write), "--once", "--config",
                                str(DEFAULT_POLICY)), env=env, pass_fds=(write,),
                       capture_output=True, check=True, timeout=120)
        os.close(write)
        with os.fdopen(read) as f:
            every, ours, yaml = json.load(f)
    return every, ours, yaml


def main() -> None:
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:  # (root's, as the cache must be)
        full = loaded(f"{tmp}/cache")  # no record yet: a full run, which keeps one
        replay = loaded(f"{tmp}/cache")
    for name, (every, ours, yaml) in (("replaying the boot record", replay),
                                      ("full run", full)):
        print(f"--once, {name:26} {every:4} modules, {ours:3} of multiarchd"
              f"{', PyYAML' if yaml else ''}")


if __name__ == "__main__":
    main()
