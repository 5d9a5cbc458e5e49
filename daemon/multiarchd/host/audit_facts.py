"""What the audit of the whole table (core/audit.py) judges from: this machine's own programs,
as the kernel sees their first bytes, and the interpreter of every entry under the trust rules."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Iterable, Mapping

from .. import identity
from ..core.audit import AuditFacts
from ..core.desired import runs_natively
from ..core.headers import SCRIPT, elf
from ..core.probes import build
from ..model.catalog import Catalog
from ..model.host import FileId, FileState
from ..model.observed import Observed
from .cpu_models import is_guarded_file, models_dir
from .facts import look, probe_host
from .filecache import FileCache

# Programs every Linux host runs (those that exist are read): what an entry must never take.
PROGRAMS = ("/bin/sh", "/usr/bin/env", "/sbin/init", "/usr/lib/systemd/systemd", "/bin/mount",
            "/usr/bin/sudo", "/usr/bin/su")
HEADER = 512  # binfmt_misc looks at the first 128 bytes (offset + magic); read more


def _head(path: str, seen: identity.Seen | None, cache: FileCache | None) -> bytes | None:
    """The first bytes of a regular file (noted in `seen`: a boot record is keyed by them);
    from a daemon's `cache` while the file is exactly as it was."""
    if cache is None:
        return _read_head(path, seen)
    now = identity.exact_now(path, follow=True)  # (before the read: a change meanwhile is seen)
    kept = cache.heads.get(path)
    if now is not None and kept is not None and kept[0] == now:
        if seen is not None:
            seen.files[path] = kept[2]
        return kept[1]
    noted = identity.Seen()
    head = _read_head(path, noted)
    note = noted.files[path]
    if seen is not None:
        seen.files[path] = note
    if now is not None and note not in (identity.MISSING, identity.UNKNOWN):
        cache.heads[path] = (now, head, note)
    return head


def _read_head(path: str, seen: identity.Seen | None) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        if seen is not None:
            seen.files[path] = identity.of_path(path)
        return None
    try:
        if seen is not None:
            seen.files[path] = identity.of_fd(fd)
        return os.pread(fd, HEADER, 0) if os.path.isfile(f"/proc/self/fd/{fd}") else None
    except OSError:
        return None
    finally:
        os.close(fd)


@functools.cache
def _python() -> str:
    """This very Python, by its real path (resolved once: a chain of links costs 30 µs)."""
    return os.path.realpath(sys.executable)


def natives(catalog: Catalog) -> frozenset[str]:
    """The architectures this machine runs itself (core/desired.runs_natively)."""
    host = probe_host(catalog, ())
    return frozenset(a for a in catalog.arches if runs_natively(host, catalog, a))


def audit_facts(observed: Observed, catalog: Catalog, own_arches: Iterable[str] | None = None,
                seen: identity.Seen | None = None,
                judged: Mapping[str, tuple[str, FileId | None]] | None = None,
                cache: FileCache | None = None) -> AuditFacts:
    """`own_arches`: the architectures this machine runs itself (default: natives()): every
    header of theirs is judged, and a probe of each. `judged`: for each entry of this run's
    desired state, its interpreter, found trusted moments ago, and which file that is: not
    looked at again. `cache`: a daemon's, of what the files were found to be
    (host/filecache.py)."""
    native = natives(catalog) if own_arches is None else own_arches
    own = []
    for path in (_python(), *PROGRAMS):
        head = _head(path, seen, cache)
        if head is not None:
            own.append((path, head))
    own += [(f"any static {a} program", build(catalog.arches[a])) for a in sorted(native)
            if a in catalog.arches]
    wanted = judged or {}
    files: dict[str, tuple[FileState, str]] = {p: (FileState.OK, "") for p, _ in wanted.values()}
    ids: dict[str, FileId] = {p: i for p, i in wanted.values() if i is not None}
    for entry in observed.entries:
        path = entry.registration.interpreter
        if path in files:
            continue
        state, ident, why = look(path, seen, cache)
        files[path] = (state, why)
        if ident is not None:
            ids[path] = ident
    headers = (*(elf(catalog.arches[a]) for a in sorted(native) if a in catalog.arches), SCRIPT)
    ours = {name: path for name, (path, _) in wanted.items()}
    made = models_dir()
    return AuditFacts(tuple(own), files, ids, catalog.emulator_paths_and_names, headers, ours,
                      made, _unguarded(observed, catalog, made))


def _unguarded(observed: Observed, catalog: Catalog, made: str) -> dict[str, str]:
    """Each QEMU (by its name, or made here) an entry with C runs that is not the guarded
    image, and the architecture it runs where its name says (core/audit.py)."""
    out: dict[str, str] = {}
    for entry in observed.entries:
        path = entry.registration.interpreter
        if "C" not in entry.registration.flags or path in out:
            continue
        base = path.rsplit("/", 1)[-1]
        arch = next((a for a in catalog.arches
                     if path in (os.path.join(made, a), *catalog.emulators["qemu"].candidates(a))
                     or base in (f"qemu-{a}", f"qemu-{a}-static")), None)
        if (arch or base.startswith("qemu-")) and not is_guarded_file(path):
            out[path] = arch or ""
    return out
