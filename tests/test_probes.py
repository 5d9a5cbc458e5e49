"""Probe programs prove that each architecture executes: directly under Debian's qemu, through
binfmt_misc, and as multiarchctl test / the D-Bus Test method / the daemon report it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from multiarchd import __version__, identity
from multiarchd.catalog import load_catalog
from multiarchd.core.probes import PROBE_STATUS, build

from tests.support.binfmt import PrivateBinfmt
from tests.test_catalog import matching
from tests.support.bus import PrivateBus
from tests.support.commands import DaemonStarter, PolicyWriter, run, state_of
from tests.support.paths import BIN, DEFAULT_POLICY

CATALOG = load_catalog()
ARCHES = sorted(CATALOG.arches)


@pytest.fixture(scope="module")
def probes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("probes")
    d.chmod(0o755)
    out = {}
    for name in ARCHES:
        path = d / f"probe-{name}"
        path.write_bytes(build(CATALOG.arches[name]))
        path.chmod(0o755)
        out[name] = path
    return out


@pytest.mark.parametrize("arch", ARCHES)
def test_probe_is_matched_by_its_own_entry_only(arch: str) -> None:
    header = build(CATALOG.arches[arch])[:64]
    assert [a.name for a in matching(header)] == [arch]


@pytest.mark.parametrize("arch", ARCHES)
def test_probe_runs_directly_under_qemu(arch: str, probes: dict[str, Path]) -> None:
    r = subprocess.run([f"/usr/bin/qemu-{arch}-static", str(probes[arch])], capture_output=True,
                       timeout=60)
    assert r.returncode == PROBE_STATUS, r.stderr


def test_every_probe_runs_through_binfmt_misc(binfmt: PrivateBinfmt,
                                              probes: dict[str, Path]) -> None:
    assert run("multiarchd", "--once", config=DEFAULT_POLICY, binfmt=binfmt).returncode == 0
    failed = {}
    for arch, path in probes.items():
        r = binfmt.exec(str(path))
        if r.returncode != PROBE_STATUS:
            failed[arch] = (r.returncode, r.stderr)
    assert failed == {}


def ctl_inside(binfmt: PrivateBinfmt, *args: str) -> subprocess.CompletedProcess[str]:
    """multiarchctl run inside the namespace, where exec goes through the private table."""
    return binfmt.exec(str(BIN / "multiarchctl"), *args, "--config", str(DEFAULT_POLICY))


def test_multiarchctl_test_says_ok_for_every_managed_arch(binfmt: PrivateBinfmt) -> None:
    assert run("multiarchd", "--once", config=DEFAULT_POLICY, binfmt=binfmt).returncode == 0
    r = ctl_inside(binfmt, "test", "--json")
    assert r.returncode == 0, r.stderr
    results = {v["architecture"]: v["result"] for v in json.loads(r.stdout)}
    assert len(results) == 33 and set(results.values()) == {"ok"}
    table = ctl_inside(binfmt, "test", "s390x", "arm64")
    assert table.stdout.split() == ["ARCH", "RESULT", "MESSAGE", "s390x", "ok", "probe", "ran",
                                    "aarch64", "ok", "probe", "ran"]


def test_failures_are_said_in_words(binfmt: PrivateBinfmt, tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    crash = tmp_path / "crash"
    crash.write_text("#!/bin/sh\nkill -SEGV $$\n")
    crash.chmod(0o755)
    s390x = CATALOG.arches["s390x"]
    magic = "".join(f"\\x{b:02x}" for b in s390x.magic)
    mask = "".join(f"\\x{b:02x}" for b in s390x.mask)
    cases = [
        (None, "no binfmt_misc entry matches it (exec format error)"),
        (str(tmp_path / "gone"), "interpreter was not found"),
        ("/bin/false", "wrong exit status 1 (expected 42)"),
        (str(crash), "emulator crashed with signal 11 (SIGSEGV)"),
    ]
    for interpreter, words in cases:
        if interpreter:
            binfmt.write("register", f":multiarch-s390x:M::{magic}:{mask}:{interpreter}:")
        r = ctl_inside(binfmt, "test", "s390x", "--local")
        assert r.returncode == 1
        assert words in r.stdout, r.stdout
        if interpreter:
            binfmt.write("multiarch-s390x", "-1")
    # Stopped from outside (systemd's SIGTERM to the unit as the service stops): no crash.
    (tmp_path / "stopped").write_text("#!/bin/sh\nkill -TERM $$\n")
    (tmp_path / "stopped").chmod(0o755)
    binfmt.write("register", f":multiarch-s390x:M::{magic}:{mask}:{tmp_path}/stopped:")
    r = ctl_inside(binfmt, "test", "s390x", "--local")
    assert "untested" in r.stdout and "stopped by SIGTERM" in r.stdout, r.stdout
    assert "crashed" not in r.stdout


def test_unknown_arch_is_a_usage_error(binfmt: PrivateBinfmt) -> None:
    r = ctl_inside(binfmt, "test", "arm65")
    assert r.returncode == 2 and "did you mean 'arm64'" in r.stderr


@pytest.mark.kernel  # user namespaces with a binfmt_misc of their own (none in a chroot)
def test_native_detection_by_execution(probes: dict[str, Path]) -> None:
    r = run("multiarchctl", "arches", "--json")
    rows = {a["name"]: a for a in json.loads(r.stdout)["architectures"]}
    assert rows["x86_64"]["state"] == "native"
    assert "probe ran with an empty binfmt_misc table" in rows["x86_64"]["message"]
    # i386 is native exactly when this kernel runs IA-32 programs itself (IA-32 emulation);
    # asked in an empty table of our own, so no emulator can be what runs it.
    own = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                          "mount -t binfmt_misc b /proc/sys/fs/binfmt_misc && exec \"$0\"",
                          str(probes["i386"])], capture_output=True)
    ia32 = own.returncode == PROBE_STATUS
    assert (rows["i386"]["state"] == "native") is ia32
    assert rows["s390x"]["state"] != "native"


def test_daemon_verifies_after_a_change_and_says_verified(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter) -> None:
    path = policy("arches: {s390x: {}, arm64: {}}\n")
    d = start_daemon(path, binfmt, inside=True)
    # Ready as soon as the table is applied; the probes run after, off the main loop.
    assert next(m for m in d.messages if m.startswith("STATUS=")) == "STATUS=converged: 2 active"
    d.wait_notify("STATUS=converged: 2 active (2 verified)")
    since = d.mark()
    path.write_text("arches: {s390x: {}, arm64: {}, riscv64: {}}\n")
    d.wait_notify("STATUS=converged: 3 active (3 verified)", since)


def test_verification_can_be_turned_off(binfmt: PrivateBinfmt, policy: PolicyWriter,
                                        start_daemon: DaemonStarter) -> None:
    path = policy("verify: false\narches: {s390x: {}}\n")
    d = start_daemon(path, binfmt, inside=True)
    assert "STATUS=converged: 1 active" in d.messages


def test_dbus_test_method_and_verified_state(
        binfmt: PrivateBinfmt, policy: PolicyWriter, bus: PrivateBus,
        start_daemon: DaemonStarter) -> None:
    path = policy("arches: {s390x: {}, arm64: {}}\n")
    start_daemon(path, binfmt, inside=True, bus=bus)
    r = bus.busctl("--json=short", "call", "io.github.multiarchd1", "/io/github/multiarchd1",
                   "io.github.multiarchd1.Manager", "Test", "as", "0")
    assert r.returncode == 0, r.stderr
    [results] = json.loads(r.stdout)["data"]
    assert sorted(results) == [["aarch64", "ok", "probe ran"], ["s390x", "ok", "probe ran"]]
    status = subprocess.run([str(BIN / "multiarchctl"), "status"], capture_output=True,
                            text=True, env=dict(os.environ, **bus.env))
    assert state_of(status.stdout, "s390x") == "verified"


def test_busybox_applets_by_name_need_p(binfmt: PrivateBinfmt, policy: PolicyWriter,
                                        busybox: dict[str, Path], tmp_path: Path) -> None:
    applets = tmp_path / "applets"
    applets.mkdir()
    tmp_path.chmod(0o755)
    for name in ("uname", "echo"):
        (applets / name).symlink_to(busybox["arm64"])
    by_argv0 = ["bash", "-c", f'exec -a uname {busybox["arm64"]} -m']
    for flags, argv0_works in (("[F, P]", True), ("[F]", False)):
        r = run("multiarchd", "--once", config=policy(f"defaults: {{flags: {flags}}}\n"
                                                      "arches: {arm64: {}}\n"), binfmt=binfmt)
        assert r.returncode == 0, r.stderr
        # A symlink named for the applet: the kernel hands its path on, so this works either way.
        assert binfmt.exec(str(applets / "uname"), "-m").stdout.strip() == "aarch64"
        assert binfmt.exec(str(applets / "echo"), "hi").stdout.strip() == "hi"
        # The applet named by argv[0] alone, as `exec -a` and multi-call launchers do: only P
        # preserves it.
        out = binfmt.exec(*by_argv0)
        assert (out.stdout.strip() == "aarch64") is argv0_works, (flags, out)
    shutil.rmtree(applets)


NATIVE = "from multiarchd.host.native import native; n, why = native(); print(sorted(n or []))"


@pytest.mark.kernel  # runs the probes in a namespace of its own
def test_native_detection_is_kept_for_the_boot_and_only_a_trusted_answer_believed(
        tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    env = dict(os.environ, RUNTIME_DIRECTORY=str(run_dir))

    def ask() -> str:
        r = subprocess.run([str(BIN / "python"), "-c", NATIVE], env=env, capture_output=True,
                           text=True, check=True)
        return r.stdout.strip()
    found = ask()
    assert "x86_64" in found or "aarch64" in found, found
    kept = (run_dir / "native").read_text().split("\n")
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert kept[0] == f"{boot_id} {identity.kernel()} {__version__}"
    # The next run believes what was kept (shown by keeping something else) ...
    (run_dir / "native").write_text(f"{kept[0]}\ns390x\n")
    assert ask() == "['s390x']"
    # ... but not what anyone could have written, nor what another boot or version found.
    (run_dir / "native").chmod(0o666)
    assert ask() == found
    (run_dir / "native").write_text(f"another-boot {os.uname().release} {__version__}\ns390x\n")
    (run_dir / "native").chmod(0o644)
    assert ask() == found


def test_a_verdict_is_kept_for_the_next_start_while_the_interpreter_file_is_the_same(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter,
        trusted_dir: Path) -> None:
    emu = trusted_dir / "qemu-s390x-static"
    shutil.copy("/usr/bin/qemu-s390x-static", emu)
    path = policy(f"arches:\n  s390x: {{interpreter: {emu}}}\n  arm64: {{}}\n")
    d = start_daemon(path, binfmt, inside=True)
    d.wait_notify("STATUS=converged: 2 active (2 verified)")
    assert d.stop() == 0
    # Started again: proven at once, no probe run (the first status after the first run says
    # so already; the one before it is the boot record's, said while the rest starts).
    d = start_daemon(path, binfmt, inside=True)

    def statuses() -> list[str]:
        return [m for m in d.messages if m.startswith("STATUS=") and not m.endswith("; starting")]
    d.wait_until(lambda: bool(statuses()), "a status after the first run")
    assert statuses()[0] == "STATUS=converged: 2 active (2 verified)"
    assert d.stop() == 0
    # The interpreter file changed (another mtime): that one is tried (off the loop: held
    # meanwhile) and probed again.
    os.utime(emu, ns=(1, 1))
    d = start_daemon(path, binfmt, inside=True)
    assert next(m for m in d.messages if m.startswith("STATUS=")) == \
        "STATUS=degraded: 1 active (1 verified), 1 held"
    d.wait_notify("STATUS=converged: 2 active (2 verified)")
