"""An emulator upgrade never breaks what worked: a new interpreter file is tried on its
architecture's probe, in a binfmt_misc table of its own, before it replaces the one an entry
runs (core/gate.py). Each case renames a file over a working QEMU, as dpkg does, while two
loops run the foreign busybox the whole time."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import loops
from tests.support.binfmt import PrivateBinfmt
from tests.support.bus import PrivateBus
from tests.support.commands import DaemonStarter, PolicyWriter, state_of
from tests.support.paths import BIN, BUSYBOX_CACHE

QEMU = Path("/usr/bin/qemu-s390x-static")
NEWER = BUSYBOX_CACHE.parent / "trixie-qemu" / "qemu-s390x"  # Debian 13's (dev/setup)


def _bad(kind: str, where: Path) -> Path:
    """A file that is no working s390x emulator."""
    path = where / f"bad-{kind}"
    if kind == "segfaults":
        source = where / "segv.c"
        source.write_text("int main(void) { return *(volatile int *)0; }\n")
        subprocess.run(["gcc", "-static", "-O0", "-o", str(path), str(source)], check=True)
    elif kind == "hangs":
        path.write_text("#!/bin/sh\nexec sleep 1000\n")
    else:  # prints another architecture, and exits as if all went well
        path.write_text("#!/bin/sh\necho x86_64\n")
    path.chmod(0o755)
    return path


def _rename_over(new: Path, path: Path) -> None:
    staged = path.with_name(path.name + ".dpkg-new")
    shutil.copy(new, staged)
    os.replace(staged, path)


@pytest.mark.parametrize("kind", ["segfaults", "prints another architecture", "hangs"])
def test_a_broken_upgrade_is_held_and_nothing_fails(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter,
        trusted_dir: Path, busybox: dict[str, Path], tmp_path: Path, kind: str) -> None:
    emu = _emulator(trusted_dir)
    d = start_daemon(policy(f"arches:\n  s390x: {{interpreter: {emu}}}\n"), binfmt)
    bad = _bad(kind, tmp_path)
    with loops.running(binfmt, busybox["s390x"], "s390x", tmp_path) as counts:
        since = d.mark()
        _rename_over(bad, emu)
        said = d.wait_log(r"multiarch-s390x held: the new .* failed its probe", since,
                          timeout=60)  # (a hung file is given 20 s)
        # and the kernel still runs the QEMU it opened at registration
        assert binfmt.exec(str(busybox["s390x"]), "uname", "-m").stdout == "s390x\n"
        assert _interpreter_of(binfmt, busybox["s390x"], "31.03") == f"{emu} (deleted)"
    assert all(n > 0 and wrong == 0 for n, wrong in counts), counts
    print(said)
    assert "multiarch-s390x" in binfmt.names()

    # The next change to the file is tried again: a good QEMU is taken, with no failed run.
    with loops.running(binfmt, busybox["s390x"], "s390x", tmp_path) as counts:
        since = d.mark()
        _rename_over(QEMU, emu)
        d.wait_log(r"replaced multiarch-s390x: .* was replaced on disk", since)
    assert all(n > 0 and wrong == 0 for n, wrong in counts), counts


def _interpreter_of(binfmt: PrivateBinfmt, busybox: Path, token: str) -> str:
    """Which file the kernel runs for a foreign program started now: /proc/PID/exe of its
    process is the interpreter the entry opened (" (deleted)" once another file took the
    path)."""
    proc = subprocess.Popen(binfmt.enter(str(busybox), "sleep", token))
    try:
        for _ in range(1000):
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    if token.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                        exe = os.readlink(f"/proc/{pid}/exe")
                        if "sleep" not in exe and "nsenter" not in exe:
                            return exe
                except OSError:
                    continue
        raise AssertionError(f"no process with {token} found")
    finally:
        proc.kill()
        proc.wait()


def test_a_newer_good_qemu_is_taken_with_no_failed_exec(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter,
        trusted_dir: Path, busybox: dict[str, Path], tmp_path: Path) -> None:
    emu = _emulator(trusted_dir)
    d = start_daemon(policy(f"arches:\n  s390x: {{interpreter: {emu}}}\n"), binfmt)
    assert _interpreter_of(binfmt, busybox["s390x"], "31.01") == str(emu)
    with loops.running(binfmt, busybox["s390x"], "s390x", tmp_path) as counts:
        since = d.mark()
        _rename_over(NEWER, emu)
        d.wait_log(r"replaced multiarch-s390x: .* was replaced on disk", since)
    assert all(n > 0 and wrong == 0 for n, wrong in counts), counts
    # The kernel now runs the new file (the one it opened before would show as deleted).
    assert _interpreter_of(binfmt, busybox["s390x"], "31.02") == str(emu)
    assert "10.0" in subprocess.run([emu, "--version"], capture_output=True, text=True).stdout


def _emulator(trusted_dir: Path) -> Path:
    emu = trusted_dir / "emu" / "qemu-s390x-static"
    emu.parent.mkdir(exist_ok=True)
    shutil.copy(QEMU, emu)
    return emu


@pytest.mark.parametrize("arrives", [_rename_over, shutil.copyfile],
                         ids=["renamed over", "copied into the same inode"])
def test_without_f_a_broken_upgrade_disables_the_entry(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter,
        trusted_dir: Path, busybox: dict[str, Path], tmp_path: Path,
        arrives: Callable[[Path, Path], object]) -> None:
    """Without F the kernel would run the new file at the next exec: the entry is disabled,
    not left pointing at a broken emulator, and a good file later enables it again. A file is
    known by its whole note (inode, size, times): one copied into the same inode is new too.
    (With F, the kernel refuses a write into the file it opened: ETXTBSY.)"""
    emu = _emulator(trusted_dir)
    d = start_daemon(policy(f"arches:\n  s390x: {{interpreter: {emu}, flags: [P]}}\n"), binfmt)
    since = d.mark()
    arrives(_bad("segfaults", tmp_path), emu)
    said = d.wait_log(r"multiarch-s390x held: .* failed its probe .* disabled", since)
    assert "crashed with signal 11 (SIGSEGV)" in said
    assert binfmt.read("multiarch-s390x").startswith("disabled")
    since = d.mark()
    _rename_over(QEMU, emu)
    d.wait_log(r"multiarch-s390x", since)
    d.wait_until(lambda: binfmt.read("multiarch-s390x").startswith("enabled"), "enabled again")
    assert binfmt.exec(str(busybox["s390x"]), "uname", "-m").stdout == "s390x\n"


def test_hold_true_keeps_the_old_file_until_released(
        bus: PrivateBus, binfmt: PrivateBinfmt, policy: PolicyWriter,
        start_daemon: DaemonStarter, trusted_dir: Path, busybox: dict[str, Path],
        tmp_path: Path) -> None:
    emu = _emulator(trusted_dir)
    d = start_daemon(policy(f"arches:\n  s390x: {{interpreter: {emu}, hold: true}}\n"), binfmt,
                     bus=bus)
    env = dict(os.environ, **bus.env)

    def ctl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "multiarchctl"), *args], capture_output=True, text=True,
                              env=env, timeout=60)
    status = ctl("status")  # nothing is held yet, and status says that it would be
    assert state_of(status.stdout, "s390x") == "active" and "hold: true: a new file" in \
        status.stdout, status.stdout
    r = ctl("release", "s390x")
    assert r.returncode == 1 and "s390x: nothing to release: hold: true holds no new file" in \
        r.stderr, r.stderr
    since = d.mark()
    _rename_over(QEMU, emu)  # a good file, but pinned
    d.wait_log(r"multiarch-s390x held: hold: true keeps the file registered before", since)
    status = ctl("status")
    assert state_of(status.stdout, "s390x") == "held" and status.returncode == 1, status.stdout
    assert "multiarchctl release s390x" in status.stdout
    with loops.running(binfmt, busybox["s390x"], "s390x", tmp_path) as counts:
        since = d.mark()
        r = ctl("release", "s390x")
        assert (r.returncode, r.stdout.split(":")[:3]) == (0, ["s390x", " active", " hold"]), r
        d.wait_log(r"replaced multiarch-s390x: .* was replaced on disk", since)
    assert all(n > 0 and wrong == 0 for n, wrong in counts), counts
    # Released once: the next new file is held again.
    since = d.mark()
    _rename_over(QEMU, emu)
    d.wait_log(r"multiarch-s390x held: hold: true", since)


def test_a_file_rewritten_in_place_after_a_failed_trial_is_tried_again(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter,
        trusted_dir: Path, busybox: dict[str, Path], tmp_path: Path) -> None:
    """A trial is remembered by the file's whole note, not by its inode alone: the same inode
    with other contents (or a freed inode given to the next file) is another file."""
    emu = _emulator(trusted_dir)
    d = start_daemon(policy(f"arches:\n  s390x: {{interpreter: {emu}}}\n"), binfmt)
    since = d.mark()
    _rename_over(_bad("segfaults", tmp_path), emu)
    d.wait_log(r"multiarch-s390x held: the new .* failed its probe", since)
    inode = emu.stat().st_ino
    since = d.mark()
    shutil.copyfile(QEMU, emu)  # into the same inode
    assert emu.stat().st_ino == inode
    d.wait_log(r"replaced multiarch-s390x: .* was replaced on disk", since)
    assert _interpreter_of(binfmt, busybox["s390x"], "31.04") == str(emu)



def test_an_interpreter_kept_under_the_policys_directory_is_followed(
        binfmt: PrivateBinfmt, start_daemon: DaemonStarter, trusted_dir: Path) -> None:
    """Only the policy's own files there are taken for an editor's: a QEMU kept in
    /etc/multiarch/bin is upgraded through the gate as anywhere else."""
    config = trusted_dir / "etc" / "multiarch" / "arches.yaml"
    emu = config.parent / "bin" / "qemu-s390x-static"
    emu.parent.mkdir(parents=True)
    shutil.copy(QEMU, emu)
    config.write_text(f"arches:\n  s390x: {{interpreter: {emu}}}\n")
    d = start_daemon(config, binfmt)
    since = d.mark()
    _rename_over(NEWER, emu)
    d.wait_log(r"replaced multiarch-s390x: .* was replaced on disk", since)
