"""What a hostile tester found, each as a story: root never runs or writes a file another user
can redirect, and a policy with a problem never removes what worked."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from multiarchd.catalog import load_catalog
from multiarchd.core.desired import desired
from multiarchd.host import keep
from multiarchd.host.facts import candidate_paths, probe_host
from multiarchd.model.host import FileState
from multiarchd.policy.files import load_policy

from tests.support.binfmt import PrivateBinfmt
from tests.support.commands import DaemonStarter, PolicyWriter, run
from tests.support.paths import DEFAULT_POLICY

CATALOG = load_catalog()
NOBODY = 65534


def judged(policy: Path, arch: str = "arm") -> tuple[FileState, str]:
    p = load_policy(str(policy), CATALOG)
    host = probe_host(CATALOG, candidate_paths(p, CATALOG))
    want = desired(p, CATALOG, host).want(f"multiarch-{arch}")
    assert want is not None and want.interpreter is not None
    return host.file(want.interpreter), want.message


def test_a_symlink_in_a_directory_another_user_owns_is_refused(
        policy: PolicyWriter, trusted_dir: Path) -> None:
    """Without F the kernel follows the path at every exec: the link's directory decides too,
    however trusted the file it points at is (nobody flipped such a link and root ran their
    program)."""
    theirs = trusted_dir / "theirs"
    theirs.mkdir()
    os.chown(theirs, NOBODY, NOBODY)
    (theirs / "q").symlink_to("/usr/bin/qemu-arm-static")
    state, message = judged(policy(f"arches:\n  arm: {{interpreter: {theirs}/q}}\n"))
    assert state is FileState.UNTRUSTED
    assert f"directory {theirs} is owned by uid {NOBODY}" in message


def test_a_symlink_whose_target_passes_through_such_a_directory_is_refused(
        policy: PolicyWriter, trusted_dir: Path) -> None:
    theirs = trusted_dir / "theirs"
    (theirs / "bin").mkdir(parents=True)
    shutil.copy("/usr/bin/qemu-arm-static", theirs / "bin" / "q")
    os.chown(theirs, NOBODY, NOBODY)  # the file and its own directory are root's
    (trusted_dir / "q").symlink_to(theirs / "bin" / "q")
    state, message = judged(policy(f"arches:\n  arm: {{interpreter: {trusted_dir}/q}}\n"))
    assert state is FileState.UNTRUSTED
    assert f"directory {theirs} is owned by uid {NOBODY}" in message


@pytest.mark.parametrize("path,words", [
    ("/proc/self/exe", "leads through /proc"),
    ("/bin/sh", "is a shell, not an emulator"),
    ("/usr/bin/bash", "is a shell, not an emulator"),
])
def test_no_pseudo_file_or_shell_is_an_interpreter(policy: PolicyWriter, path: str,
                                                   words: str) -> None:
    state, message = judged(policy(f"arches:\n  arm: {{interpreter: {path}}}\n"))
    assert state is FileState.UNTRUSTED and words in message


def test_root_writes_no_file_through_another_users_symlink(trusted_dir: Path) -> None:
    """--metrics-textfile in node-exporter's directory, which its own user owns: swapping the
    directory for a link to a root-only one must not make root replace a file there."""
    exporter = trusted_dir / "prometheus"
    exporter.mkdir()
    os.chown(exporter, NOBODY, NOBODY)
    secret = trusted_dir / "secret"
    secret.mkdir(mode=0o700)
    (secret / "multiarchd.prom").write_text("root's own\n")
    (secret / "multiarchd.prom").chmod(0o600)
    (exporter / "node-exporter").symlink_to(secret)
    with pytest.raises(PermissionError, match="sits in a directory others can change"):
        keep.write_whole(str(exporter / "node-exporter" / "multiarchd.prom"), "metrics\n")
    assert (secret / "multiarchd.prom").read_text() == "root's own\n"
    assert oct((secret / "multiarchd.prom").stat().st_mode & 0o777) == "0o600"
    # Their own real directory is fine: the file is written there, and nothing is left behind.
    (exporter / "node-exporter").unlink()
    (exporter / "node-exporter").mkdir()
    keep.write_whole(str(exporter / "node-exporter" / "multiarchd.prom"), "metrics\n")
    assert os.listdir(exporter / "node-exporter") == ["multiarchd.prom"]


TYPOS = [
    "arches: {al: {}}\n",  # for `all`
    "arches: {5: true}\n",
    "arches: {" + ", ".join(f"nope{i}: {{}}" for i in range(29)) + "}\n",
    "defaults: {emulators: []}\narches: all\n",
    "arches:\n  x86_64: {}\n  arm65: {}\n",  # one typo beside a valid name
    "arches: all\ncustom:\n  - {name: 'bad name', extension: exe, interpreter: /usr/bin/true}\n",
    "arches: all\nupdated: 2023-02-30\n",
    "arches: {s390x: {enabled: !!int x}}\n",
]


@pytest.mark.parametrize("text", TYPOS, ids=range(len(TYPOS)))
def test_a_policy_with_a_problem_removes_nothing(binfmt: PrivateBinfmt, policy: PolicyWriter,
                                                 text: str) -> None:
    assert run("multiarchd", "--once", binfmt=binfmt, config=DEFAULT_POLICY).returncode == 0
    before = {n: Path(binfmt.path, n).stat().st_ino for n in binfmt.names()}
    assert len(before) == 33
    r = run("multiarchd", "--once", binfmt=binfmt, config=policy(text))
    assert "Traceback" not in r.stderr + r.stdout
    assert r.returncode != 0, r.stdout
    assert {n: Path(binfmt.path, n).stat().st_ino for n in binfmt.names()} == before, r.stderr


def test_a_custom_entry_named_like_an_architecture_leaves_that_architecture_managed(
        binfmt: PrivateBinfmt, policy: PolicyWriter) -> None:
    assert run("multiarchd", "--once", binfmt=binfmt, config=DEFAULT_POLICY).returncode == 0
    binfmt.write("multiarch-aarch64", "0")  # another tool disables it
    r = run("multiarchd", "--once", binfmt=binfmt, config=policy(
        "arches: all\ncustom:\n  - {name: aarch64, extension: x, interpreter: /usr/bin/true}\n"))
    assert "is an architecture's name" in r.stderr + r.stdout
    assert binfmt.read("multiarch-aarch64").startswith("enabled")


def test_a_duplicated_custom_name_applies_neither(binfmt: PrivateBinfmt,
                                                 policy: PolicyWriter) -> None:
    r = run("multiarchd", "--once", binfmt=binfmt, config=policy(
        "arches: {}\ncustom:\n  - {name: d, extension: exe, interpreter: /usr/bin/true}\n"
        "  - {name: d, extension: com, interpreter: /usr/bin/true}\n"))
    assert "is given twice" in r.stdout + r.stderr
    assert binfmt.names() == []


def test_a_foreign_entry_taking_over_one_of_ours_is_said_once(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter) -> None:
    from tests.test_once import QEMU_AARCH64
    d = start_daemon(policy("arches: {aarch64: {}}\n"), binfmt)
    since = d.mark()
    binfmt.write("register", QEMU_AARCH64)  # another tool, later: the kernel now picks theirs
    line = d.wait_log("multiarch-aarch64: shadowed by qemu-aarch64", since)
    assert "registered later" in line
    d.reload()
    assert len([x for x in d.lines if "shadowed by" in x]) == 1


def test_a_user_without_root_is_told_the_table_is_roots_not_the_interpreters_mode(
        tmp_path: Path) -> None:
    """`multiarchctl apply --local` by an ordinary user: `register` is root's (mode 0200), so
    the open fails, not the kernel's reading of the line; say that, not "not executable"."""
    import errno

    from multiarchd.kernel import raw
    from multiarchd.kernel.refusals import explain_unopened
    with pytest.raises(raw.NotOpened):
        raw.write(str(tmp_path / "no-table"), "register", ":x:E::x::/bin/true:")
    said = explain_unopened("register", "multiarch-s390x", errno.EACCES,
                            "/proc/sys/fs/binfmt_misc/register")
    assert "only root" in said and "run as root" in said and "executable" not in said


