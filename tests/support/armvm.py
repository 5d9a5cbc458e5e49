"""An arm64 Debian machine booted under qemu-system-aarch64 (TCG, machine `virt`, no network):
the case multiarchd exists for, an aarch64 host running x86 programs and containers.

Built in two steps, each cached beside dev/setup's other downloads:

1. The root (`root.tar`, with the kernel and the initrd made in it): an arm64 debootstrap of
   bookworm with the packages the guest needs, whose second stage runs through multiarchd's own
   entries in a private table. Made once (a few minutes); delete the directory to make it again.
2. The disk (`disk-<sha256 of the .deb and the check unit>.img`): that root with the .deb built
   from this tree installed in it, as an ext4 image. Made again when the .deb changes (about a
   minute).

The guest runs what the host attaches as a second disk (a tar holding `run` and its files) once
the system is up, as the unit `host-check.service`, and writes what it finds on a virtio serial
port: the test reads the guest's own output, never a guess.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from .fullns import run_in_full_userns
from .paths import BIN, BUSYBOX_CACHE

CACHE = BUSYBOX_CACHE.parent / "arm64-vm"
ROOT_TAR = CACHE / "root.tar"
KERNEL = CACHE / "vmlinuz"
INITRD = CACHE / "initrd.img"
RESULTS_PORT = "io.github.multiarchd.results"
# What the guest needs beyond minbase: a kernel and its initrd, systemd as PID 1, what the .deb
# depends on, the arm64 QEMU, and a container engine (runc: Debian's podman would pick crun).
PACKAGES = ["linux-image-arm64", "initramfs-tools", "kmod", "udev", "systemd", "systemd-sysv",
            "dbus", "python3", "python3-gi", "python3-pydbus", "python3-yaml",
            "python3-watchdog", "python3-systemd", "qemu-user-static", "podman", "runc",
            # podman's containers-common needs a network stack, a virtual package debootstrap
            # does not resolve: one that provides it, named
            "containernetworking-plugins", "procps"]

CHECK_UNIT = """[Unit]
Description=Run the checks the host attached as the second disk
ConditionPathExists=/dev/vdb
Requires=dev-vdb.device
After=dev-vdb.device multi-user.target multiarchd.service

[Service]
Type=oneshot
# (not under /run: it is mounted noexec)
ExecStart=/bin/sh -c 'rm -rf /var/tmp/host-check && mkdir /var/tmp/host-check && tar -xf /dev/vdb -C /var/tmp/host-check && exec /var/tmp/host-check/run'
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
"""


def mirror() -> str:
    """The Debian mirror this machine's apt uses (as dev/setup finds it)."""
    for source in [Path("/etc/apt/sources.list"),
                   *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if not source.is_file():
            continue
        for line in source.read_text().splitlines():
            words = line.split()
            for w in words:
                if w.startswith(("http://", "https://")) and w.rstrip("/").endswith("/debian"):
                    return w.rstrip("/")
    return "http://deb.debian.org/debian"


def _in_private_table(root: Path, commands: str, log: Path, timeout: float) -> None:
    """Run shell `commands` in a user namespace mapping the first 65536 ids (so that dpkg can
    chown), after multiarchd registered arm64 with F in that namespace's own table."""
    policy = root.parent / "arches.yaml"
    policy.write_text("defaults: {flags: [F, P]}\narches: {arm64: {}}\n")
    script = f"""set -e
mount -t proc proc /proc
mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
{BIN}/multiarchd --once --config {policy} --log-target stderr
{commands}
"""
    r = run_in_full_userns(["sh", "-c", script], timeout=timeout)
    told = root / "debootstrap" / "debootstrap.log"  # debootstrap's own, which says why
    log.write_text(r.stdout + (told.read_text(errors="replace") if told.is_file() else ""))
    if r.returncode != 0:
        raise RuntimeError(f"building the arm64 root failed (exit {r.returncode}); see {log}:\n"
                           + r.stdout[-3000:])


def build_root() -> None:
    """Step 1: the root, kernel and initrd, unless they are there already."""
    if ROOT_TAR.is_file() and KERNEL.is_file() and INITRD.is_file():
        return
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as work:
        root = Path(work) / "root"
        debs = CACHE / "debs"  # kept: a second try downloads nothing
        debs.mkdir(exist_ok=True)
        first = subprocess.run(
            ["debootstrap", "--foreign", "--arch=arm64", "--variant=minbase",
             f"--cache-dir={debs}",
             "--include=" + ",".join(PACKAGES), "bookworm", str(root), mirror()],
            capture_output=True, text=True, timeout=1800)
        (CACHE / "debootstrap.log").write_text(first.stdout + first.stderr)
        if first.returncode != 0:
            raise RuntimeError("debootstrap's first stage failed: " + first.stderr[-2000:])
        _small_initrd(root)
        _in_private_table(root, f"""container=lxc chroot {root} /debootstrap/debootstrap --second-stage
chroot {root} sh -c 'ls /boot/initrd.img-* >/dev/null 2>&1 || update-initramfs -c -k all'
""", CACHE / "second-stage.log", timeout=3600)
        _configure(root)
        [kernel] = sorted((root / "boot").glob("vmlinuz-*"))
        [initrd] = sorted((root / "boot").glob("initrd.img-*"))
        shutil.copyfile(kernel, KERNEL)
        shutil.copyfile(initrd, INITRD)
        subprocess.run(["tar", "-C", str(root), "--numeric-owner", "--xattrs",
                        "--exclude=./var/cache/apt/archives/*.deb", "-cf",
                        f"{ROOT_TAR}.new", "."], check=True)
        os.replace(f"{ROOT_TAR}.new", ROOT_TAR)


def _small_initrd(root: Path) -> None:
    """Only the modules a virt machine needs to mount its root: Debian's default (`most`) runs
    modinfo on every module under emulation, twice (about 15 minutes)."""
    (root / "etc/initramfs-tools/conf.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/initramfs-tools/conf.d/arm64-vm").write_text("MODULES=list\nCOMPRESS=gzip\n")
    (root / "usr/share/initramfs-tools/modules.d").mkdir(parents=True, exist_ok=True)
    (root / "usr/share/initramfs-tools/modules.d/arm64-vm").write_text(
        "virtio_mmio\nvirtio_pci\nvirtio_blk\ncrc32c_generic\next4\n")


def _configure(root: Path) -> None:
    """What makes the root a machine that boots to the host's checks, and nothing slower."""
    (root / "etc/hostname").write_text("arm64-vm\n")
    (root / "etc/hosts").write_text("127.0.0.1 localhost\n127.0.1.1 arm64-vm\n")
    (root / "etc/fstab").write_text("/dev/vda / ext4 rw,errors=remount-ro 0 0\n")
    # Nothing here reaches a network: apt's timers would only wake up to fail.
    for timer in ("apt-daily.timer", "apt-daily-upgrade.timer"):
        (root / "etc/systemd/system" / timer).symlink_to("/dev/null")
    # The serial console is where the kernel and systemd say what went wrong, if anything does.
    (root / "etc/systemd/system/getty.target.wants").mkdir(parents=True, exist_ok=True)


def _install_check_unit(root: Path) -> None:
    (root / "etc/systemd/system/host-check.service").write_text(CHECK_UNIT)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / "host-check.service").unlink(missing_ok=True)
    (wants / "host-check.service").symlink_to("/etc/systemd/system/host-check.service")


