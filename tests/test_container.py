"""The container image, built with podman from the shipped Containerfile on a Debian base made
locally (no image registry), run privileged in a user namespace of its own, so that the table
it keeps is a private one: the daemon converges, the image's HEALTHCHECK says healthy, and a
foreign busybox runs in the container."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.notify import NotifyListener
from tests.support.paths import BUSYBOX_CACHE, REPO

pytestmark = pytest.mark.systemd

BASE_ROOT = BUSYBOX_CACHE.parent / "bookworm-minbase-rootfs.tar"
BASE_IMAGE = "docker.io/library/debian:bookworm-slim"  # the Containerfile's FROM
# runc (crun refuses cgroup v1/v2 hybrids); limits no higher than this machine's own, which
# may not be raised without CAP_SYS_RESOURCE.
PODMAN = ["podman", "--runtime", "runc"]
LIMITS = ["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]


def podman(*argv: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([*PODMAN, *argv], capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"podman {argv}: {r.stdout[-2000:]}{r.stderr[-2000:]}"
    return r


@pytest.fixture
def image() -> Iterator[str]:
    assert BASE_ROOT.is_file(), f"{BASE_ROOT} is missing: run dev/setup"
    tag = f"localhost/multiarchd-test:{uuid.uuid4().hex[:12]}"
    if subprocess.run([*PODMAN, "image", "exists", BASE_IMAGE]).returncode != 0:
        with open(BASE_ROOT, "rb") as root:
            subprocess.run([*PODMAN, "import", "-", BASE_IMAGE], stdin=root, check=True,
                           capture_output=True, timeout=600)
    # --format docker: the OCI format has no HEALTHCHECK.
    podman("build", "--format", "docker", "--pull=never", "--network=host", "-t", tag,
           "-f", str(REPO / "packaging/container/Containerfile"), str(REPO), timeout=1200)
    try:
        yield tag
    finally:
        subprocess.run([*PODMAN, "rmi", "-f", tag], capture_output=True)


def test_the_image_keeps_a_private_table_and_says_it_is_healthy(
        image: str, tmp_path: Path) -> None:
    inspect = podman("image", "inspect", "--format",
                     "{{json .Config.Healthcheck.Test}} {{index .Labels "
                     "\"org.opencontainers.image.source\"}}", image).stdout
    assert '["CMD","multiarchctl","status","--local"]' in inspect
    assert "https://github.com/multiarchd/multiarchd" in inspect
    name = f"multiarchd-test-{os.getpid()}"
    sockets = tmp_path / "notify"
    sockets.mkdir(mode=0o755)
    with NotifyListener(sockets) as notify:
        os.chmod(notify.path, 0o777)  # the container's root is another uid on this side
        podman("run", "-d", "--name", name, "--privileged",
               # A user namespace of its own: the binfmt_misc it mounts is its own instance
               # (--private). Its root is the real root, whose files are the only ones trusted:
               # mapped to another uid, the image's own emulators would be that user's.
               "--uidmap", "0:0:65536", "--gidmap", "0:0:65536",
               "--network=none", *LIMITS, "--health-interval", "disable",
               "-v", f"{sockets}:/run/notify", "-e", f"NOTIFY_SOCKET=/run/notify/{notify.path.name}",
               image, "--private")
        try:
            notify.wait_for("READY=1", 120)
            assert any(m.startswith("STATUS=converged: 33 active") for m in notify.messages), \
                notify.messages
            podman("healthcheck", "run", name)  # exit 0: healthy
            status = podman("exec", name, "multiarchctl", "status", "--local").stdout
            assert "converged: 33 active" in status
            podman("cp", str(BUSYBOX_CACHE / "s390x/bin/busybox"), f"{name}:/busybox")
            assert podman("exec", name, "/busybox", "uname", "-m").stdout.strip() == "s390x"
        finally:
            subprocess.run([*PODMAN, "rm", "-f", "-t", "0", name], capture_output=True)