@pytest.mark.kernel  # a user, mount and PID namespace of its own
def test_once_with_no_mount_mounts_nothing() -> None:
    """Whatever the host has mounted (binfmt_misc, systemd's automount of it): a proc of the
    namespace's own covers it, and /proc/sys/fs/binfmt_misc is then proc's empty directory, as
    on a machine where nothing mounted it."""
    import subprocess

    from tests.support.paths import BIN
    fs = "stat -f -c %T /proc/sys/fs/binfmt_misc"
    script = (f'{fs}; {BIN}/multiarchd --once --no-mount --config {DEFAULT_POLICY}; '
              f'echo "exit $?"; {fs}')
    r = subprocess.run(["unshare", "-Urm", "--pid", "--fork", "--mount-proc", "sh", "-c", script],
                       capture_output=True, text=True, timeout=120)
    assert r.stdout.split() == ["proc", "exit", "1", "proc"], (r.stdout, r.stderr)
    assert "not mounted" in r.stderr


def test_a_full_disk_leaves_no_half_written_file_behind(trusted_dir: Path) -> None:
    import subprocess
    small = trusted_dir / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(small)], check=True)
    try:
        with pytest.raises(OSError):
            keep.write_whole(str(small / "boot-record"), "x" * 100_000)
        assert os.listdir(small) == []  # no `.boot-record.PID` at every run
    finally:
        subprocess.run(["umount", str(small)], check=True)
