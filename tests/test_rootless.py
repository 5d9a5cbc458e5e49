"""Emulation without root: an ordinary user's rootless podman runs foreign images once
`multiarchd --once` filled the table of that user's own user namespace (Linux 6.7+), from
inside `podman unshare`, with root's emulators; the user's own copy of QEMU is refused, and the
host's table is never touched (the session's tripwire compares it)."""

from __future__ import annotations

import os
import pwd
import select
import shutil
import signal
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.paths import BIN, BUSYBOX_CACHE, DEFAULT_POLICY

# root (it makes a user), user namespaces, podman: never with the fast ones
pytestmark = [pytest.mark.container, pytest.mark.kernel]

USER = "multiarchd-rootless"
SUBIDS = "400000-465535"
PODMAN = ("podman --runtime runc --cgroup-manager cgroupfs --events-backend none "
          "--storage-driver vfs")
RUNTIME = f"/tmp/{USER}-run"  # the user's $XDG_RUNTIME_DIR


def _end_processes(uid: int) -> None:
    """Every process of `uid` killed and gone (podman's pause process outlives the test's
    commands; userdel refuses a user with processes): each is waited for on its pidfd."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
            fd = os.pidfd_open(int(pid))
        except OSError:  # gone meanwhile
            continue
        try:
            signal.pidfd_send_signal(fd, signal.SIGKILL)
            assert select.select([fd], [], [], 30)[0], f"process {pid} of uid {uid} lives on"
        except ProcessLookupError:
            pass
        finally:
            os.close(fd)


def _remove_user() -> None:
    """The test user and all it left, whether the last run ended well or not."""
    try:
        uid = pwd.getpwnam(USER).pw_uid
    except KeyError:
        uid = None
    if uid is not None:
        _end_processes(uid)
        subprocess.run(["usermod", "--del-subuids", SUBIDS, "--del-subgids", SUBIDS, USER],
                       capture_output=True)
        subprocess.run(["userdel", "-r", USER], capture_output=True)
    shutil.rmtree(RUNTIME, ignore_errors=True)  # (owned by the uid the user had)


@pytest.fixture
def user() -> Iterator[pwd.struct_passwd]:
    """An ordinary user made for the test, with subordinate ids for rootless podman; one left
    by an earlier run that could not be removed is taken as it is."""
    _remove_user()
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", USER], check=True)
    subprocess.run(["usermod", "--add-subuids", SUBIDS, "--add-subgids", SUBIDS, USER],
                   check=True)
    try:
        yield pwd.getpwnam(USER)
    finally:
        _remove_user()


def as_user(user: pwd.struct_passwd, script: str,
            prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    setup = (f"mkdir -p {RUNTIME} && chmod 700 {RUNTIME} && export XDG_RUNTIME_DIR={RUNTIME}\n"
             f"podman() {{ command {PODMAN} \"$@\"; }}\n")
    return subprocess.run([*prefix, "runuser", "-u", USER, "--", "env", "-i",
                           f"HOME={user.pw_dir}",
                           "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "sh", "-c", setup + script],
                          capture_output=True, text=True, timeout=600)


# (no RUNTIME_DIRECTORY: what it keeps of this boot goes where `status --local` reads it, the
# user's $XDG_RUNTIME_DIR/multiarchd)
ONCE = (f"CACHE_DIRECTORY=$HOME/cache STATE_DIRECTORY=$HOME/state "
        f"{BIN}/multiarchd --once --private --config")


def host_table() -> tuple[int, list[str]]:
    """The host's binfmt_misc place as this (initial) namespace sees it: device and listing."""
    place = "/proc/sys/fs/binfmt_misc"
    return os.stat(place).st_dev, sorted(os.listdir(place))


def test_rootless_podman_runs_foreign_images_after_multiarchd_in_its_namespace(
        user: pwd.struct_passwd, trusted_dir: Path) -> None:
    host = host_table()
    for deb in ("arm64", "s390x"):
        with tarfile.open(trusted_dir / f"{deb}.tar", "w") as tar:
            tar.add(BUSYBOX_CACHE / deb / "bin" / "busybox", arcname="bin/busybox")
        (trusted_dir / f"{deb}.tar").chmod(0o644)
    before = as_user(user, f"podman run --rm --network none --arch arm64 "
                           f"$(podman import --arch arm64 {trusted_dir}/arm64.tar) "
                           "/bin/busybox uname -m")
    assert before.returncode != 0 and "exec format error" in before.stdout + before.stderr
    r = as_user(user, f"""set -e
podman unshare sh -c '{ONCE} {DEFAULT_POLICY} | tail -n 1'
podman unshare sh -c 'STATE_DIRECTORY=$HOME/state {BIN}/multiarchctl status --local \
    --config {DEFAULT_POLICY} | grep "^aarch64 "'
for deb in arm64 s390x; do
    podman import --arch $deb {trusted_dir}/$deb.tar localhost/busybox-$deb >/dev/null 2>&1
    echo "$deb $(podman run --rm --network none --arch $deb localhost/busybox-$deb \\
        /bin/busybox uname -m)"
done
""")
    assert r.returncode == 0, r.stdout + r.stderr
    converged, aarch64, *ran = r.stdout.splitlines()
    assert (converged, ran) == ("converged: 33 active", ["arm64 aarch64", "s390x s390x"]), \
        r.stdout + r.stderr
    # The CPU model's file would be the user's own: not used, and said.
    assert "CPU model max,pauth-impdef=on not used" in aarch64 and "QEMU's own" in aarch64, \
        aarch64
    assert host_table() == host  # no root in between, and the host's table as it was


