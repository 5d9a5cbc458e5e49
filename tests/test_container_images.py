"""Foreign container images under a real container engine, through the entries multiarchd
registered: what most users do with it. podman (Debian's, with runc) runs in a user namespace
whose IDs 0..65535 map to the host's, with a binfmt_misc instance of its own, so the host's
table is never touched; the images are made here from Debian's foreign busybox binaries (no
registry)."""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fullns import run_in_full_userns
from tests.support.paths import BIN, BUSYBOX_CACHE, DEFAULT_POLICY, FOREIGN

# Debian architecture -> podman's --arch and what the image's busybox says as `uname -m`.
IMAGES = {deb: (deb.replace("el", "le") if deb == "ppc64el" else
                "arm" if deb == "armhf" else deb, uname) for deb, uname in FOREIGN.items()}
IMAGES["riscv64"] = ("riscv64", "riscv64")  # Debian 13's busybox (dev/setup fetches it)

SCRIPT = """
set -e
mount -t proc proc /proc  # this PID namespace's (runc reads its children there)
mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
CACHE_DIRECTORY={work}/cache RUNTIME_DIRECTORY={work}/run {bin}/multiarchd --once \\
    --config {policy} 2>/dev/null | tail -n 1
podman() {{
    command podman --root {work}/storage --runroot {work}/runroot --runtime runc \\
        --storage-driver vfs --cgroup-manager cgroupfs --events-backend none "$@"
}}
LIMITS="--network none --ulimit nofile=4096:4096 --ulimit nproc=4096:4096"
for image in {images}; do
    deb=${{image%%:*}}; arch=${{image#*:}}
    podman import --arch "$arch" {work}/$deb.tar localhost/busybox-$deb >/dev/null
    echo "$deb $(podman run --rm --arch "$arch" $LIMITS localhost/busybox-$deb \\
        /bin/busybox uname -m)"
done
# A build whose RUN step is a foreign program, as every arm64 image build on x86_64 is.
podman build --arch arm64 $LIMITS -t localhost/built-arm64 {work}/context >/dev/null 2>&1
echo "built $(podman image inspect --format '{{{{.Architecture}}}}' localhost/built-arm64)" \\
    "$(podman run --rm --arch arm64 $LIMITS localhost/built-arm64 /bin/busybox cat /arch)"
"""

CONTAINERFILE = """FROM localhost/busybox-arm64
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox uname -m > /arch"]
"""


@pytest.fixture
def work() -> Iterator[Path]:
    """A root-owned scratch directory (podman's storage, the images' tars)."""
    path = Path(tempfile.mkdtemp(prefix="multiarchd-images-", dir="/var/lib"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.kernel  # root, a user namespace with a binfmt_misc of its own, podman
def test_foreign_images_run_and_build_under_podman_through_our_entries(work: Path) -> None:
    for deb in IMAGES:
        busybox = BUSYBOX_CACHE / deb / "bin" / "busybox"
        assert busybox.is_file(), f"{busybox} is missing: run dev/setup"
        with tarfile.open(work / f"{deb}.tar", "w") as tar:
            tar.add(busybox.resolve(), arcname="bin/busybox")  # (trixie: a link to usr/bin)
    (work / "context").mkdir()
    (work / "context" / "Containerfile").write_text(CONTAINERFILE)
    script = SCRIPT.format(work=work, bin=BIN, policy=DEFAULT_POLICY,
                           images=" ".join(f"{deb}:{arch}" for deb, (arch, _) in IMAGES.items()))
    r = run_in_full_userns(["sh", "-c", script], timeout=600)
    assert r.returncode == 0, r.stdout[-3000:]
    lines = r.stdout.splitlines()
    assert lines[0] == "converged: 33 active", r.stdout
    said = dict(line.split(" ", 1) for line in lines[1:])
    for deb, (_, uname) in IMAGES.items():
        assert said.get(deb) == uname, (deb, r.stdout)
    assert said.get("built") == "arm64 aarch64", r.stdout
