"""Foreign container images under a real container engine, through the entries multiarchd
registered: what most users do with it. podman (Debian's, with runc) runs in a user namespace
whose IDs 0..65535 map to the host's, with a binfmt_misc instance of its own, so the host's
table is never touched; the images are made here from Debian's foreign busybox binaries (no
registry)."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from tests.support.fullns import run_in_full_userns
from tests.support.paths import BIN, BUSYBOX_CACHE, DEFAULT_POLICY, FOREIGN
from tests.support.podman import shell_setup

pytestmark = pytest.mark.container  # `pytest -m container` runs only these

# Debian architecture -> podman's --arch and what the image's busybox says as `uname -m`.
IMAGES = {deb: (deb.replace("el", "le") if deb == "ppc64el" else
                "arm" if deb == "armhf" else deb, uname) for deb, uname in FOREIGN.items()}
IMAGES["riscv64"] = ("riscv64", "riscv64")  # Debian 13's busybox (dev/setup fetches it)
# Debian 13's arm64 busybox, built with branch protection: through the file that carries
# aarch64's CPU model (the container holds neither its path nor QEMU's).
IMAGES["arm64-trixie"] = ("arm64", "aarch64")

SCRIPT = """
set -e
{setup}
mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
CACHE_DIRECTORY={work}/cache RUNTIME_DIRECTORY={work}/run {bin}/multiarchd --once \\
    --config {policy} 2>/dev/null | tail -n 1
