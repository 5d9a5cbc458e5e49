"""Upgrades gated by proof. An entry of ours that is registered and enabled is replaced by one
with another interpreter file (a package upgrade renamed a new file over the old path, or the
policy names another path) only once that file ran its architecture's probe (host/trial.py
tries it in a table of its own, as many times as host/probing.RUNS says), and, with the policy's `hold: true`, only once the admin
releases it (`multiarchctl release ARCH`). Until then the entry is held: with F the kernel keeps
running the file it opened at registration; without F it would run the new file at the next
exec, so the entry is disabled instead. Pure: which wants need a trial, and what they become.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from ..model.host import NOT_KNOWN, NOT_KNOWN_WHY, FileId, inode, same_file
from ..model.observed import Observed
from .desired import Desired, Want, Why
from .probes import Verdict


@dataclass(frozen=True)
class Change:
    """An entry whose interpreter file would change under it."""

    want: Want
    kept: bool  # the kernel keeps the file registered before open (F) and runs that one
    same_path: bool  # another file at the same path (an upgrade), not another path (the policy)
    known: bool = True  # which file the kernel opened is known (host/opened.py)

    @property
    def entry(self) -> str:
        return self.want.entry


def changes(desired: Desired, observed: Observed, opened: Mapping[str, FileId]
            ) -> list[Change]:
    """The architectures' entries that are registered and would be given another interpreter file:
    another path, or (known only to whoever registered them: `opened`) another file at the
    same path, or a file the kernel opened that is not known (NOT_KNOWN: tried and registered
    again once). A file of our own made in this run (desired.remade) was tried as it was made.
    Another file is another inode, size or modification time (model.host.same_file: not a link
    made or removed, as dpkg's replace does on its way)."""
    found = []
    for want in desired.wants:
        reg = want.registration
        entry = observed.get(want.entry)
        if reg is None or want.frozen or want.kind != "arch" or entry is None \
                or want.entry in desired.remade:
            continue
        before = entry.registration.interpreter
        was = opened.get(want.entry)
        if before != reg.interpreter or (was is not None and
                                         not same_file(was, want.interpreter_id)):
            found.append(Change(want, "F" in entry.registration.flags,
                                before == reg.interpreter, was != NOT_KNOWN))
    return found


def pinned(change: Change, released: Iterable[str]) -> bool:
    """`hold: true` keeps an entry on its file when the file at the same path changes (a path
    the policy changed is the admin's own doing), until released."""
    return change.want.hold and change.same_path and change.entry not in set(released)


def _identity(want: Want) -> str:
    ident = f" (inode {inode(want.interpreter_id)})" if want.interpreter_id else ""
    return f"{want.interpreter}{ident}"


def gated(desired: Desired, changed: Iterable[Change], verdicts: Mapping[str, Verdict],
          pins: Iterable[str], trying: Iterable[str] = ()) -> Desired:
    """`desired` with each change that failed its trial (`verdicts`), is still being tried
    (`trying`, off the service's loop) or is pinned (`pins`) held back: frozen on the file the
    kernel holds (F), or disabled (no F; while it is tried, left as it is: the kernel runs the
    new file already)."""
    held: dict[str, Want] = {}  # (the state `held`)
    pins, trying = set(pins), set(trying)
    for c in changed:
        w = c.want
        verdict = verdicts.get(c.entry)
        if c.entry in pins and not c.known:
            why = (f"hold: true keeps the file registered before, and {NOT_KNOWN_WHY}: "
                   f"`multiarchctl release {w.label}` to register {_identity(w)} again")
        elif c.entry in pins:
            why = (f"hold: true keeps the file registered before; {_identity(w)} is a new file "
                   f"at that path: `multiarchctl release {w.label}` to take it")
        elif c.entry in trying:
            if not c.kept and c.same_path:
                continue
            held[c.entry] = replace(w, verdict=Why.HELD, frozen=True,
                                    message=f"the new {_identity(w)} is being tried on its "
                                            "probe; the entry stays as it is until then")
            continue
        elif verdict is not None and not verdict.ok:
            why = (f"the new {_identity(w)} failed its probe ({verdict.message}); fix or "
                   "reinstall the emulator: the next change to the file is tried again")
        else:
            continue
        if c.kept:
            held[c.entry] = replace(w, verdict=Why.HELD, frozen=True,
                                    message=f"{why}; the kernel still runs the one it opened "
                                            "at registration")
        else:
            held[c.entry] = replace(w, registration=None, verdict=Why.HELD,
                                    message=f"{why}; disabled, since without F the kernel would "
                                            "run the new file")
    if not held:
        return desired
    return replace(desired, wants=tuple(held.get(w.entry, w) for w in desired.wants))


def nothing_to_release(arch: str, want: Want | None, state: str | None,
                       message: str = "") -> str | None:
    """Why `multiarchctl release ARCH` has nothing to take, in the policy's own words (`state`,
    `message`: the architecture's status, None when it has none); None when a new file that
    `hold: true` holds waits, which release takes (still tried on its probe first)."""
    if want is not None and want.verdict is Why.HELD and want.hold:
        return None
    if want is None or state is None:
        return f"{arch}: nothing to release: it is not in the policy"
    if want.verdict is Why.HELD:
        return (f"{arch}: nothing to release: it is held, but not by hold: true: {want.message} "
                "(release never takes a file that fails)")
    if want.hold:
        return (f"{arch}: nothing to release: hold: true holds no new file of its interpreter "
                f"yet (its state is {state})")
    said = f"{state}: {message}" if message else state
    return f"{arch}: nothing to release: the policy does not say hold: true for it (its state " \
           f"is {said})"
