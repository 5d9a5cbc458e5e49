"""Which interpreter file the kernel opened for each F entry of ours, kept for whoever comes
next. The kernel does not tell, and with F it runs that file until the entry is registered
again: the daemon follows a package upgrade by it (core/gate.py), whoever registered the entry
(the boot record's replay, `--once`, `multiarchctl apply --local`, the daemon before a restart).

One file per table (its binfmt_misc instance's device) in the runtime directory (a rootless
run's own: keep.runtime_dir), kept for the life of the table (until the next boot: the service
keeps the directory when it stops), and believed only if root (or the user running) wrote it
(host/keep.py). Each line: an entry's name (hex), which entry that
is (its file's inode number: whoever registers the name again, another tool included, makes a
new entry file, numbered by a counter the kernel shares with pipes and sockets, so a number
comes back only after 2^32 others; not its times, which writing 0 or 1 to the entry moves), and
the note of the interpreter file (identity.py; hex, as the name: any byte a path holds) the
kernel opened. An entry not found so is not known (model.host.NOT_KNOWN): it is registered
again, once.

Light: the boot record's replay writes it (reconciler/record.py imports almost nothing).
"""

from __future__ import annotations

import os

from . import keep

MAGIC = "multiarchd opened 2"

TYPE_CHECKING = False  # typing's, without importing typing or collections.abc: mypy knows it
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping


def _store(binfmt_dir: str) -> str:
    device = os.stat(os.path.join(binfmt_dir, "register")).st_dev
    return os.path.join(keep.runtime_dir(), f"opened-{device:x}")


def _entry(binfmt_dir: str, name: str) -> str | None:
    """Which entry file `name` is now (None: none)."""
    try:
        return str(os.stat(os.path.join(binfmt_dir, name)).st_ino)
    except (OSError, ValueError):
        return None


def _read(store: str) -> dict[str, tuple[str, str]]:
    text = keep.read_kept(store)
    if text is None or not text.startswith(MAGIC + "\n"):
        return {}
    found = {}
    for ln in text.split("\n")[1:]:
        fields = ln.split("\t")
        if len(fields) == 3:
            try:
                name, note = (os.fsdecode(bytes.fromhex(f)) for f in (fields[0], fields[2]))
                found[name] = (fields[1], note)
            except ValueError:
                continue
    return found


def known(binfmt_dir: str, names: Iterable[str]) -> dict[str, str]:
    """The file kept for each of `names` whose entry is still the one registered then."""
    try:
        kept = _read(_store(binfmt_dir))
    except OSError:
        return {}
    return {n: kept[n][1] for n in names if n in kept and _entry(binfmt_dir, n) == kept[n][0]}


def _hex(text: str) -> str | None:
    """The bytes of a name or note, in hex (None: a string no path holds, which is not kept)."""
    try:
        return os.fsencode(text).hex()
    except UnicodeError:
        return None


def keep_opened(binfmt_dir: str, opened: Mapping[str, str | None]) -> None:
    """Note that each entry named in `opened` was just registered, the kernel opening that file
    (None: removed, or registered without F). Nowhere to keep it (a runtime directory that
    cannot be written), and nothing is kept: the next process registers those entries again, once. Entries gone from
    the table are dropped."""
    try:
        store = _store(binfmt_dir)
        kept = _read(store)
        present = set(os.listdir(binfmt_dir))
        kept = {n: k for n, k in kept.items() if n in present and n not in opened}
        for name, file in opened.items():
            entry = _entry(binfmt_dir, name)
            if file is not None and entry is not None and _hex(file) is not None:
                kept[name] = (entry, file)
        lines = [MAGIC, *(f"{_hex(n)}\t{e}\t{_hex(f)}" for n, (e, f) in kept.items())]
        keep.write_whole(store, "\n".join(lines) + "\n", make_dir=True)
    except (OSError, UnicodeError):
        pass
