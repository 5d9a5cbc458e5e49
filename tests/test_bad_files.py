"""A corpus of bad policy files (every BAD case, every typo that once wiped the table, the
hostile bulk, and YAML scalars that once raised, each in several places), each as the main file
and as a drop-in, through `check-config`, `--once` and a running daemon: never a traceback or a
hang, a problem always with its place, and no entry removed that the policy does not remove
without its problem."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from bench.bad_input import TEXTS
from tests.support.binfmt import PrivateBinfmt
from tests.support.commands import DaemonStarter, PolicyWriter, run
from tests.test_fuzz_policy import PLACES
from tests.test_policy import BAD
from tests.test_trust import TYPOS

VALUES = ["9" * 4301, "2023-02-30", "2024-13-01", "0000-01-01", "!!int x", "!!float x",
          "!!bool maybe", "!!float", "!!int", "!!timestamp 2024-99-99", "!!binary ~~~",
          "'\\x'", '"\\ud800"', "*nope", "&a [*a]", "[", "{", "}", "-", "? x", "|", ">",
          "!!str", "!!null x", "0x", "0o9", "1e999999", ".nan", "~", "-.inf",
          "2001-12-14t21:59:43.10-05:00"]
CORPUS = [text for text, *_ in BAD] + TYPOS + list(TEXTS.values()) + \
    [place.format(v=v) for place in PLACES for v in VALUES]
PLACE = re.compile(r"^/\S+?(:\d+:\d+)?: ", re.M)  # (a file-wide problem: the file alone)
assert len(CORPUS) >= 259


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize("role", ["main", "drop-in"])
def test_check_config_and_once_on_every_bad_file(binfmt: PrivateBinfmt, policy: PolicyWriter,
                                                 role: str) -> None:
    main = policy("arches: all\n")
    assert run("multiarchd", "--once", binfmt=binfmt, config=main).returncode == 0
    before = {n: Path(binfmt.path, n).stat().st_ino for n in binfmt.names()}
    target = main if role == "main" else main.parent / "arches.d" / "50-bad.yaml"
    for text in CORPUS:
        _write(target, text)
        checked = run("multiarchctl", "check-config", config=main)
        applied = run("multiarchd", "--once", binfmt=binfmt, config=main)
        for r in (checked, applied):
            said = r.stdout + r.stderr
            assert "Traceback" not in said and r.returncode in (0, 1, 2), (text[:80], said)
            if r.returncode == 2:
                assert PLACE.search(said), (text[:80], said)
        after = {n: Path(binfmt.path, n).stat().st_ino for n in binfmt.names()}
        if applied.returncode == 2:  # a problem: nothing that was there is gone
            assert before.keys() <= after.keys(), (text[:80], before.keys() - after.keys())
        if role == "drop-in":
            target.unlink()
        _write(main, "arches: all\n")
        if after != before:  # (a policy without problems changed it: put it back)
            assert run("multiarchd", "--once", binfmt=binfmt, config=main).returncode == 0
            before = {n: Path(binfmt.path, n).stat().st_ino for n in binfmt.names()}


@pytest.mark.parametrize("role", ["main", "drop-in"])
def test_a_running_daemon_survives_every_bad_file(binfmt: PrivateBinfmt, policy: PolicyWriter,
                                                  start_daemon: DaemonStarter,
                                                  role: str) -> None:
    main = policy("arches: all\n")
    d = start_daemon(main, binfmt)
    count = len(binfmt.names())
    target = main if role == "main" else main.parent / "arches.d" / "50-bad.yaml"
    for text in CORPUS:
        since = d.mark()
        _write(target, text)
        d.signal(signal.SIGHUP)  # a run through the trigger, READY=1 after it
        d.wait_notify("READY=1", since)
        assert not any("Traceback" in line for line in d.lines[since[0]:]), text[:80]
        assert d.proc.poll() is None
    since = d.mark()
    if role == "drop-in":
        target.unlink()
    _write(main, "arches: all\n")
    d.signal(signal.SIGHUP)
    d.wait_notify("READY=1", since)
    assert len(binfmt.names()) == count and d.messages[-1].startswith("STATUS=converged")
