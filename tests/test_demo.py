"""dev/demo as a newcomer runs it: the foreign busyboxes run, and nothing is written outside
the demo's scratch directory (not /var/lib/multiarchd, /var/cache/multiarchd, /run/multiarchd,
nor anything else under /var/lib, /var/cache, /run or the temporary directories)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

from tests.support.paths import BUSYBOXES, DEV_CACHE, REPO

# Where a run of the daemon or anyone else could leave a file. In the test's own mount
# namespace each is an empty tmpfs (the dev cache, which the demo reads, bound back in), so
# whatever the demo writes there stays there to be seen, and the host's never change.
WATCHED = ("/var/lib", "/var/cache", "/run", "/tmp", "/var/tmp")


def _isolated(command: str) -> str:
    """A shell script: each WATCHED directory an empty tmpfs, the dev cache bound back, then
    `command`, then every file left in a watched directory listed after a marker line."""
    dev = shlex.quote(str(DEV_CACHE))
    lines = ["set -e", "mount -n -t tmpfs -o mode=0755 demo-check /run",
             f"mkdir /run/dev-cache && mount -n --bind {dev} /run/dev-cache"]
    for d in WATCHED[:-2]:
        if d != "/run":
            lines.append(f"mount -n -t tmpfs -o mode=0755 demo-check {d}")
    lines += [f"mount -n -t tmpfs -o mode=1777 demo-check {d}" for d in WATCHED[-2:]]
    lines += [f"mkdir -p {dev} && mount -n --move /run/dev-cache {dev} && rmdir /run/dev-cache",
              f"{command} || echo \"demo failed: $?\"", "echo '--- left behind:'",
              f"find {' '.join(WATCHED)} -xdev -mindepth 1 -not -path {dev}"]
    return "\n".join(lines)


def test_the_demo_runs_the_foreign_busyboxes_and_writes_only_its_scratch(
        busybox: dict[str, Path]) -> None:
    assert str(DEV_CACHE).startswith("/var/cache/"), "the check binds the dev cache back there"
    # as a newcomer's shell: none of the directories the tests give multiarchd
    env = {k: v for k, v in os.environ.items()
           if k not in ("STATE_DIRECTORY", "CACHE_DIRECTORY", "RUNTIME_DIRECTORY")}
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                        _isolated(f"{shlex.quote(str(REPO / 'dev' / 'demo'))} --no-setup")],
                       capture_output=True, text=True, timeout=600, env=env)
    out, left = r.stdout.split("--- left behind:\n")
    assert "demo failed" not in out and r.returncode == 0, (r.stdout, r.stderr)
    # Every directory but the dev cache itself (a mount point of the check) is as it was:
    # empty, and nothing under /var/lib/multiarchd, /var/cache/multiarchd, /run/multiarchd.
    parents = {str(p) for p in DEV_CACHE.parents}
    assert [f for f in left.splitlines() if f not in parents] == [], left
    [scratch] = re.findall(r"multiarchd keeps its files in (\S+)", out)
    assert Path(scratch).parent == DEV_CACHE and not Path(scratch).exists()  # removed
    assert f"via {scratch}/state/cpu/aarch64 (QEMU with -cpu max,pauth-impdef=on)" in out
    ran = dict(re.findall(r"^  (\S+) +busybox uname -m  ->  (\S+)$", out, re.MULTILINE))
    host = os.uname().machine
    assert ran == {b.dir: b.uname if b.arch not in ("x86_64", "i386") else host
                   for b in BUSYBOXES.values()}, out


def test_every_busybox_is_pinned_to_its_debian_architecture_and_release() -> None:
    """dev/foreign-busybox.sha256 pins one .deb for each line of dev/foreign-busybox, of that
    Debian architecture and release (bookworm's busybox 1.35, trixie's 1.37), and a .deb the
    cache holds is the pinned file."""
    import hashlib
    pins = {d: (s, p) for d, s, p in (
        line.split() for line in (REPO / "dev" / "foreign-busybox.sha256").read_text()
        .splitlines() if line.strip() and not line.startswith("#"))}
    assert pins.keys() == BUSYBOXES.keys()
    for b in BUSYBOXES.values():
        sha, path = pins[b.dir]
        assert re.fullmatch(r"[0-9a-f]{64}", sha) and path.endswith(f"_{b.debian}.deb"), path
        assert path.startswith("pool/main/b/busybox/busybox-static_") and \
            ("1.35.0" in path) == (b.release == "bookworm"), path
        # (apt names its download with the epoch, 1%3a1.35.0-...; the pool without)
        for cached in (DEV_CACHE / "debs" / b.release).glob(f"busybox-static_*_{b.debian}.deb"):
            assert hashlib.sha256(cached.read_bytes()).hexdigest() == sha, cached
