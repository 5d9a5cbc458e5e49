"""Where the checkout, the installed commands and the foreign busybox binaries are."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
BIN = Path(sys.executable).parent  # the virtualenv's multiarchd and multiarchctl
DEFAULT_POLICY = REPO / "config" / "arches.yaml"
DEV_CACHE = Path(os.environ.get("MULTIARCH_DEV_CACHE", "/var/cache/multiarchd-dev"))
BUSYBOX_CACHE = DEV_CACHE / "busybox"
QEMU_DEBS = DEV_CACHE / "qemu-user-static"  # two real versions of the package, from dev/setup


@dataclass(frozen=True)
class Busybox:
    """One line of dev/foreign-busybox, the one list of the busyboxes dev/setup fetches."""

    dir: str  # under BUSYBOX_CACHE
    debian: str  # the package's Debian architecture
    release: str
    arch: str  # the catalog's name
    uname: str  # what `uname -m` prints when it runs emulated

    @property
    def path(self) -> Path:
        return BUSYBOX_CACHE / self.dir / "bin" / "busybox"


BUSYBOXES = {b.dir: b for b in (
    Busybox(*line.split()) for line in (REPO / "dev" / "foreign-busybox").read_text().splitlines()
    if line.strip() and not line.startswith("#"))}
# The foreign programs most tests run: bookworm's, of the architectures an x86_64 host does not
# run itself (Debian architecture -> what `uname -m` prints under emulation).
FOREIGN = {b.debian: b.uname for b in BUSYBOXES.values()
           if b.release == "bookworm" and b.arch not in ("x86_64", "i386")}
