"""Shared fixtures: a private binfmt_misc instance, the foreign busybox binaries, policy files."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from daemonproc import DaemonProcess
from privatens import PrivateBinfmt

BUSYBOX_CACHE = Path(os.environ.get("MULTIARCH_DEV_CACHE", "/var/cache/multiarchd-dev")) / "busybox"
# Debian architecture -> what that busybox's `uname -m` prints under emulation.
FOREIGN = {"arm64": "aarch64", "armhf": "armv7l", "s390x": "s390x", "ppc64el": "ppc64le",
           "mips64el": "mips64"}
BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent
DEFAULT_POLICY = REPO / "config" / "arches.yaml"


@pytest.fixture
def binfmt() -> Iterator[PrivateBinfmt]:
    """A fresh, empty binfmt_misc instance of our own; the host's table is never touched."""
    ns = PrivateBinfmt()
    try:
        yield ns
    finally:
        ns.close()


@pytest.fixture(scope="session")
def busybox() -> dict[str, Path]:
    """Debian arch -> the path of its static busybox, as dev/setup unpacked them."""
    found = {a: BUSYBOX_CACHE / a / "bin" / "busybox" for a in FOREIGN}
    missing = [a for a, p in found.items() if not p.is_file()]
    assert not missing, f"busybox-static for {missing} not in {BUSYBOX_CACHE}: run dev/setup"
    return found


@pytest.fixture
def policy(tmp_path: Path) -> Callable[[str], Path]:
    """Write arches.yaml (and drop-ins as 'arches.d/NAME.yaml') into a fresh directory."""
    def write(text: str, name: str = "arches.yaml") -> Path:
        path = tmp_path / "etc" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return tmp_path / "etc" / "arches.yaml"
    return write


def run(cmd: str, *args: str | Path, binfmt: PrivateBinfmt | None = None,
        config: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run one of the installed commands as a user would, with --binfmt-dir pointed at ours."""
    argv: list[str | Path] = [BIN / cmd, *args]
    if config is not None:
        argv += ["--config", config]
    if binfmt is not None:
        argv += ["--binfmt-dir", binfmt.path]
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120)


def state_of(table: str, name: str) -> str | None:
    """The STATE column of NAME's row in a status table."""
    for line in table.splitlines():
        fields = line.split()
        if fields[:1] == [name]:
            return fields[1]
    return None


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Start `multiarchd` (no D-Bus) on a policy and a private table; wait for READY=1."""
    started: list[DaemonProcess] = []

    def start(config: Path, binfmt: PrivateBinfmt | None, *extra: str | Path,
              env: dict[str, str] | None = None, prefix: tuple[str, ...] = (),
              ready: bool = True) -> DaemonProcess:
        argv: list[str | Path] = [BIN / "multiarchd", "--config", config, "--no-dbus", *extra]
        if binfmt is not None:
            argv += ["--binfmt-dir", binfmt.path]
        d = DaemonProcess(argv, tmp_path, env, prefix)
        started.append(d)
        if ready:
            d.wait_notify("READY=1")
        return d

    yield start
    for d in started:
        d.stop()


@pytest.fixture(scope="session")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The .deb, built once from this checkout by packaging/debian/build."""
    out = tmp_path_factory.mktemp("deb")
    r = subprocess.run([str(REPO / "packaging" / "debian" / "build"), str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    [path] = out.glob("multiarchd_*_all.deb")
    return path
