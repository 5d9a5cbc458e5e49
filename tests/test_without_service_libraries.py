"""The one-shot paths need none of the service's libraries: `multiarchd --once` and multiarchctl's
check-config, plan, status --local, arches and cat-config work with gi (PyGObject), pydbus,
systemd-python and watchdog hidden, as on a minimal or container install without them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.binfmt import PrivateBinfmt
from tests.support.paths import DEFAULT_POLICY

HIDDEN = ("gi", "pydbus", "systemd", "watchdog")
# Runs a command's main() with those libraries made unimportable, then says which of them (or
# anything under them) got imported anyway.
_RUN_HIDDEN = f"""
import importlib, sys
class Hidden:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {HIDDEN!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (hidden)", name=name)
sys.meta_path.insert(0, Hidden())
module, argv = sys.argv[1], sys.argv[2:]
try:
    code = importlib.import_module(module).main(argv)
finally:
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in {HIDDEN!r})
    print("imported:", leaked, file=sys.stderr)
sys.exit(code)
"""


def hidden(command: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    module = {"multiarchd": "multiarchd.cli.multiarchd",
              "multiarchctl": "multiarchd.cli.multiarchctl"}[command]
    return subprocess.run([sys.executable, "-c", _RUN_HIDDEN, module, *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_once_and_every_local_verb_run_without_the_service_libraries(
        binfmt: PrivateBinfmt) -> None:
    where = ("--config", DEFAULT_POLICY, "--binfmt-dir", binfmt.path)
    once = hidden("multiarchd", "--once", "--log-target", "auto", *where)
    assert once.returncode == 0, once.stderr
    assert "converged: 33 active" in once.stdout
    for verb in (("check-config",), ("plan",), ("status", "--local"), ("arches",),
                 ("cat-config",), ("plan", "--json"), ("status", "--local", "--json")):
        r = hidden("multiarchctl", *verb, *where)
        assert r.returncode == 0, (verb, r.stderr)
        assert r.stdout and "imported: []" in r.stderr, (verb, r.stderr)
    assert "imported: []" in once.stderr
