"""One answer per verb: multiarchctl says the same (text, --json document, exit code) whether it
asked the running daemon over D-Bus or worked --local on the same policy and table.

What only the daemon knows is the exception: while the policy file is rejected, the daemon keeps
the last good policy in force and shows it; a local run has no last good policy to show."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.binfmt import PrivateBinfmt
from tests.support.bus import PrivateBus
from tests.support.commands import DaemonStarter, PolicyWriter
from tests.support.daemon import DaemonProcess
from tests.support.paths import BIN

# A foreign entry registered after ours takes aarch64 binaries: foreign entries, an overlap and a
# shadowed state are in every answer.
FOREIGN = (":qemu-aarch64:M::\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
           "\\x02\\x00\\xb7\\x00:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff"
           "\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:/usr/bin/qemu-aarch64-static:F")
POLICIES = {
    "converged-with-a-foreign-entry": "arches:\n  all: {}\n  s390x: false\n  arm64: {}\n"
                                      "custom:\n  - {name: dos, extension: exe, "
                                      "interpreter: /usr/bin/true}\n",
    "one-bad-architecture": "arches:\n  s390x: {}\n  arm65: {}\n",
    "rejected": "arches: all\ndefaults: {flags: [Q]}\n",
}
VERBS = [("status",), ("status", "--json"), ("status", "--all"), ("plan",), ("plan", "--json"),
         ("apply",), ("apply", "--json"), ("test", "s390x"), ("test", "--json"),
         ("test", "arm65")]


def ctl(bus: PrivateBus, *args: str, runtime: str | None = None) -> tuple[int, str, str]:
    extra = {"RUNTIME_DIRECTORY": runtime} if runtime else {}
    r = subprocess.run([str(BIN / "multiarchctl"), *args], capture_output=True, text=True,
                       env=dict(os.environ, **bus.env, **extra), timeout=120)
    return r.returncode, r.stdout, r.stderr


@pytest.mark.parametrize("case", POLICIES)
def test_every_verb_answers_the_same_over_dbus_and_locally(
        case: str, binfmt: PrivateBinfmt, bus: PrivateBus, policy: PolicyWriter,
        start_daemon: DaemonStarter) -> None:
    path = policy(POLICIES["converged-with-a-foreign-entry"])
    d: DaemonProcess = start_daemon(path, binfmt, bus=bus)
    since = d.mark()
    binfmt.write("register", FOREIGN)
    d.wait_notify("STATUS=degraded", since)  # the daemon saw the foreign entry
    if POLICIES[case] != path.read_text():
        since = d.mark()
        path.write_text(POLICIES[case])
        d.wait_notify("STATUS=", since)  # and applied (or rejected) the policy
    local = ("--local", "--config", str(path), "--binfmt-dir", binfmt.path)
    # The daemon's runtime directory, as one host has one: where whoever registers keeps which
    # file the kernel opened (a local run that cannot see it rightly says it is not known).
    environ = (Path(f"/proc/{d.proc.pid}/environ").read_bytes().split(b"\0"))
    runtime = next(e.split(b"=", 1)[1].decode() for e in environ
                   if e.startswith(b"RUNTIME_DIRECTORY="))
    for verb in VERBS:
        remote = ctl(bus, *verb)
        here = ctl(bus, *verb, *local, runtime=runtime)
        if case == "rejected" and verb[0] in ("status", "apply"):
            problem = "unknown flag 'Q'"
            assert remote[0] == here[0] == 2 and problem in here[1] + here[2], (verb, here)
            assert problem in remote[1] + remote[2], (verb, remote)
            continue
        assert remote == here, (case, verb)
    code, out, _ = ctl(bus, "status")
    assert code == {"converged-with-a-foreign-entry": 1, "one-bad-architecture": 2,
                    "rejected": 2}[case]
    if case == "converged-with-a-foreign-entry":
        assert "qemu-aarch64  enabled" in out and "overlaps multiarch-aarch64" in out
        assert "shadowed" in out
    if case == "rejected":  # the last good policy stays in force, and shows
        assert "policy-error: 32 active, 1 shadowed" in out and "s390x" in out
    if case == "one-bad-architecture":
        assert f"{path}:3:3: unknown architecture 'arm65' (did you mean 'arm64'?)" in out
