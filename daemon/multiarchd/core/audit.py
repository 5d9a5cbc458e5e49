"""The whole binfmt_misc table judged, every run: each entry, ours or another tool's, against
what makes one a hijack, a privilege trick or a broken promise (a security engineer's review of
a host's table). Pure: host/audit_facts.py gathers what is judged from.

Each finding names the entry, the reason and the fix. Nothing that is fine is reported: a known
emulator, owned by root, registered with the flags its package uses, is fine whatever they are.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..model.host import NOT_KNOWN, NOT_KNOWN_WHY, FileId, FileState, same_file
from .headers import Header, could_take
from ..model.registration import Registration, owned, printable
from ..model.observed import Entry, Observed
from ..names import OWNED_PREFIX


class Severity(enum.StrEnum):
    HIGH = "high"  # runs someone's code instead of the host's programs, or with their rights
    MEDIUM = "medium"  # a broken promise: a file gone or changed, an odd use of O or C


@dataclass(frozen=True)
class Finding:
    entry: str  # printable
    severity: Severity
    kind: str  # a stable word for scripts: native-magic, untrusted-credentials, ...
    reason: str
    fix: str

    def __str__(self) -> str:
        return f"{self.severity.value}: {self.entry}: {self.reason}; {self.fix}"


@dataclass(frozen=True)
class AuditFacts:
    """What the audit judges from, found on the host."""

    # This machine's own programs: (path, first bytes) of real ones, and of a probe of each
    # architecture it runs natively.
    native: tuple[tuple[str, bytes], ...]
    # Each interpreter in the table: its state under the trust rules (host/facts.file_state: a
    # shell is never trusted), and why if untrusted.
    files: Mapping[str, tuple[FileState, str]] = field(default_factory=dict)
    ids: Mapping[str, FileId] = field(default_factory=dict)  # which file each path is now
    emulators: frozenset[str] = frozenset()  # paths and base names of known emulators
    # The first bytes every program of a kind shares (core/headers.py): ELF of each
    # architecture this machine runs natively, scripts.
    headers: tuple[Header, ...] = ()
    # An entry of ours (multiarch-*) is known for what it runs, never for its name (another
    # tool may name one so): the interpreter this host's policy gives it, or the file made to
    # carry its CPU model (`made`/ARCH, host/cpu_models.py).
    ours: Mapping[str, str] = field(default_factory=dict)
    made: str = ""
    # Each QEMU an entry with C runs that is not multiarchd's guarded image (core/cpu_image.py),
    # and the architecture it runs ("" where its name does not say).
    unguarded: Mapping[str, str] = field(default_factory=dict)


# Extensions of programs and scripts a host runs itself: an E entry for one takes them over.
NATIVE_EXTENSIONS = frozenset({"sh", "bash", "zsh", "ksh", "csh", "py", "pyc", "pl", "pm", "rb",
                               "php", "lua", "tcl", "js", "mjs", "cjs", "so", "bin", "run",
                               "out", "elf", "AppImage", "desktop"})


def _base(path: str) -> str:
    return path.rsplit("/", 1)[-1]


@functools.lru_cache(maxsize=4096)
def _native_hit(reg: Registration, native: tuple[tuple[str, bytes], ...],
                headers: tuple[Header, ...]) -> str | None:
    """The first kind of this host's own programs `reg` could take, or the first real one it
    takes (remembered: the same entries are judged against the same programs at every run, a
    thousand of them on a big table)."""
    hit = next((h.what for h in headers if could_take(reg, h)), None)
    return hit or next((p for p, header in native if reg.matches(_base(p), header)), None)


def _native_match(entry: Entry, facts: AuditFacts) -> Finding | None:
    reg = entry.registration
    hit = _native_hit(reg, facts.native, facts.headers)
    if hit is None:
        return None
    what = f"extension .{reg.extension}" if reg.extension is not None else \
        f"magic {reg.describe_match().removeprefix('magic ')}"
    return Finding(printable(entry.name), Severity.HIGH if entry.enabled else Severity.MEDIUM,
                   "native-magic",
                   f"its {what} matches this host's own programs ({hit}): each one it takes "
                   f"would run through {printable(reg.interpreter)}"
                   + ("" if entry.enabled else " once it is enabled"),
                   f"remove it (echo -1 > .../{printable(entry.name)}) unless you put it there, "
                   "and find what registered it")


def _known(entry: Entry, facts: AuditFacts) -> bool:
    """Whether the entry runs a known emulator, or what this host's policy has it run."""
    path = entry.registration.interpreter
    return path in facts.emulators or _base(path) in facts.emulators or \
        facts.ours.get(entry.name) == path or \
        owned(entry.name) and path == f"{facts.made}/{entry.name.removeprefix(OWNED_PREFIX)}"


