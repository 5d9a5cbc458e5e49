"""Faults and hostile input against the real kernel and a running daemon: what a hostile tester
tried, each with what it gets (README, "Bad input and faults")."""

from __future__ import annotations

import json
import os
import subprocess

from tests.support.binfmt import PrivateBinfmt
from tests.support.bus import PrivateBus
from tests.support.commands import DaemonStarter, PolicyWriter, run
from tests.support.paths import BIN

# Entries another tool could register: names and interpreters with bytes that are not UTF-8,
# control characters and line separators. The kernel takes them all.
HOSTILE = [b":foo:E::xyz::/tmp/\xff:", b":bar\x01baz:E::abc::/opt/a\x0bb \x85\xe2\x80\xa8:",
           b":\xc3\x28:E::zz\x1e::/usr/bin/x\ry:"]


def test_foreign_entries_with_any_bytes_are_read_shown_escaped_and_harm_nothing(
        binfmt: PrivateBinfmt, policy: PolicyWriter, bus: PrivateBus,
        start_daemon: DaemonStarter) -> None:
    for line in HOSTILE:
        fd = os.open(os.path.join(binfmt.path, "register"), os.O_WRONLY)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    path = policy("arches: {s390x: {}}\n")
    once = run("multiarchd", "--once", config=path, binfmt=binfmt)
    assert once.returncode == 0, once.stderr
    assert "foo  enabled  /tmp/\\xff" in once.stdout
    assert "bar\\x01baz  enabled  /opt/a\\x0bb \\x85\\u2028" in once.stdout
    assert "\\xc3(  enabled  /usr/bin/x\\ry" in once.stdout
    d = start_daemon(path, binfmt, bus=bus)
    since = d.mark()
    binfmt.write("multiarch-s390x", "-1")  # drift is still healed with them around
    d.wait_log("repaired multiarch-s390x", since)
    remote = subprocess.run([str(BIN / "multiarchctl"), "status", "--json"], capture_output=True,
                            text=True, env=dict(os.environ, **bus.env), timeout=60)
    assert remote.returncode == 0, remote.stderr
    foreign = {f["name"]: f["interpreter"] for f in json.loads(remote.stdout)["foreign"]}
    assert foreign == {"foo": "/tmp/\\xff", "bar\\x01baz": "/opt/a\\x0bb \\x85\\u2028",
                       "\\xc3(": "/usr/bin/x\\ry"}
