"""Shared fixtures: a private binfmt_misc instance, bus and journal, the foreign busybox binaries,
policy files, a way to start the daemon, the .deb; and the markers that say what a test needs."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.support.binfmt import PrivateBinfmt
from tests.support import fuzz
from tests.support.bus import PrivateBus
from tests.support.commands import DaemonStarter, PolicyWriter
from tests.support.daemon import DaemonProcess, start_daemon as start
from tests.support.journal import PrivateJournal
from tests.support.paths import BUSYBOX_CACHE, FOREIGN, REPO


def pytest_configure(config: pytest.Config) -> None:
    # Fuzzers: a few thousand examples in every run of the suite, a few dozen in the fast lane,
    # many more with MULTIARCH_LONG_TESTS=1 (tests/support/fuzz.py).
    fuzz.load(fuzz.lane_of(config.getoption("markexpr") or "",
                           bool(os.environ.get("MULTIARCH_LONG_TESTS"))))


# Fixtures that need root and real parts: a test using one is marked for them (pytest -m fast
# leaves it out; what is left runs as any user).
_KERNEL = {"binfmt", "start_daemon", "busybox", "bus", "trusted_dir",
           "dist"}  # dist: builds a wheel in the checkout
_SYSTEMD = {"journal", "deb", "container"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & _SYSTEMD or item.get_closest_marker("systemd"):
            item.add_marker(pytest.mark.systemd)
        elif used & _KERNEL or item.get_closest_marker("kernel"):
            item.add_marker(pytest.mark.kernel)
        elif not item.get_closest_marker("root") and not item.get_closest_marker("vm"):
            item.add_marker(pytest.mark.fast)


def _host_table() -> tuple[bool, list[str]]:
    """Whether the host's binfmt_misc is mounted, and its entries."""
    mounted = any(" /proc/sys/fs/binfmt_misc " in line
                  for line in Path("/proc/self/mountinfo").read_text().splitlines())
    names = sorted(os.listdir("/proc/sys/fs/binfmt_misc")) if mounted else []
    return mounted, names


@pytest.fixture(scope="session")
def runtime_dir() -> Iterator[Path]:
    """One runtime directory for the whole run, as one boot has (the native answer kept)."""
    with tempfile.TemporaryDirectory(prefix="multiarchd-run-") as path:
        yield Path(path)


@pytest.fixture(scope="session")
def state_dir() -> Iterator[Path]:
    """One state directory for the whole run (the files that carry a CPU model, made once):
    root's, under /var/lib as multiarchd's own, since a file under /tmp is never registered."""
    parent = "/var/lib" if os.geteuid() == 0 else None
    with tempfile.TemporaryDirectory(prefix="multiarchd-tests-", dir=parent) as path:
        os.chmod(path, 0o755)
        yield Path(path)


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, runtime_dir: Path, state_dir: Path,
              monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test keeps what multiarchd keeps (the boot record, verdicts, the files that carry
    a CPU model) in directories of its run, never the host's /var/cache, /var/lib or /run."""
    monkeypatch.setenv("CACHE_DIRECTORY", str(tmp_path / "cache"))
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(runtime_dir))
    monkeypatch.setenv("STATE_DIRECTORY", str(state_dir))


@pytest.fixture(scope="session", autouse=True)
def host_table_untouched() -> Iterator[None]:
    """A tripwire: the tests work on private tables only; the host's is as it was, not even
    mounted if it was not."""
    before = _host_table()
    yield
    assert _host_table() == before, "a test changed the host's binfmt_misc table or mount"


@pytest.fixture
def binfmt() -> Iterator[PrivateBinfmt]:
    """A fresh, empty binfmt_misc instance of our own; the host's table is never touched."""
    with PrivateBinfmt() as ns:
        yield ns


@pytest.fixture
def bus() -> Iterator[PrivateBus]:
    """A private system bus with the shipped multiarchd policy."""
    with PrivateBus() as b:
        yield b


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[PrivateJournal]:
    with PrivateJournal(tmp_path) as j:
        yield j


@pytest.fixture
def trusted_dir() -> Iterator[Path]:
    """A scratch directory only root can change, all the way up (under /var/lib, not /tmp):
    where a test's interpreters go, since multiarchd refuses any other."""
    path = Path(tempfile.mkdtemp(prefix="multiarchd-test-", dir="/var/lib"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def busybox() -> dict[str, Path]:
    """Debian arch -> the path of its static busybox, as dev/setup unpacked them."""
    found = {a: BUSYBOX_CACHE / a / "bin" / "busybox" for a in FOREIGN}
    missing = [a for a, p in found.items() if not p.is_file()]
    assert not missing, f"busybox-static for {missing} not in {BUSYBOX_CACHE}: run dev/setup"
    return found


@pytest.fixture
def policy(tmp_path: Path) -> PolicyWriter:
    """Write arches.yaml (and drop-ins as 'arches.d/NAME.yaml') into a fresh directory."""
    def write(text: str, name: str = "arches.yaml") -> Path:
        path = tmp_path / "etc" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return tmp_path / "etc" / "arches.yaml"
    return write


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[DaemonStarter]:
    """start_daemon(config, binfmt, *extra, bus=, journal=, inside=, env=, prefix=, ready=):
    a running multiarchd (see tests.support.daemon), stopped after the test."""
    with ExitStack() as stack:
        def starter(config: Path, binfmt: PrivateBinfmt | None = None, *extra: str | Path,
                    **how: Any) -> DaemonProcess:
            return stack.enter_context(start(tmp_path, config, binfmt, *extra, **how))
        yield starter


@pytest.fixture(scope="session")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The .deb, built once from this checkout by packaging/debian/build."""
    out = tmp_path_factory.mktemp("deb")
    r = subprocess.run([str(REPO / "packaging" / "debian" / "build"), str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    [path] = out.glob("multiarchd_*_all.deb")
    return path