echo "interpreter $(sed -n 's/^interpreter //p' /proc/sys/fs/binfmt_misc/multiarch-aarch64)"
for image in {images}; do
    deb=${{image%%:*}}; arch=${{image#*:}}
    podman import --arch "$arch" {work}/$deb.tar localhost/busybox-$deb >/dev/null
    echo "$deb $(podman run --rm --arch "$arch" $LIMITS localhost/busybox-$deb \\
        /bin/busybox uname -m)"
done
echo "QEMU-variables $(podman run --rm --arch arm64 $LIMITS localhost/busybox-arm64-trixie \
    /bin/busybox env | grep -c QEMU_ || true)"
# A build whose RUN step is a foreign program, as every arm64 image build on x86_64 is.
podman build --arch arm64 $LIMITS -t localhost/built-arm64 {work}/context >/dev/null 2>&1
echo "built $(podman image inspect --format '{{{{.Architecture}}}}' localhost/built-arm64)" \\
    "$(podman run --rm --arch arm64 $LIMITS localhost/built-arm64 /bin/busybox cat /arch)"
"""

CONTAINERFILE = """FROM localhost/busybox-arm64
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox uname -m > /arch"]
"""


@pytest.mark.kernel  # root, a user namespace with a binfmt_misc of its own, podman
def test_foreign_images_run_and_build_under_podman_through_our_entries(
        trusted_dir: Path, state_dir: Path) -> None:
    work = trusted_dir  # root's, podman's storage and the images' tars
    for deb in IMAGES:
        busybox = BUSYBOX_CACHE / deb / "bin" / "busybox"
        assert busybox.is_file(), f"{busybox} is missing: run dev/setup"
        with tarfile.open(work / f"{deb}.tar", "w") as tar:
            tar.add(busybox.resolve(), arcname="bin/busybox")  # (trixie: a link to usr/bin)
    (work / "context").mkdir()
    (work / "context" / "Containerfile").write_text(CONTAINERFILE)
    script = SCRIPT.format(setup=shell_setup(work / "storage"), work=work, bin=BIN,
                           policy=DEFAULT_POLICY,
                           images=" ".join(f"{deb}:{arch}" for deb, (arch, _) in IMAGES.items()))
    r = run_in_full_userns(["sh", "-c", script], timeout=600)
    assert r.returncode == 0, r.stdout[-3000:]
    lines = r.stdout.splitlines()
    assert lines[0] == "converged: 33 active", r.stdout
    said = dict(line.split(" ", 1) for line in lines[1:])
    assert said["interpreter"] == f"{state_dir}/cpu/aarch64"  # QEMU carrying its CPU model
    assert said["QEMU-variables"] == "0"
    for deb, (_, uname) in IMAGES.items():
        assert said.get(deb) == uname, (deb, r.stdout)
    assert said.get("built") == "arm64 aarch64", r.stdout


# Run inside the namespace by the system's Python: Docker's daemons started as systemd would
# start them (each says READY=1 on NOTIFY_SOCKET when it serves), then an arm64 image loaded
# (`docker import` cannot set an image's platform in Debian 12's Docker) and run.
DOCKER = """
import os, select, socket, subprocess, sys
work, multiarchd, policy = sys.argv[1:4]
run = lambda *argv: subprocess.run(argv, check=True, capture_output=True, text=True).stdout
run("mount", "-t", "proc", "proc", "/proc")
run("mount", "-t", "binfmt_misc", "binfmt_misc", "/proc/sys/fs/binfmt_misc")
run("mount", "-t", "tmpfs", "tmpfs", "/run")  # the daemons' sockets and state, this run's
env = dict(os.environ, CACHE_DIRECTORY=work + "/cache", RUNTIME_DIRECTORY=work + "/run")
print(subprocess.run([multiarchd, "--once", "--config", policy], env=env, text=True,
                     capture_output=True).stdout.splitlines()[-1], flush=True)

def started(name, argv):
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(f"/run/{name}.notify")
    log = open(f"{work}/{name}.log", "w")
    subprocess.Popen(argv, stdout=log, stderr=log,
                     env=dict(os.environ, NOTIFY_SOCKET=f"/run/{name}.notify"))
    while b"READY=1" not in (notify.recv(4096) if select.select([notify], [], [], 120)[0]
                             else sys.exit(f"{name} did not start: see {work}/{name}.log")):
        pass

started("containerd", ["containerd", "--root", work + "/containerd", "--state",
                       "/run/containerd", "--address", "/run/containerd.sock"])
started("dockerd", ["dockerd", "--data-root", work + "/docker", "--exec-root", "/run/docker",
                    "--pidfile", "/run/docker.pid", "-H", "unix:///run/docker.sock",
                    "--containerd", "/run/containerd.sock", "--bridge", "none",
                    "--iptables=false", "--ip-masq=false", "--storage-driver", "vfs",
                    "--exec-opt", "native.cgroupdriver=cgroupfs"])
docker = ["/usr/bin/docker", "-H", "unix:///run/docker.sock"]
run(*docker, "load", "-i", work + "/busybox-arm64-docker.tar")
print("docker", run(*docker, "run", "--rm", "--platform", "linux/arm64", "--network", "none",
                    "busybox-arm64:latest", "/bin/busybox", "uname", "-m").strip(), flush=True)
"""


def docker_archive(busybox: Path, arch: str, tag: str, out: Path) -> None:
    """What `docker save` writes for a one-layer image of `busybox` for `arch`."""
    import hashlib
    import io
    import json
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        tar.add(busybox.resolve(), arcname="bin/busybox")
    digest = hashlib.sha256(layer.getvalue()).hexdigest()
    config = json.dumps({"architecture": arch, "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [f"sha256:{digest}"]}}).encode()
    name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": name, "RepoTags": [tag],
                            "Layers": [f"{digest}/layer.tar"]}]).encode()
    with tarfile.open(out, "w") as tar:
        for member, blob in ((f"{digest}/layer.tar", layer.getvalue()), (name, config),
                             ("manifest.json", manifest)):
            info = tarfile.TarInfo(member)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))


@pytest.mark.kernel  # root, a user namespace with a binfmt_misc of its own, Docker's daemons
def test_docker_runs_an_arm64_image_through_our_entries(trusted_dir: Path) -> None:
    work = trusted_dir
    docker_archive(BUSYBOX_CACHE / "arm64" / "bin" / "busybox", "arm64", "busybox-arm64:latest",
                   work / "busybox-arm64-docker.tar")
    r = run_in_full_userns(["/usr/bin/python3", "-c", DOCKER, str(work), str(BIN / "multiarchd"),
                            str(DEFAULT_POLICY)], timeout=300)
    assert r.returncode == 0, r.stdout[-3000:]
    assert r.stdout.splitlines() == ["converged: 33 active", "docker aarch64"], r.stdout
