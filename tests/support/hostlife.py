"""A host's life in a booted container (tests/test_host_life.py): the two real qemu-user-static
packages dev/setup keeps, what an admin types, foreign programs looping while packages change,
which file the kernel runs for each entry against what status says, and the replaces each
package operation made."""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multiarchd.core.messages import Event

from .closing import Closing
from .nspawn import BootedContainer
from .paths import BUSYBOXES, QEMU_DEBS

INSIDE = (Path(__file__).parent / "inside.py").read_text()
# An admin's shell: Debian's commands (not a virtualenv's, which the overlay also shows), no
# questions from debconf.
ADMIN_ENV = ["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
             "DEBIAN_FRONTEND=noninteractive"]
# The foreign programs: bookworm's busyboxes of the architectures an x86_64 host does not run
# itself, as [entry, path, what `uname -m` prints] (their paths are the same inside: the
# container's root is an overlay of the host's).
PROGRAMS = [[f"multiarch-{b.arch}", str(b.path), b.uname] for b in BUSYBOXES.values()
            if b.release == "bookworm" and b.arch not in ("x86_64", "i386")]
CHANGES = {Event.REGISTERED.message_id, Event.REPLACED.message_id,
           Event.DRIFT_REPAIRED.message_id}


@dataclass(frozen=True)
class Package:
    path: Path
    version: str


def qemu_packages() -> tuple[Package, Package]:
    """The older and the newer of the qemu-user-static .debs dev/setup downloads."""
    found = [Package(p, subprocess.run(["dpkg-deb", "-f", str(p), "Version"], check=True,
                                       capture_output=True, text=True).stdout.strip())
             for p in sorted(QEMU_DEBS.glob("qemu-user-static_*.deb"))]
    assert len({p.version for p in found}) >= 2, \
        f"two versions of qemu-user-static needed in {QEMU_DEBS}, found {found}: run dev/setup"
    old, new = found[0], found[0]
    for p in found[1:]:
        old = p if _older(p.version, old.version) else old
        new = new if _older(p.version, new.version) else p
    return old, new


def _older(a: str, b: str) -> bool:
    return subprocess.run(["dpkg", "--compare-versions", a, "lt", b]).returncode == 0


def admin(c: BootedContainer, *argv: str, timeout: float = 300
          ) -> subprocess.CompletedProcess[str]:
    return c.run(*ADMIN_ENV, *argv, timeout=timeout)


def apt(c: BootedContainer, *argv: str) -> subprocess.CompletedProcess[str]:
    """`apt-get -y ARGV` as on a host without a network: no sources, so that it takes a local
    .deb as it is (with the machine's sources it fetches the same version from the mirror
    instead, and waits for a network the container does not have) and reads no lists."""
    return admin(c, "apt-get", "-o", "Dir::Etc::sourcelist=/dev/null", "-o",
                 "Dir::Etc::sourceparts=-", "-y", *argv)


def installed(c: BootedContainer, package: str) -> str:
    """The version of `package` installed in the container ("" when none is)."""
    said = c.run(*ADMIN_ENV, "dpkg-query", "-W", "-f", "${db:Status-Abbrev}${Version}",
                 package, check=False).stdout
    return said.removeprefix("ii ") if said.startswith("ii ") else ""


def inside(c: BootedContainer, *args: str) -> Any:
    return json.loads(c.run(*ADMIN_ENV, "python3", "-c", INSIDE, *args).stdout)


class ForeignLoops(Closing):
    """Loops inside the container run every foreign program's `uname -m` in turn, each
    starting at another architecture, until closed; then `runs`, `failed` and `first` say how
    many ran, how many failed and how the first failures did."""

    STOP = "/root/stop-foreign-loops"

    def __init__(self, c: BootedContainer, loops: int = 2) -> None:
        self.stop = c.merged / self.STOP.lstrip("/")
        self.stop.unlink(missing_ok=True)
        self.procs = [c.popen(*ADMIN_ENV, "python3", "-c", INSIDE, "loop", self.STOP,
                              json.dumps(PROGRAMS[i:] + PROGRAMS[:i])) for i in range(loops)]
        self.runs, self.failed = 0, 0
        self.first: list[str] = []

    def close(self) -> None:
        self.stop.touch()
        for p in self.procs:
            out, _ = p.communicate(timeout=120)
            assert p.returncode == 0, f"a foreign loop ended with {p.returncode}: {out}"
            counts = json.loads(out)
            self.runs += counts["runs"]
            self.failed += counts["failed"]
            self.first += counts["first"]
        self.procs = []


