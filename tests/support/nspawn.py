"""systemd as PID 1 in a systemd-nspawn container booted from the host's own root through a tmpfs
overlay, with a user namespace of its own, so that it has its own binfmt_misc instance.

The user namespace maps the container's root to the host's (0:65536) so that the host's files
need no chown; it is still a namespace of its own, which is what gives binfmt_misc its own table.
Everything the test changes lands in the tmpfs; `close()` removes the container, its mounts and
the cgroups nspawn leaves behind, also when the test fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from .closing import Closing
from .notify import NotifyListener

CGROUP_TREES = ("unified", "systemd")
CGROUP_LEFTOVERS = [f"/sys/fs/cgroup/{tree}/{name}" for tree in CGROUP_TREES
                    for name in ("payload", "supervisor")]


def _remove_cgroups(own: str = "") -> None:
    """What nspawn leaves of its cgroups (payload, supervisor), under the root cgroup or, for a
    container with a cgroup of its own, under that (and that too)."""
    tops = [f"/sys/fs/cgroup/{tree}/{own}" for tree in CGROUP_TREES] if own else CGROUP_LEFTOVERS
    for top in tops:
        if os.path.isdir(top):
            for root, _dirs, _files in os.walk(top, topdown=False):  # deepest first
                os.rmdir(root)


class BootedContainer(Closing):
    def __init__(self, tmp: Path, name: str = "multiarchd-test", timeout: float = 90,
                 private: bool = True, own_cgroup: bool = False) -> None:
        """`private`: with the drop-ins that give both units --private, as this container's
        admin would (without, the units refuse: a private table no one asked for).
        `own_cgroup`: nspawn runs in a cgroup named after the container, so that it can boot
        beside another container (whose payload and supervisor cgroups are then left alone)."""
        self.name = name
        self.private = private
        self.cgroup = name if own_cgroup else ""
        self.base = tmp / "nspawn"
        self.merged = self.base / "merged"
        self.mounted: list[Path] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.leader = 0
        _remove_cgroups(self.cgroup)
        try:
            self._prepare()
            self._boot(timeout)
        except BaseException:
            self.close()
            raise

    def _prepare(self) -> None:
        self.base.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(self.base)], check=True)
        self.mounted.append(self.base)
        for d in ("upper", "work", "merged"):
            (self.base / d).mkdir()
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir=/,upperdir={self.base}/upper,workdir={self.base}/work",
                        str(self.merged)], check=True)
        self.mounted.append(self.merged)
        # A plain Debian host starts the services its packages install; build images often
        # carry a policy-rc.d that says no.
        (self.merged / "usr/sbin/policy-rc.d").unlink(missing_ok=True)
        # man-db's trigger rebuilds the whole index of the host's manual pages in the overlay at
        # every dpkg run that ships one (a minute on two busy cores); as build images do, the
        # container says no (debconf's man-db/auto-update), and `man` still finds every page.
        (self.merged / "var/lib/man-db/auto-update").unlink(missing_ok=True)
        # The container has a user namespace of its own: its table is private, on purpose (the
        # units would refuse to make one by accident).
        if self.private:
            self._give_private()
        # A journal that outlives a reboot: `journalctl -b -1` tells what the shutdown did.
        (self.merged / "var/log/journal").mkdir(parents=True, exist_ok=True)

    def _give_private(self) -> None:
        for unit, line in (("multiarchd-early", "--once --private"),
                           ("multiarchd", "--no-mount --private")):
            drop_in = self.merged / f"etc/systemd/system/{unit}.service.d"
            drop_in.mkdir(parents=True, exist_ok=True)
            (drop_in / "private.conf").write_text(
                f"[Service]\nExecStart=\nExecStart=/usr/bin/multiarchd {line}\n")

    def _boot(self, timeout: float) -> None:
        with NotifyListener(self.base, "nspawn") as notify, \
                open(self.console_log, "ab") as console:
            self.proc = subprocess.Popen(
                ["systemd-nspawn", "-D", str(self.merged), "-M", self.name,
                 "--private-users=0:65536", "--private-users-ownership=off", "--register=no",
                 "--keep-unit", "--private-network", "--console=passive", "--notify-ready=yes",
                 "-b"],
                env=dict(os.environ, NOTIFY_SOCKET=str(notify.path)),
                stdout=console, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=self._enter_cgroup if self.cgroup else None)
            notify.wait_for("READY=1", timeout)
            self.leader = int(notify.value("X_NSPAWN_LEADER_PID") or 0)
        assert self.leader, "nspawn did not say which process is the container's init"

    def _enter_cgroup(self) -> None:
        """(In nspawn's process, before it runs.) Into the container's own cgroup."""
        for tree in CGROUP_TREES:
            os.makedirs(f"/sys/fs/cgroup/{tree}/{self.cgroup}", exist_ok=True)
            with open(f"/sys/fs/cgroup/{tree}/{self.cgroup}/cgroup.procs", "w") as f:
                f.write("0")

    @property
    def console_log(self) -> Path:
        """What the container printed on its console (systemd's status lines), every boot."""
        return self.base / "console.log"

    def reboot(self, timeout: float = 90) -> str:
        """Power off (bounded: a hang is a failure), then boot again from the same root; what
        the console said from the poweroff on."""
        assert self.proc is not None
        start = self.console_log.stat().st_size
        self.run("systemctl", "poweroff", "--no-block")
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"poweroff did not finish in {timeout} s") from None
        with open(self.console_log, "rb") as f:
            f.seek(start)
            said = f.read().decode(errors="replace")
        self._boot(timeout)
        return said

    # -- inside ---------------------------------------------------------------------------------
    def run(self, *argv: str, check: bool = True, timeout: float = 120,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(["nsenter", "-t", str(self.leader), "-a", "--", *argv],
                           capture_output=True, text=True, timeout=timeout, input=stdin)
        if check and r.returncode != 0:
            raise AssertionError(f"{argv} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r

    def popen(self, *argv: str) -> subprocess.Popen[str]:
        return subprocess.Popen(["nsenter", "-t", str(self.leader), "-a", "--", *argv],
                                stdout=subprocess.PIPE, text=True)

    def copy_in(self, src: Path, dest: str) -> None:
        shutil.copy(src, self.merged / dest.lstrip("/"))

    @property
    def binfmt(self) -> Path:
        """The container's own binfmt_misc instance, seen from the host."""
        return Path(f"/proc/{self.leader}/root/proc/sys/fs/binfmt_misc")

    def table(self) -> dict[str, str]:
        return {n: (self.binfmt / n).read_text() for n in sorted(os.listdir(self.binfmt))
                if n not in ("register", "status")}

    # -- cleanup --------------------------------------------------------------------------------
    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            if self.leader:
                subprocess.run(["nsenter", "-t", str(self.leader), "-a", "--", "systemctl",
                                "poweroff", "--no-block"], capture_output=True, timeout=30)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        for path in reversed(self.mounted):
            subprocess.run(["umount", "--lazy", str(path)], check=False)
        self.mounted.clear()
        _remove_cgroups(self.cgroup)
        shutil.rmtree(f"/run/systemd/nspawn/propagate/{self.name}", ignore_errors=True)
