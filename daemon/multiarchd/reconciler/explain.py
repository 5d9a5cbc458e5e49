"""What `explain` decides from, read here for both `multiarchctl explain` (a file it reads) and
the daemon's D-Bus Explain (a file its caller read): the table, whose table it is, and which
interpreters the kernel would look up at exec time and not find (core/explain.py decides)."""

from __future__ import annotations

import os

from ..core.explain import Where
from ..kernel.owner import describe, inherited, private
from ..kernel.table import BinfmtTable
from ..model.observed import Observed
from ..model.options import Config


def observe(config: Config) -> tuple[Observed, bool]:
    """The table, and whether binfmt_misc is mounted at all (an empty table when not)."""
    table = BinfmtTable(config.binfmt_dir)
    mounted = table.mounted()
    return (table.read() if mounted else Observed(())), mounted


def where(config: Config, host: str, observed: Observed, mounted: bool, root: str = "",
          script: str | None = None) -> Where:
    """`root`: the container's or chroot's the file runs in ("": this one); `script`: the
    interpreter a #! line names."""
    own = mounted and private(config.binfmt_dir) and not inherited(config.binfmt_dir)
    table = describe(config.binfmt_dir) if mounted else f"none mounted at {config.binfmt_dir}"
    return Where(host, table, config.binfmt_dir, config.policy_path, own, mounted, root,
                 _missing(observed, root, script))


def _missing(observed: Observed, root: str, script: str | None) -> frozenset[str]:
    """The interpreters (entries' without F, and a #! one) that are not there under `root`:
    those the kernel looks up at each exec, in the caller's root (F opened its own once)."""
    paths = {e.registration.interpreter for e in observed.entries
             if "F" not in e.registration.flags}
    if script:
        paths.add(script)
    return frozenset(p for p in paths if not os.path.exists(root + p))