def statuses(c: BootedContainer, *local: str) -> dict[str, tuple[str, str]]:
    """entry -> (state, message), as `multiarchctl status` says (the daemon's, or with
    "--local" a run of its own)."""
    r = c.run(*ADMIN_ENV, "multiarchctl", "status", "--json", *local, check=False)
    assert r.stdout, f"multiarchctl status {' '.join(local)} said nothing: {r.stderr}"
    return {a["entry"]: (a["state"], a["message"]) for a in json.loads(r.stdout)["architectures"]}


def _exes(c: BootedContainer) -> dict[str, Any]:
    return dict(inside(c, "exes", json.dumps(PROGRAMS)))


def _stale(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The entries whose new processes ran the same file, not the one at its path, both
    before and after: the kernel ran it all the while in between (one change per entry at a
    time: a replace cannot come and be undone between two looks)."""
    return {e: ran for e, ran in after.items()
            if "error" in ran or (not ran["current"] and ran["file"] == before[e].get("file"))}


def _wrong(c: BootedContainer, seen: dict[str, Any], at: float) -> list[str]:
    """What is not as it must be, given what new foreign processes ran `at` seconds after:
    an entry whose process ran another file than the one at its path, unless the daemon holds
    it; status (the daemon's, --local) saying verified or active for such an entry. Each status
    is judged against the entries that ran the same stale file before and after it was asked
    (a status call can take seconds, and the daemon may replace an entry meanwhile)."""
    daemon = statuses(c)
    between = _exes(c)
    local = statuses(c, "--local")
    last = _exes(c)
    wrong = []
    for entry, ran in _stale(seen, between).items():
        said = daemon.get(entry, ("absent", ""))
        if "error" in ran or said[0] != "held":
            wrong.append(f"{entry}: pid {ran.get('pid')} ran {ran.get('exe', ran.get('error'))}"
                         f", not the file at its path, {at:.1f} s after and again after "
                         f"multiarchctl status said {said[0]} ({said[1]})")
    for entry, ran in _stale(between, last).items():
        said = local.get(entry, ("absent", ""))
        if "error" in ran or said[0] in ("verified", "active"):
            wrong.append(f"{entry}: pid {ran.get('pid')} ran {ran.get('exe', ran.get('error'))}"
                         f", not the file at its path, before and after multiarchctl status "
                         f"--local said {said[0]} ({said[1]})")
    return wrong


def check_kernel_files(c: BootedContainer, when: str, since: float, bound: float = 3.0) -> None:
    """Within `bound` seconds of `since` (time.monotonic()), a new foreign process of every
    entry runs the file now at its interpreter path, or the daemon says the entry is held; and
    status never says verified or active while the kernel runs another file. Looked at again
    until every process runs its current file; the first look at or after the bound decides
    (status is asked then)."""
    while True:
        seen = _exes(c)
        at = time.monotonic() - since
        if all(ran.get("current") for ran in seen.values()):
            return
        if at >= bound:
            wrong = _wrong(c, seen, at)
            assert not wrong, f"{when}:\n  " + "\n  ".join(wrong)
            return


def settle(c: BootedContainer, timeout: float = 300) -> None:
    """Wait (bounded) until the daemon has done with what changed: no entry held or pending
    (trying every new file of a package takes a while). The next package operation begins
    then, so that the replaces of each are its own."""
    deadline = time.monotonic() + timeout
    while True:
        busy = {e: s for e, s in statuses(c).items() if s[0] in ("held", "pending")}
        if not busy:
            return
        assert time.monotonic() < deadline, f"still held or pending after {timeout} s: {busy}"


def changes(c: BootedContainer, windows: dict[str, tuple[int, int]]
            ) -> dict[str, dict[str, list[str]]]:
    """For each named window [start, end) of realtime microseconds: entry -> what multiarchd
    said each time it put a file in (registered, replaced or repaired it), from its structured
    journal messages (both units, this boot)."""
    lines = c.run("journalctl", "-b", "-o", "json", "-u", "multiarchd", "-u",
                  "multiarchd-early").stdout.splitlines()
    made = [m for m in map(json.loads, lines) if m.get("MESSAGE_ID") in CHANGES
            and m.get("MULTIARCH_ACTION") in ("register", "replace")]
    found: dict[str, dict[str, list[str]]] = {}
    for name, (start, end) in windows.items():
        found[name] = {}
        for m in made:
            if start <= int(m["__REALTIME_TIMESTAMP"]) < end:
                found[name].setdefault(m["MULTIARCH_ENTRY"], []).append(m["MESSAGE"])
    return found


def now_us() -> int:
    """The realtime clock in microseconds, as the journal stamps messages (the container's
    clock is the host's)."""
    return time.time_ns() // 1000
