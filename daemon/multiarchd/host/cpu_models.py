"""The guarded images of QEMU (core/cpu_image.py) for entries that carry a CPU model or have C:
made by multiarchd from the QEMU an entry would register, tried on a probe program before they
are used, kept in its state directory, and made again when their QEMU, the model or the
start-up code changes.

An architecture whose file cannot be made (a QEMU that refuses the model, a host with no
start-up code, a full disk) runs with QEMU's own model and says why: never no emulator. With C,
it is registered without C and the policy has a problem that says why (core/desired.py's
without_guard), unless the policy accepts the risk. A QEMU that is no whole executable (cut
short, headers past its end) would not run either way: that architecture alone is in error and
says why, and its entry stays as the kernel has it.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, replace
from functools import partial

from .. import identity
from ..core.cpu_image import (MAX_IMAGE, STUB_VERSION, Broken, CannotCarry, is_guarded,
                              oversized, with_cpu_model)
from ..core.desired import Desired, Want, Why, without_guard
from ..core.probes import PROBE_STATUS, Verdict
from ..model.catalog import Catalog
from ..model.host import FileState, contents
from ..model.problems import Problem
from . import keep, paths
from .facts import look
from .filecache import FileCache
from .bounded import run_bounded
from .probing import RUNS, judged, probe_files
from .trial import Trials

STATE_DIR = "/var/lib/multiarchd"  # systemd's StateDirectory= sets $STATE_DIRECTORY
KEY_MARK = b"\n#multiarchd-cpu "  # the file's last line: what it was made from
HEAD = 1 << 16  # what is read of a file for its ELF and program headers (QEMU's: 736 bytes)


def models_dir() -> str:
    return os.path.join(os.environ.get("STATE_DIRECTORY", STATE_DIR).split(":")[0], "cpu")


def _key(source: str, source_id: str, model: str | None) -> bytes:
    return f"{STUB_VERSION} {model or '-'} {source} {source_id}".encode(errors="surrogateescape")


def _made_from(path: str) -> bytes | None:
    """The key a file of ours ends with; None for anything else (then it is made again, by
    rename): a file cut short has no key at its end, a FIFO or a link is never opened for
    reading, a file someone else could have written is not believed."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or paths.untrusted(st, "file", path):
            return None
        tail = os.pread(fd, 4096, max(0, st.st_size - 4096))
    except OSError:
        return None
    finally:
        os.close(fd)
    at = tail.rfind(KEY_MARK)
    return tail[at + len(KEY_MARK):].rstrip(b"\n") if at >= 0 else None


