"""podman as the tests run it inside a user namespace of their own (tests.support.fullns):
Debian's podman with runc (crun refuses cgroup v1/v2 hybrids), vfs storage under a directory of
the test's, no network, and limits no higher than this machine's own."""

from __future__ import annotations

from pathlib import Path


def shell_setup(storage: Path) -> str:
    """Shell lines that mount this PID namespace's /proc (runc reads its children there) and
    a /run of its own (podman's runroot may have 50 characters at most), and define `podman`
    and `$LIMITS` for the lines after them."""
    return f"""mount -t proc proc /proc
mount -t tmpfs tmpfs /run
podman() {{
    command podman --root {storage} --runroot /run/podman --runtime runc \\
        --storage-driver vfs --cgroup-manager cgroupfs --events-backend none "$@"
}}
LIMITS="--network none --ulimit nofile=4096:4096 --ulimit nproc=4096:4096"
"""
