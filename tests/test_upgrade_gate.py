"""An emulator upgrade never breaks what worked: a new interpreter file is tried on its
architecture's probe, in a binfmt_misc table of its own, before it replaces the one an entry
runs (core/gate.py). Each case renames a file over a working QEMU, as dpkg does, while two
loops run the foreign busybox the whole time."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import loops
from tests.support.binfmt import PrivateBinfmt
from tests.support.commands import DaemonStarter, PolicyWriter

QEMU = Path("/usr/bin/qemu-s390x-static")


def _bad(kind: str, where: Path) -> Path:
    """A file that is no working s390x emulator."""
    path = where / f"bad-{kind}"
    if kind == "segfaults":
        source = where / "segv.c"
        source.write_text("int main(void) { return *(volatile int *)0; }\n")
        subprocess.run(["gcc", "-static", "-O0", "-o", str(path), str(source)], check=True)
    else:  # prints another architecture, and exits as if all went well
        path.write_text("#!/bin/sh\necho x86_64\n")
    path.chmod(0o755)
    return path


def _rename_over(new: Path, path: Path) -> None:
    staged = path.with_name(path.name + ".dpkg-new")
    shutil.copy(new, staged)
    os.replace(staged, path)


@pytest.mark.parametrize("kind", ["segfaults", "prints another architecture"])
def test_a_broken_upgrade_is_held_and_nothing_fails(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter,
        trusted_dir: Path, busybox: dict[str, Path], tmp_path: Path, kind: str) -> None:
    emu = trusted_dir / "emu" / "qemu-s390x-static"
    emu.parent.mkdir()
    shutil.copy(QEMU, emu)
    d = start_daemon(policy(f"arches:\n  s390x: {{interpreter: {emu}}}\n"), binfmt)
    bad = _bad(kind, tmp_path)
    with loops.running(binfmt, busybox["s390x"], "s390x", tmp_path) as counts:
        since = d.mark()
        _rename_over(bad, emu)
        said = d.wait_log(r"multiarch-s390x held: the new .* failed its probe", since)
        # and the kernel still runs the QEMU it opened at registration
        assert binfmt.exec(str(busybox["s390x"]), "uname", "-m").stdout == "s390x\n"
    assert all(n > 0 and wrong == 0 for n, wrong in counts), counts
    print(said)
    assert "multiarch-s390x" in binfmt.names()

    # The next change to the file is tried again: a good QEMU is taken, with no failed run.
    with loops.running(binfmt, busybox["s390x"], "s390x", tmp_path) as counts:
        since = d.mark()
        _rename_over(QEMU, emu)
        d.wait_log(r"replaced multiarch-s390x: .* was replaced on disk", since)
    assert all(n > 0 and wrong == 0 for n, wrong in counts), counts