def disk_key(deb: Path) -> str:
    """What the disk is made from beyond the root: the .deb, and the unit that runs checks."""
    return hashlib.sha256(deb.read_bytes() + CHECK_UNIT.encode()).hexdigest()[:16]


def disk_for(deb: Path) -> Path:
    """Step 2: the ext4 image of the root with `deb` installed, made when `deb` changed."""
    build_root()
    disk = CACHE / f"disk-{disk_key(deb)}.img"
    if disk.is_file():
        return disk
    for old in CACHE.glob("disk-*.img"):
        old.unlink()
    with tempfile.TemporaryDirectory(dir=CACHE) as work:
        root = Path(work) / "root"
        root.mkdir()
        subprocess.run(["tar", "-C", str(root), "--numeric-owner", "--xattrs", "-xf",
                        str(ROOT_TAR)], check=True)
        _install_check_unit(root)
        shutil.copyfile(deb, root / "tmp" / deb.name)
        _in_private_table(root, f"""chroot {root} dpkg -i /tmp/{deb.name}
rm {root}/tmp/{deb.name}
""", CACHE / "install.log", timeout=900)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "arm64-root", "-d", str(root),
                        f"{disk}.new", "4G"], check=True)
        os.replace(f"{disk}.new", disk)
    return disk


def check_disk(path: Path, run: str, files: dict[str, Path]) -> Path:
    """The second disk: a tar holding the script `run` and `files` (name -> host path)."""
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        script = path.with_suffix(".run")
        script.write_text(run)
        script.chmod(0o755)
        tar.add(script, "run")
        for name, source in files.items():
            tar.add(source, name)
    return path


def boot(disk: Path, checks: Path, cpu: str, out: Path, timeout: float) -> tuple[str, str]:
    """Boot the machine (2 vCPUs, 2 GiB) on a throw-away overlay of `disk` until it powers
    off; returns what it wrote on the results port and on its serial console."""
    results = out / f"results-{cpu}.txt"
    console = out / f"console-{cpu}.txt"
    # GICv3: the A64FX model has no GICv2 CPU interface (the kernel panics reading ICC_SRE_EL1).
    argv = ["qemu-system-aarch64", "-machine", "virt,gic-version=3", "-accel", "tcg,thread=multi",
            "-cpu", cpu, "-smp", "2", "-m", "2048", "-nographic", "-nodefaults",
            "-no-user-config", "-nic", "none", "-snapshot",
            "-kernel", str(KERNEL), "-initrd", str(INITRD),
            "-append", "root=/dev/vda rw console=ttyAMA0 quiet systemd.show_status=0",
            "-drive", f"file={disk},if=none,format=raw,id=root",
            "-device", "virtio-blk-pci,drive=root",
            "-drive", f"file={checks},if=none,format=raw,readonly=on,id=checks",
            "-device", "virtio-blk-pci,drive=checks",
            "-device", "virtio-serial-pci",
            "-chardev", f"file,id=results,path={results}",
            "-device", f"virtserialport,chardev=results,name={RESULTS_PORT}",
            "-serial", f"file:{console}"]
    try:
        subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                       check=True)
    except subprocess.TimeoutExpired:
        pass  # what it said so far tells the test what did not happen
    return _text(results), _text(console)


def _text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


if __name__ == "__main__":
    build_root()
    print(f"arm64 machine's root in {CACHE}")
