"""Verdicts kept across starts: a probe that ran through an entry is not run again at the next
start while the registration (its register line), the interpreter file (identity.py's note of
it) and the kernel are the same. A failure is probed again; so is a file proven on another
kernel only, but as often as a new file is tried (doubted): a crash that comes and goes
depends on the kernel as much as on the file (brk randomisation: tonistiigi/binfmt#215), and a
failure once seen is not forgotten by a restart, whose one run would pass three times in four."""

from __future__ import annotations

import contextlib
import json
import os

from .. import identity
from ..core.probes import Verdict
from ..host import keep
from ..model.registration import Registration

EARLIER = "probe ran at an earlier start, through the same entry and interpreter file"


def _file(reg: Registration) -> str | None:
    """The interpreter file as identity.py notes it (size and change time too: a file rewritten
    in place with its modification time put back is another file)."""
    ident = identity.of_path(reg.interpreter)
    return None if ident in (identity.MISSING, identity.UNKNOWN) else ident


FAILED = "failed"  # the third field of a verdict kept for a failure


class Proven:
    """Per architecture: [register line, "file kernel"], and FAILED after them for a failure."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path or os.path.join(keep.cache_dir(), "verdicts.json")
        self._kept: dict[str, list[str]] = {}
        with contextlib.suppress(ValueError, TypeError):
            loaded = json.loads(keep.read_kept(self.path) or "{}")
            self._kept = {arch: v for arch, v in loaded.items()
                          if isinstance(v, list) and v[2:] in ([], [FAILED])
                          and len(v) >= 2 and all(isinstance(x, str) for x in v)}

    def _about(self, arch: str, reg: Registration) -> tuple[list[str], str] | None:
        """What is kept for this registration's very file, and this kernel's key for it."""
        file = _file(reg)
        kept = self._kept.get(arch)
        if file is None or kept is None or kept[0] != reg.register_line() or \
                not kept[1].startswith(file + " "):
            return None
        return kept, f"{file} {identity.kernel()}"

    def recall(self, arch: str, reg: Registration) -> Verdict | None:
        about = self._about(arch, reg)
        if about is not None and about[0][1:] == [about[1]]:  # proven, on this kernel
            return Verdict(arch, "ok", EARLIER)
        return None

    def doubted(self, arch: str, reg: Registration) -> bool:
        """Whether this file's probe runs as often as a new file's trial: it was proven on
        another kernel only, or its last probe failed."""
        about = self._about(arch, reg)
        return about is not None and about[0][1:] != [about[1]]

    def remember(self, arch: str, reg: Registration, verdict: Verdict) -> None:
        if verdict.result not in ("ok", FAILED):
            return  # untested (stopped with the service, say): nothing learnt, what was kept stays
        file = _file(reg)
        if file is None:
            entry = None
        else:
            entry = [reg.register_line(), f"{file} {identity.kernel()}",
                     *([] if verdict.ok else [FAILED])]
        if self._kept.get(arch) == entry:
            return
        if entry is None:
            self._kept.pop(arch, None)
        else:
            self._kept[arch] = entry
        with contextlib.suppress(OSError):  # nowhere to keep them: probed again next start
            keep.write_whole(self.path, json.dumps(self._kept, indent=1, sort_keys=True),
                             make_dir=True)