def is_guarded_file(path: str) -> bool:
    """Whether the file at `path` is a guarded image of QEMU (core/cpu_image.is_guarded),
    reading its headers and its stub's few bytes only (read, not mapped: a file cut short
    while mapped would kill the daemon with SIGBUS when the gone page is touched)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
            return False
        return is_guarded(os.pread(fd, HEAD, 0), st.st_size,
                          lambda at, length: os.pread(fd, length, at))
    except OSError:
        return False
    finally:
        os.close(fd)


# key -> why that file could not be made: not tried again by this process (the service would
# otherwise read, write and try it at every run) until QEMU or the model changes.
_refused: dict[bytes, CannotCarry] = {}


def _read(source: str) -> bytes:
    """QEMU's bytes, as with_cpu_model takes them; CannotCarry for what is no file to read
    whole (swapped for a FIFO or a device since it was looked at: never waited on or read
    forever)."""
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        raise CannotCarry(f"{source} could not be read: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise CannotCarry(f"{source} is not a regular file")
        if st.st_size > MAX_IMAGE:  # (not read to be refused; grown since: it says so)
            raise oversized(st.st_size)
        return identity.read_upto(fd, MAX_IMAGE)
    except OSError as e:
        raise CannotCarry(f"{source} could not be read: {e.strerror}") from None
    finally:
        os.close(fd)


def _image(want: Want, source: str, key: bytes) -> bytes:
    """The guarded image for `want` (with its model, if any), made from `source` and ending
    with `key`; CannotCarry (remembered for `key`) why not."""
    if key in _refused:
        raise _refused[key]
    try:
        return with_cpu_model(_read(source), want.cpu, KEY_MARK + key + b"\n")
    except CannotCarry as e:
        _refused[key] = e
        raise


def _trial(argv: list[str], arch: str, catalog: Catalog) -> str | None:
    """Why `argv` followed by arch's probe program does not run it, probing.RUNS times (None:
    it does)."""
    with probe_files([arch], catalog) as probes:
        try:
            ran = run_bounded([*argv, probes[arch]], RUNS, PROBE_STATUS)
        except OSError as e:
            return f"it could not be run: {e.strerror}"
    status, said = ran.status, ran.err.strip().splitlines()
    if status is None or status < 0:
        return judged(arch, ran).message
    if status == PROBE_STATUS:
        # QEMU warns about some models at every start (rv64,v=true: "vector version is not
        # specified"): every program of the architecture would say it too, on its own stderr.
        return None if not said else (f"QEMU would print {said[0][:200]!r} on the stderr of "
                                      f"every {arch} program; write the model so that it "
                                      "does not")
    if not said:
        return f"a probe program ended with status {status}"
    # QEMU starts its words with its own name: the temporary file's, or the path's
    name, colon, words = said[0].partition(": ")
    return words if colon and "/" not in name and " " not in name else said[0]


def _make(want: Want, image: bytes, catalog: Catalog) -> str | None:
    """Write `image` for `want` in models_dir() by rename, after a trial run; why not, or
    None. The old file stays where it is until the new one has run a probe: an entry with F
    keeps using what it opened until it is registered again."""
    directory = models_dir()
    try:
        keep.write_whole(os.path.join(directory, want.label), image, mode=0o755, make_dir=True,
                         check=lambda temp: _trial([temp], want.label, catalog))
    except keep.NotAccepted as e:
        return str(e)
    except OSError as e:
        return f"{directory}/{want.label} could not be written: {e.strerror}"
    return None


@dataclass(frozen=True)
class _How:
    """What carry_models was given, for each entry."""

    catalog: Catalog
    seen: identity.Seen | None
    write: bool
    cache: FileCache | None
    trials: Trials | None


def _tried(why: str | None, label: str) -> Verdict:
    return Verdict(label, "ok") if why is None else Verdict(label, "failed", why)


def _made(want: Want, image: bytes, catalog: Catalog) -> Verdict:
    return _tried(_make(want, image, catalog), want.label)


def _carry(want: Want, how: _How, remade: set[str]) -> Want:
    reg = want.registration
    assert reg is not None
    source, label = reg.interpreter, want.label
    path = os.path.join(models_dir(), label)
    source_id = (how.seen.files.get(source) if how.seen else None) or identity.of_path(source)
    # Made again when what QEMU holds may have changed, not its change time or link count:
    # dpkg links the old file to .dpkg-tmp before it renames the new one over (made twice,
    # the first time from the old file: two replaces for one upgrade).
    key = _key(source, contents(source_id) or source_id, want.cpu)

    def own_model(why: str) -> Want:
        where = f"{want.cpu_place}: " if want.cpu_place else ""
        said = f"{where}CPU model {want.cpu} not used ({why}): runs with QEMU's own"
        if want.guard is not None and want.cpu is not None:
            # (a model QEMU refuses must not cost C its guard: the image is made without it)
            alone = _carry(replace(want, cpu=None), how, remade)
            guarded = alone.registration and alone.registration.interpreter == path
            return replace(alone, message=said) if guarded else alone
        if want.guard is not None:
            return _unguarded(want, why)
        return replace(want, cpu=None, message=said)

    if source_id in (identity.UNKNOWN, identity.MISSING):
        return own_model(f"{source} could not be looked at")
    state, ident, why = look(path, how.seen, how.cache)
    if state is FileState.UNTRUSTED:  # a directory on the way is not root's: never made there
        return own_model(why)
    slot = f"cpu:{label}"
    if state is not FileState.OK or _made_from(path) != key:
        try:
            image = _image(want, source, key)
        except Broken as e:
            # QEMU itself would not run: nothing is registered from it, and an entry the
            # kernel holds stays as it is (with F, on the file it opened).
            return replace(want, registration=None, verdict=Why.ERROR, frozen=True, cpu=None,
                           message=f"{source} cannot run: {e}; reinstall the emulator (its "
                                   "entry is left as the kernel has it)")
        except CannotCarry as e:
            return own_model(str(e))
        if not how.write:
            del image
            # A dry run, or status: what applying would register, if QEMU takes the model.
            model = ["-cpu", want.cpu] if want.cpu else []

            def dry() -> Verdict:
                return _tried(_trial([source, *model, "--"], label, how.catalog), label)
            tried = how.trials.answer(f"{slot}:dry", key, dry, here=how.trials.files_here) \
                if how.trials else dry()
            if tried is None:
                return _making(want, source)
            if not tried.ok:
                return own_model(tried.message)
            return replace(want, registration=replace(reg, interpreter=path), interpreter=path,
                           interpreter_id=None)
        make = partial(_made, want, image, how.catalog)  # (on a worker, in a service)
        del image  # (up to MAX_IMAGE: not held here while the others are made)
        made = how.trials.answer(slot, key, make, here=how.trials.files_here) \
            if how.trials else make()
        del make
        if made is None:
            return _making(want, source)
        if not made.ok:
            _refused[key] = CannotCarry(made.message)
            return own_model(made.message)
        remade.add(want.entry)
        state, ident, why = look(path, how.seen, how.cache)
    elif how.write and how.trials is not None and how.trials.take_fresh(slot):
        remade.add(want.entry)  # made off the loop since the last run, and tried as it was made
    if state is not FileState.OK:
        return own_model(why or f"{path} is {state.value}")
    return replace(want, registration=replace(reg, interpreter=path), interpreter=path,
                   interpreter_id=ident)


def _making(want: Want, source: str) -> Want:
    """While its file is made and tried off the loop: the entry stays as the kernel has it."""
    what = f"the file that carries CPU model {want.cpu}" if want.cpu else "the guarded image"
    return replace(want, verdict=Why.HELD, frozen=True,
                   message=f"{what} is being made from {source} and tried; the entry stays as "
                           "it is until then")


def _unguarded(want: Want, why: str) -> Want:
    """C on a QEMU whose guarded image could not be made: without C (the policy problem says
    why), or QEMU's own with C where the policy accepts the risk."""
    assert want.registration is not None and want.guard is not None
    said = without_guard(want.label, want.unsafe, want.guard, why)
    if isinstance(said, str):
        return replace(want, cpu=None, guard=None, message=said)
    reg = replace(want.registration, flags=want.registration.flags.without("C"))
    return replace(want, registration=reg, cpu=None, message=said.message)


def carry_models(want: Desired, catalog: Catalog, seen: identity.Seen | None,
                 write: bool = True, cache: FileCache | None = None,
                 trials: Trials | None = None) -> Desired:
    """`want` with each entry that asks for a CPU model or has C on QEMU registering its
    guarded image (made first where `write`), or, where none could be made, QEMU's own and the
    reason (and C refused). `cache`: a daemon's, of what the files were found to be
    (host/filecache.py); `trials`: a daemon's, which makes and tries the files off its loop
    (the entry is held meanwhile)."""
    if not any((w.cpu or w.guard) and w.registration for w in want.wants):
        return want
    remade: set[str] = set()
    how = _How(catalog, seen, write, cache, trials)
    wants = tuple(_carry(w, how, remade) if (w.cpu or w.guard) and w.registration else w
                  for w in want.wants)
    refused = tuple(Problem(w.guard, w.message, ("arch", w.label)) for w in wants
                    if w.guard and w.registration and "C" not in w.registration.flags)
    return replace(want, wants=wants, remade=frozenset(remade),
                   problems=want.problems + refused)