PLACE = "/proc/sys/fs/binfmt_misc"
# As on a host whose binfmt_misc is mounted (systemd's automount does it on every systemd host):
# the host's table, mounted in a mount namespace of the test's own (only read here), and shown
# (device and entries) before and after.
HOST_MOUNTED = ("unshare", "--mount", "--propagation", "private", "sh", "-c",
                f"mount -t binfmt_misc binfmt_misc {PLACE} && show() {{ echo \"host $(stat -c %d "
                f"{PLACE}) $(ls {PLACE} | tr '\\n' ' ')\"; }} && show && \"$@\"; rc=$?; show; "
                "exit $rc",
                "host-mounted")


def test_the_recipe_works_where_the_host_has_its_table_mounted(
        user: pwd.struct_passwd, trusted_dir: Path) -> None:
    """`podman unshare` inherits the host's mount: root's table. --private mounts the user's
    own over it, in that namespace only; root's is read, never written."""
    with tarfile.open(trusted_dir / "arm64.tar", "w") as tar:
        tar.add(BUSYBOX_CACHE / "arm64" / "bin" / "busybox", arcname="bin/busybox")
    (trusted_dir / "arm64.tar").chmod(0o644)
    r = as_user(user, f"""set -e
podman unshare sh -c 'STATE_DIRECTORY=$HOME/state {BIN}/multiarchctl status --local \
    --config {DEFAULT_POLICY} | head -n 1; {ONCE} {DEFAULT_POLICY} | tail -n 1'
podman import --arch arm64 {trusted_dir}/arm64.tar localhost/busybox-arm64 >/dev/null 2>&1
podman run --rm --network none --arch arm64 localhost/busybox-arm64 /bin/busybox uname -m
""", HOST_MOUNTED)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 5, r.stdout + r.stderr
    host_before, whose, converged, ran, host_after = r.stdout.splitlines()
    assert (converged, ran) == ("converged: 33 active", "aarch64"), r.stdout + r.stderr
    assert whose.startswith("binfmt_misc table: an outer user namespace's, inherited by user "
                            "namespace "), whose
    assert whose.endswith(f"(its root is uid {user.pw_uid} outside); --private mounts one of "
                          "its own"), whose
    assert host_after == host_before and host_before.startswith("host "), r.stdout


@pytest.mark.parametrize("host_mounted", [False, True])
def test_multiarchctl_apply_private_fills_the_namespaces_table(
        user: pwd.struct_passwd, host_mounted: bool) -> None:
    r = as_user(user, f"""podman unshare sh -c 'STATE_DIRECTORY=$HOME/state \
    {BIN}/multiarchctl apply --private --config {DEFAULT_POLICY} | head -n 1;
    ls /proc/sys/fs/binfmt_misc | grep -c "^multiarch-"'
""", HOST_MOUNTED if host_mounted else ())
    host = [line for line in r.stdout.splitlines() if line.startswith("host ")]
    assert len(host) == (2 if host_mounted else 0) and len(set(host)) <= 1, r.stdout  # as it was
    table, count = [line for line in r.stdout.splitlines() if not line.startswith("host ")][:2]
    assert table.startswith("binfmt_misc table: a private one: user namespace "), r.stdout
    assert table.endswith(f"(its root is uid {user.pw_uid} outside)") and count == "33", \
        r.stdout + r.stderr


def test_the_users_own_emulator_is_refused_in_its_namespace(user: pwd.struct_passwd) -> None:
    r = as_user(user, f"""mkdir -p $HOME/bin && cp /usr/bin/qemu-aarch64-static $HOME/bin/
printf 'arches:\\n  aarch64: {{interpreter: %s}}\\n' $HOME/bin/qemu-aarch64-static >$HOME/a.yaml
podman unshare sh -c 'mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc &&
    {ONCE} $HOME/a.yaml; ls /proc/sys/fs/binfmt_misc'
""")
    said = r.stdout + r.stderr
    assert f"{user.pw_dir}/a.yaml:2:" in said, said
    assert f"{user.pw_dir}/bin/qemu-aarch64-static is not trusted: " in said
    # (the user's home, the first thing on the way that is the user's)
    assert f"is owned by uid 0 (uid {user.pw_uid} outside this user namespace), not root" \
        in said
    assert "multiarch-aarch64" not in r.stdout
