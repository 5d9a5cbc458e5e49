"""Verdicts kept across starts: a probe that ran through an entry is not run again at the next
start while the registration (its register line), the interpreter file (identity.py's note of
it) and the kernel are the same. Only successes are kept; a failure is probed again."""

from __future__ import annotations

import contextlib
import json
import os

from .. import identity
from ..core.probes import Verdict
from ..host import keep
from ..model.registration import Registration

EARLIER = "probe ran at an earlier start, through the same entry and interpreter file"


def _identity(reg: Registration) -> str | None:
    """The interpreter file as identity.py notes it (size and change time too: a file rewritten
    in place with its modification time put back is another file) on this kernel."""
    ident = identity.of_path(reg.interpreter)
    if ident in (identity.MISSING, identity.UNKNOWN):
        return None
    return f"{ident} {identity.kernel()}"


class Proven:
    def __init__(self, path: str | None = None) -> None:
        self.path = path or os.path.join(keep.cache_dir(), "verdicts.json")
        self._kept: dict[str, list[str]] = {}
        with contextlib.suppress(ValueError, TypeError):
            loaded = json.loads(keep.read_kept(self.path) or "{}")
            self._kept = {arch: v for arch, v in loaded.items()
                          if isinstance(v, list) and len(v) == 2 and all(isinstance(x, str)
                                                                         for x in v)}

    def recall(self, arch: str, reg: Registration) -> Verdict | None:
        ident = _identity(reg)
        if ident is not None and self._kept.get(arch) == [reg.register_line(), ident]:
            return Verdict(arch, "ok", EARLIER)
        return None

    def remember(self, arch: str, reg: Registration, verdict: Verdict) -> None:
        ident = _identity(reg)
        entry = [reg.register_line(), ident] if verdict.ok and ident else None
        if self._kept.get(arch) == entry:
            return
        if entry is None:
            self._kept.pop(arch, None)
        else:
            self._kept[arch] = entry
        with contextlib.suppress(OSError):  # nowhere to keep them: probed again next start
            keep.write_whole(self.path, json.dumps(self._kept, indent=1, sort_keys=True),
                             make_dir=True)
