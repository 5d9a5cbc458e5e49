"""Where the checkout, the installed commands and the foreign busybox binaries are."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
BIN = Path(sys.executable).parent  # the virtualenv's multiarchd and multiarchctl
DEFAULT_POLICY = REPO / "config" / "arches.yaml"
BUSYBOX_CACHE = Path(os.environ.get("MULTIARCH_DEV_CACHE", "/var/cache/multiarchd-dev")) / "busybox"
# Debian architecture -> what that busybox's `uname -m` prints under emulation.
FOREIGN = {"arm64": "aarch64", "armhf": "armv7l", "s390x": "s390x", "ppc64el": "ppc64le",
           "mips64el": "mips64"}
