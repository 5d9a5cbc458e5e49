"""The Debian source package as a distribution builds it: from the source package alone (no
git), lintian-clean, and a postrm that writes to binfmt_misc only where the table is this
system's own."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from multiarchd import __version__

from tests.support.binfmt import PrivateBinfmt
from tests.support.paths import REPO

DEBIAN_PATH = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}  # Debian's python3, not a virtualenv's


def lintian(*paths: Path) -> list[str]:
    r = subprocess.run(["lintian", "--pedantic", "--display-experimental", "--display-info",
                        *map(str, paths)], capture_output=True, text=True,
                       env=dict(os.environ, **DEBIAN_PATH))
    return [line for line in (r.stdout + r.stderr).splitlines()
            if line and "running with root privileges" not in line]


def test_source_and_binary_are_lintian_clean(deb: Path) -> None:
    changes = deb.parent / f"multiarchd_{__version__}_amd64.changes"
    if not changes.exists():  # built on another architecture
        [changes] = deb.parent.glob(f"multiarchd_{__version__}_*.changes")
    assert (deb.parent / f"multiarchd_{__version__}.dsc").is_file()
    assert lintian(changes) == []


def test_the_source_package_alone_builds_again_without_git(deb: Path, tmp_path: Path) -> None:
    tree = tmp_path / "src"
    subprocess.run(["dpkg-source", "-x", str(deb.parent / f"multiarchd_{__version__}.dsc"),
                    str(tree)], check=True, capture_output=True)
    assert not (tree / ".git").exists()
    # As a distribution's builder does, with git out of reach.
    env = dict(os.environ, **DEBIAN_PATH, GIT_DIR="/nonexistent", GIT_CEILING_DIRECTORIES="/")
    r = subprocess.run(["dpkg-buildpackage", "-b", "-us", "-uc"], cwd=tree, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rebuilt = tmp_path / deb.name
    assert subprocess.run(["dpkg-deb", "-c", str(rebuilt)], capture_output=True, text=True
                          ).stdout.count("\n") == subprocess.run(
        ["dpkg-deb", "-c", str(deb)], capture_output=True, text=True).stdout.count("\n")
    # The build script, too, works from an unpacked source package.
    out = tmp_path / "out"
    r = subprocess.run([str(tree / "packaging/debian/build"), str(out)], env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert (out / deb.name).is_file()


POSTRM = REPO / "packaging" / "debian" / "multiarchd.postrm"
# A PID namespace of our own, so that ischroot can tell a chroot from the real root; binfmt_misc
# mounted again over the new /proc (the same user namespace: the same table).
IN_OWN_ROOT = ("unshare --pid --fork --mount-proc sh -c 'mount -t binfmt_misc binfmt_misc "
               "/proc/sys/fs/binfmt_misc && {}'")


@pytest.mark.parametrize(("how", "removed"), [
    ("sh {postrm} purge", True),
    ("sh {postrm} remove", False),
    ("DPKG_ROOT=/srv/other sh {postrm} purge", False),
    ("d=$(mktemp -d) && mount --rbind / $d && chroot $d sh {postrm} purge", False),
], ids=["this system's table", "remove (not purge)", "for another root", "in a chroot"])
def test_purge_removes_our_entries_only_from_this_systems_own_table(
        binfmt: PrivateBinfmt, tmp_path: Path, how: str, removed: bool) -> None:
    postrm = Path("/var/tmp") / f"multiarchd-postrm-{os.getpid()}"
    shutil.copy(POSTRM, postrm)
    try:
        binfmt.write("register", ":multiarch-test:E::xyz::/bin/true:")
        binfmt.write("register", ":other:E::abc::/bin/true:")
        r = binfmt.exec("sh", "-c", IN_OWN_ROOT.format(how.format(postrm=postrm)))
        assert r.returncode == 0, r.stderr
        assert binfmt.names() == (["other"] if removed else ["multiarch-test", "other"])
    finally:
        postrm.unlink()
