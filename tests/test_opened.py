"""Which file the kernel opened for an F entry is known to whoever comes after the one that
registered it (host/opened.py): the daemon follows the next package upgrade of an entry that
`multiarchd --once`, the boot record's replay or the daemon before a restart registered, as if
it had registered it itself; where it cannot be known, it registers the entry again once and
says why. No status says active for an entry whose kernel runs another file than its path
names. A package manager's replace (dpkg's .dpkg-tmp link, .dpkg-new renamed over, the link
removed) is one change."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from multiarchd import identity
from multiarchd.model.host import same_file
from tests.support import loops
from tests.support.binfmt import PrivateBinfmt
from tests.support.commands import DaemonStarter, PolicyWriter, run, state_of
from tests.support.daemon import DaemonProcess
from tests.test_boot_record import _ONCE
from tests.test_upgrade_gate import NEWER, QEMU, _bad, _emulator, _interpreter_of, _rename_over


def _shared() -> dict[str, str]:
    """The daemon's runtime directory is the one --once and multiarchctl use: /run/multiarchd
    on a host."""
    return {"RUNTIME_DIRECTORY": os.environ["RUNTIME_DIRECTORY"]}


def _follows_the_upgrade(d: DaemonProcess, binfmt: PrivateBinfmt, busybox: Path, emu: Path,
                         tmp_path: Path) -> None:
    """A newer QEMU renamed over the interpreter, foreign programs running: the entry is
    registered again with no failed exec, and the kernel runs the new file."""
    with loops.running(binfmt, busybox, "s390x", tmp_path) as counts:
        since = d.mark()
        _rename_over(NEWER, emu)
        d.wait_log(r"replaced multiarch-s390x: .* was replaced on disk", since, timeout=60)
    assert all(n > 0 and wrong == 0 for n, wrong in counts), counts
    assert _interpreter_of(binfmt, busybox, "32.01") == str(emu)  # not "(deleted)"


@pytest.mark.parametrize("registers", [("multiarchd", "--once"), ("multiarchctl", "apply")],
                         ids=["--once", "apply --local"])
def test_the_daemon_follows_an_upgrade_of_what_a_run_registered(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter,
        trusted_dir: Path, busybox: dict[str, Path], tmp_path: Path,
        registers: tuple[str, str]) -> None:
    emu = _emulator(trusted_dir)
    config = policy(f"arches:\n  s390x: {{interpreter: {emu}}}\n")
    assert run(*registers, binfmt=binfmt, config=config).returncode == 0
    d = start_daemon(config, binfmt, env=_shared())
    _follows_the_upgrade(d, binfmt, busybox["s390x"], emu, tmp_path)
    assert not [ln for ln in d.lines if "not known" in ln], d.lines  # it was known


def test_the_daemon_follows_an_upgrade_of_what_the_boot_record_registered(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter,
        trusted_dir: Path, busybox: dict[str, Path], tmp_path: Path) -> None:
    emu = _emulator(trusted_dir)
    config = policy(f"arches:\n  s390x: {{interpreter: {emu}}}\n")
    with PrivateBinfmt() as last_boot:  # the run whose record this boot replays
        assert run("multiarchd", "--once", binfmt=last_boot, config=config).returncode == 0
    r = subprocess.run([sys.executable, "-c", _ONCE, "--once", "--config", str(config),
                        "--binfmt-dir", binfmt.path], capture_output=True, text=True, timeout=60)
    assert r.stderr.endswith("replayed\n") and "multiarch-s390x" in binfmt.names(), r.stderr
    d = start_daemon(config, binfmt, env=_shared())
    _follows_the_upgrade(d, binfmt, busybox["s390x"], emu, tmp_path)


def test_the_daemon_follows_an_upgrade_after_a_restart(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter,
        trusted_dir: Path, busybox: dict[str, Path], tmp_path: Path) -> None:
    emu = _emulator(trusted_dir)
    config = policy(f"arches:\n  s390x: {{interpreter: {emu}}}\n")
    start_daemon(config, binfmt).stop()
    assert "multiarch-s390x" in binfmt.names()  # (the entries stay with the table)
    d = start_daemon(config, binfmt)
    _follows_the_upgrade(d, binfmt, busybox["s390x"], emu, tmp_path)


def test_an_entry_whose_opened_file_is_not_known_is_registered_again_once(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter,
        trusted_dir: Path, busybox: dict[str, Path], tmp_path: Path) -> None:
    """Registered by a run that kept its note elsewhere (as another tool, an older multiarchd
    or a lost runtime directory leave it): the daemon cannot know which file the kernel runs."""
    emu = _emulator(trusted_dir)
    config = policy(f"arches:\n  s390x: {{interpreter: {emu}}}\n")
    elsewhere = dict(os.environ, RUNTIME_DIRECTORY=str(tmp_path / "elsewhere"))
    assert run("multiarchd", "--once", binfmt=binfmt, config=config,
               env=elsewhere).returncode == 0
    _rename_over(NEWER, emu)  # and the kernel now runs a file no path names
    assert _interpreter_of(binfmt, busybox["s390x"], "32.02") == f"{emu} (deleted)"
    r = run("multiarchctl", "status", "--local", binfmt=binfmt, config=config)
    assert state_of(r.stdout, "s390x") == "pending" and r.returncode == 1, r.stdout
    assert "which file the kernel opened for it is not known" in r.stdout
    d = start_daemon(config, binfmt)
    said = d.wait_log(r"replaced multiarch-s390x: ", timeout=60)
    assert "which file the kernel opened for it is not known" in said and "once" in said
    assert _interpreter_of(binfmt, busybox["s390x"], "32.03") == str(emu)
    d.reload()  # known now: not registered again
    assert len([ln for ln in d.lines if "replaced multiarch-s390x" in ln]) == 1, d.lines
    _follows_the_upgrade(d, binfmt, busybox["s390x"], emu, tmp_path)


def test_hold_true_keeps_an_entry_whose_opened_file_is_not_known_until_released(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter,
        trusted_dir: Path, tmp_path: Path) -> None:
    """hold: true keeps the file the kernel holds, whichever it is: held, saying why."""
    emu = _emulator(trusted_dir)
    config = policy(f"arches:\n  s390x: {{interpreter: {emu}, hold: true}}\n")
    elsewhere = dict(os.environ, RUNTIME_DIRECTORY=str(tmp_path / "elsewhere"))
    assert run("multiarchd", "--once", binfmt=binfmt, config=config,
               env=elsewhere).returncode == 0
    d = start_daemon(config, binfmt)
    said = d.wait_log(r"multiarch-s390x held: hold: true keeps the file registered before, "
                      r"and which file the kernel opened for it is not known")
    assert "multiarchctl release s390x" in said
    assert not [ln for ln in d.lines if "replaced multiarch-s390x" in ln], d.lines


def test_local_status_and_audit_never_call_a_stale_entry_active(
        binfmt: PrivateBinfmt, policy: PolicyWriter, trusted_dir: Path) -> None:
    emu = _emulator(trusted_dir)
    config = policy(f"arches:\n  s390x: {{interpreter: {emu}}}\n")
    assert run("multiarchd", "--once", binfmt=binfmt, config=config).returncode == 0
    r = run("multiarchctl", "status", "--local", binfmt=binfmt, config=config)
    assert state_of(r.stdout, "s390x") == "active", r.stdout
    _rename_over(NEWER, emu)
    r = run("multiarchctl", "status", "--local", binfmt=binfmt, config=config)
    assert state_of(r.stdout, "s390x") == "pending" and r.returncode == 1, r.stdout
    assert "now names another file than the one the kernel opened" in r.stdout
    audit = run("multiarchctl", "audit", "--local", binfmt=binfmt, config=config)
    assert "interpreter-replaced" in audit.stdout and audit.returncode == 1, audit.stdout
    # The next full run follows it, and says so.
    once = run("multiarchd", "--once", binfmt=binfmt, config=config)
    assert "replaced multiarch-s390x" in once.stderr and once.returncode == 0, once.stderr
    r = run("multiarchctl", "status", "--local", binfmt=binfmt, config=config)
    assert state_of(r.stdout, "s390x") == "active", r.stdout


def test_local_status_says_held_where_the_daemon_holds(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter,
        trusted_dir: Path, tmp_path: Path) -> None:
    emu = _emulator(trusted_dir)
    config = policy(f"arches:\n  s390x: {{interpreter: {emu}}}\n")
    d = start_daemon(config, binfmt, env=_shared())
    since = d.mark()
    _rename_over(_bad("segfaults", tmp_path), emu)
    d.wait_log(r"multiarch-s390x held: the new .* failed its probe", since, timeout=60)
    r = run("multiarchctl", "status", "--local", binfmt=binfmt, config=config)
    assert state_of(r.stdout, "s390x") == "held" and r.returncode == 1, r.stdout


def _dpkg_replace(path: Path, new: Path, then: Callable[[], object]) -> None:
    """What dpkg does to a file it upgrades, step by step (link the old one to .dpkg-tmp,
    write .dpkg-new, rename it over, remove the link); `then` called after each."""
    tmp, staged = path.with_name(path.name + ".dpkg-tmp"), path.with_name(path.name + ".dpkg-new")
    for step in (lambda: os.link(path, tmp), lambda: shutil.copy(new, staged),
                 lambda: os.replace(staged, path), lambda: os.unlink(tmp)):
        step()
        then()


def test_dpkgs_replace_is_one_change(tmp_path: Path) -> None:
    """The decision itself: a link made or removed, a chmod, is no new file; a rename over, or
    a write in place, is."""
    path = tmp_path / "qemu"
    shutil.copy(QEMU, path)
    notes = [identity.of_path(str(path))]
    _dpkg_replace(path, NEWER, lambda: notes.append(identity.of_path(str(path))))
    linked, staged, renamed, unlinked = notes[1:]
    assert linked != notes[0] and same_file(notes[0], linked)  # the ctime moved: same file
    assert same_file(notes[0], staged)
    assert not same_file(notes[0], renamed) and same_file(renamed, unlinked)
    path.chmod(0o700)
    assert same_file(unlinked, identity.of_path(str(path)))
    with open(path, "r+b") as f:  # the same size, the same inode, other bytes
        f.write(b"\x7fELF")
    assert not same_file(unlinked, identity.of_path(str(path)))


@pytest.mark.parametrize("hold", [False, True], ids=["upgrade", "hold: true"])
def test_dpkgs_replace_under_the_daemon_is_one_replace(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter,
        trusted_dir: Path, hold: bool) -> None:
    """Nothing is told of the entry at dpkg's other steps (a whole run after each), one trial
    and one replace (or with hold: true, one held message) for the new file, and no message
    naming the inode the kernel already runs."""
    emu = _emulator(trusted_dir)
    old = emu.stat().st_ino
    d = start_daemon(policy(f"arches:\n  s390x: {{interpreter: {emu}, hold: {str(hold).lower()}}}\n"),
                     binfmt)
    start = d.mark()
    told: list[list[str]] = []

    def run_and_note() -> None:
        since = d.mark()
        d.reload()
        told.append([ln for ln in d.lines[since[0]:] if "multiarch-s390x" in ln])
    _dpkg_replace(emu, NEWER, run_and_note)
    assert told[0] == told[1] == [], told  # linked to .dpkg-tmp, .dpkg-new written
    new = emu.stat().st_ino
    if hold:
        said = d.wait_log(r"multiarch-s390x held: hold: true", start)
        assert f"(inode {new})" in said
    else:
        d.wait_log(r"replaced multiarch-s390x: .* was replaced on disk", start, timeout=60)
    d.reload()
    lines = [ln for ln in d.lines[start[0]:] if "multiarch-s390x" in ln]
    assert not [ln for ln in lines if f"inode {old})" in ln], lines
    assert len([ln for ln in lines if "replaced multiarch-s390x" in ln]) == (0 if hold else 1)
    assert len([ln for ln in lines if "is being tried" in ln]) <= 1, lines


RUNTIME = "from multiarchd.host.keep import runtime_dir; print(runtime_dir())"


@pytest.mark.fast
@pytest.mark.parametrize("env, uid, where", [
    ({}, 0, "/run/multiarchd"),  # whoever owns /run
    ({"XDG_RUNTIME_DIR": "/run/user/65534"}, 65534, "/run/user/65534/multiarchd"),
    ({}, 65534, "/tmp/multiarchd-65534"),
    ({"RUNTIME_DIRECTORY": "/run/x:/run/y"}, 65534, "/run/x"),  # systemd's, first of them
])
def test_the_runtime_directory_is_one_the_running_user_can_keep_notes_in(
        env: dict[str, str], uid: int, where: str) -> None:
    """A run without root cannot write /run/multiarchd: its notes go to its own runtime
    directory, the one its next run and `multiarchctl status --local` read."""
    r = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                        sys.executable, "-c", RUNTIME],
                       env={"PATH": os.environ["PATH"], "PYTHONPATH": str(Path(
                           identity.__file__).parents[1]), **env},
                       capture_output=True, text=True, check=True)
    assert r.stdout.strip() == where