def _judge(entry: Entry, facts: AuditFacts, opened: Mapping[str, FileId]) -> list[Finding]:
    reg = entry.registration
    name, path = printable(entry.name), printable(reg.interpreter)
    flags = str(reg.flags)
    found = []
    native = _native_match(entry, facts)
    if native is not None:
        found.append(native)
    elif reg.extension is not None and reg.extension in NATIVE_EXTENSIONS:
        found.append(Finding(name, Severity.HIGH if entry.enabled else Severity.MEDIUM,
                             "native-extension",
                             f"it takes every file named *.{reg.extension}, which this host "
                             f"runs itself, to {path}",
                             "remove it unless a package you trust registered it on purpose"))
    state, why = facts.files.get(reg.interpreter, (FileState.OK, ""))
    if "C" in flags and state is FileState.UNTRUSTED:
        found.append(Finding(name, Severity.HIGH, "untrusted-credentials",
                             f"C runs {path} with the rights of every setuid program it "
                             f"matches, and {why}",
                             "remove it, or make the interpreter and every directory above it "
                             "root's and not writable by others"))
    elif "C" in flags and reg.interpreter in facts.unguarded:
        arch = facts.unguarded[reg.interpreter] or "ARCH"
        found.append(Finding(name, Severity.HIGH, "unguarded-credentials",
                             f"C runs {path}, a QEMU that obeys whoever starts it (QEMU_* "
                             "variables, a program named like an option), with the rights of "
                             "every setuid program it matches: any user who can run a setuid "
                             "foreign program steers QEMU as root",
                             f"let multiarchd register {arch} with C (arches: {{{arch}: "
                             "{flags: [C, F, P]}}: its image of QEMU ends QEMU's options and "
                             "drops QEMU_* variables for setuid programs), and remove this "
                             "entry or set foreign_entries: disable-unsafe"))
    elif state is FileState.UNTRUSTED:  # (a shell too: every file it takes becomes a script)
        found.append(Finding(name, Severity.MEDIUM, "untrusted-interpreter",
                             f"{path} is not to be trusted: {why}",
                             "name an emulator that only root can change, in directories only "
                             "root can change"))
    if state is FileState.MISSING:
        kept = "F" in flags
        found.append(Finding(name, Severity.MEDIUM, "interpreter-gone",
                             f"{path} no longer exists" + (
                                 ": the kernel runs a deleted file (F) nobody can look at"
                                 if kept else ": every matching program fails to start"),
                             "reinstall the emulator, or remove the entry"))
    elif opened.get(entry.name) == NOT_KNOWN and "F" in flags:
        found.append(Finding(name, Severity.MEDIUM, "interpreter-unknown",
                             f"{NOT_KNOWN_WHY}: it may run a file {path} no longer names",
                             "multiarchd registers it again once (`multiarchctl apply`)"))
    elif entry.name in opened and reg.interpreter in facts.ids and \
            not same_file(opened[entry.name], facts.ids[reg.interpreter]) and "F" in flags:
        found.append(Finding(name, Severity.MEDIUM, "interpreter-replaced",
                             f"{path} now names another file than the one the kernel opened "
                             "when the entry was registered (F): it runs that one",
                             "see its state in multiarchctl status (held, or about to be "
                             "registered again)"))
    credentials = "C" in flags and state is FileState.UNTRUSTED  # (said above: one finding)
    if ("C" in flags or "O" in flags) and not credentials and not _known(entry, facts):
        which = "C (the rights of setuid programs)" if "C" in flags else "O (an open file)"
        found.append(Finding(name, Severity.HIGH if "C" in flags else Severity.MEDIUM,
                             "unknown-interpreter-flags",
                             f"{which} is given to {path}, which is no known emulator",
                             "remove the flag unless you know why that interpreter needs it"))
    return found


def audit(observed: Observed, facts: AuditFacts,
          opened: Mapping[str, FileId] | None = None) -> tuple[Finding, ...]:
    """Every finding in the table, entry by entry in registration order. `opened`: for entries
    registered with F by this daemon, the file the kernel opened (History.opened)."""
    return tuple(f for e in sorted(observed.entries, key=lambda e: e.order)
                 for f in _judge(e, facts, opened or {}))
