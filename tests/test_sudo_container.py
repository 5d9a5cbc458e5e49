"""sudo in a foreign container, as a non-root user, through multiarchd's C entry: an arm64 Debian
image (tests/support/sudo_image.py: bookworm's minbase, its second stage run under emulation, and
Debian's sudo:arm64 with a NOPASSWD rule for `tester`) run by podman in a user namespace mapping
ids 0..65535, whose binfmt_misc instance is its own. sudo is a setuid-root arm64 program: with C
the kernel gives it euid 0 (QEMU runs it through the image multiarchd made, which drops QEMU_*
under AT_SECURE and ends QEMU's options); without C it runs with the user's own euid, and sudo
refuses ("effective uid is not 0"). About 90 s, once the image is made."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.fullns import run_in_full_userns
from tests.support.paths import BIN
from tests.support.podman import shell_setup
from tests.support.sudo_image import POLICY, UID, USER, build_image

pytestmark = [pytest.mark.container, pytest.mark.kernel]

SCRIPT = """
{setup}
mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
run() {{ CACHE_DIRECTORY={work}/cache RUNTIME_DIRECTORY={work}/run {bin}/multiarchd --once \\
    --config "$1" --log-target stderr 2>/dev/null | tail -n 1; }}
said={work}/podman.log  # shown only if a step fails
podman import --arch arm64 {image} localhost/sudo-arm64 >$said 2>&1 || {{ cat $said; exit 1; }}
as_tester() {{ podman run --rm --arch arm64 $LIMITS --user {user} localhost/sudo-arm64 \\
    sh -c "$1" 2>&1; }}
echo "with-C $(run {work}/c.yaml) $(sed -n 's/^flags: //p' /proc/sys/fs/binfmt_misc/multiarch-aarch64)"
echo "id $(as_tester 'id -u')"
# QEMU_* set by the user for sudo: QEMU would log as root to /owned (the image drops them)
echo "sudo $(as_tester 'QEMU_LOG=page QEMU_LOG_FILENAME=/owned sudo -n id -u
    test -e /owned && echo owned || echo no-file' | tr '\\n' ' ')"
echo "without-C $(run {work}/plain.yaml) $(sed -n 's/^flags: //p' /proc/sys/fs/binfmt_misc/multiarch-aarch64)"
echo "sudo-without-C $(as_tester 'sudo -n id -u; echo rc=$?' | tr '\\n' ' ')"
"""


def test_sudo_as_a_user_in_an_arm64_container_reaches_root_only_through_the_c_entry(
        trusted_dir: Path) -> None:
    image = build_image()  # dev/setup makes it once; made here if it is missing
    work = trusted_dir
    (work / "c.yaml").write_text(POLICY)
    (work / "plain.yaml").write_text(POLICY.replace("[C, F, P]", "[F, P]"))
    script = SCRIPT.format(setup=shell_setup(work / "storage"), work=work, bin=BIN,
                           image=image, user=USER)
    r = run_in_full_userns(["sh", "-c", script], timeout=1500)
    said = dict(line.split(" ", 1) for line in r.stdout.splitlines() if " " in line)
    assert r.returncode == 0, r.stdout[-3000:]
    assert said.get("with-C") == "converged: 1 active POCF", r.stdout
    assert said.get("id") == str(UID), r.stdout  # an ordinary user in the container
    # sudo reached euid 0; QEMU_LOG_FILENAME in the user's environment made no file of root's.
    assert said.get("sudo", "").split() == ["0", "no-file"], r.stdout
    assert said.get("without-C") == "converged: 1 active PF", r.stdout
    refused = said.get("sudo-without-C", "")
    assert "rc=1" in refused and "sudo: effective uid is not 0" in refused, r.stdout
