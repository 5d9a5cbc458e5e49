"""A private system bus: dbus-daemon of type system, with the shipped multiarchd policy loaded
unchanged from config/dbus/, listening on a socket every user can reach."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import tempfile
from pathlib import Path

from .closing import Closing
from .paths import REPO

SHIPPED_POLICY_DIR = REPO / "config" / "dbus"

# The same rules as Debian's /usr/share/dbus-1/system.conf, minus forking and service activation.
_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path={socket}</listen>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Monitoring"/>
    <!-- a stand-in polkit, for the tests that need one that never answers (polkitd's own
         policy lets its user own the name, and anyone call it) -->
    <allow own="org.freedesktop.PolicyKit1"/>
  </policy>
  <policy context="default">
    <allow send_destination="org.freedesktop.PolicyKit1"/>
  </policy>
  <includedir>{policy_dir}</includedir>
</busconfig>
"""


class PrivateBus(Closing):
    def __init__(self, timeout: float = 10.0) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="multiarchd-bus-"))
        self.dir.chmod(0o755)  # `nobody` must reach the socket
        self.socket = self.dir / "system_bus_socket"
        self.address = f"unix:path={self.socket}"
        self.config = self.dir / "system.conf"
        self.log = self.dir / "dbus-daemon.log"  # its stderr
        self.config.write_text(_CONFIG.format(socket=self.socket, policy_dir=SHIPPED_POLICY_DIR))
        self.proc: subprocess.Popen[str] | None = None
        self.start(timeout)

    def start(self, timeout: float = 10.0) -> None:
        # What it says goes to a file, never to a pipe nobody reads: under load it warns at
        # every refused call (too many pending replies), and a full pipe hangs the whole bus.
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(
                ["dbus-daemon", f"--config-file={self.config}", "--nofork", "--print-address"],
                stdout=subprocess.PIPE, stderr=log, text=True)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert ready and self.proc.stdout.readline().startswith("unix:"), "dbus-daemon did not start"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        if self.proc:
            if self.proc.stdout:
                self.proc.stdout.close()
        self.socket.unlink(missing_ok=True)

    @property
    def env(self) -> dict[str, str]:
        return {"DBUS_SYSTEM_BUS_ADDRESS": self.address}

    def busctl(self, *args: str, user: str | None = None,
               timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """busctl on this bus, as root or (user='nobody') as an unprivileged user."""
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if user else []
        return subprocess.run([*prefix, "busctl", "--system", *args], capture_output=True,
                              text=True, timeout=timeout, env=dict(os.environ, **self.env))

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
