"""Which entry of this table would run one file, with what, or why nothing would. Pure: the
file's first bytes, the table and the desired state in; an Explanation out (cli/explain.py
reads them).

The kernel's order, as fs/exec.c and fs/binfmt_misc.c have it: execve refuses a file that is not
executable (EACCES) before any format is asked; binfmt_misc is asked first (it puts itself at
the head of the formats: an i386 entry on an x86_64 host takes native programs), and within it
the most recently registered enabled entry that matches wins (the table's directory lists
entries newest first: kernel/table.py), unless the table is disabled as a whole; then the
kernel's own ELF loader runs a program of this machine's architecture, and binfmt_script a
file that starts with `#!`. Anything else fails with ENOEXEC ("exec format error"). An entry
without F opens its interpreter at each exec, in the caller's mount namespace: a container or
chroot without that file fails with ENOENT; with F the kernel opened it at registration.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from ..model.catalog import Arch, Catalog
from ..model.observed import Entry, Observed
from ..model.registration import owned, printable
from ..names import OWNED_PREFIX
from .desired import Desired, Want, Why

HEADER_SIZE = 256  # BINPRM_BUF_SIZE: what the kernel reads of a file to choose its format


class Outcome(enum.StrEnum):
    ENTRY = "entry"  # a binfmt_misc entry runs it through its interpreter
    NATIVE = "native"  # the kernel's ELF loader runs it itself
    SCRIPT = "script"  # binfmt_script runs its #! interpreter
    FAILS = "fails"  # execve fails


class Reason(enum.StrEnum):
    """Why nothing runs it, or why what runs it is not what the policy meant."""

    NOT_EXECUTABLE = "not-executable"
    NOT_MOUNTED = "not-mounted"
    TABLE_DISABLED = "table-disabled"
    ENTRY_DISABLED = "entry-disabled"
    DISABLED = "disabled"  # the policy turns the architecture off
    NOT_IN_POLICY = "not-in-policy"
    MISSING_EMULATOR = "missing-emulator"
    HELD = "held"
    POLICY_ERROR = "policy-error"
    NOT_APPLIED = "not-applied"
    PRIVATE_TABLE = "private-table"
    FOREIGN_WINS = "foreign-entry-wins"
    INTERPRETER_MISSING = "interpreter-missing"
    UNKNOWN_FORMAT = "unknown-format"


@dataclass(frozen=True)
class Program:
    """The file as execve sees it."""

    path: str
    header: bytes  # its first HEADER_SIZE bytes
    executable: bool = True


@dataclass(frozen=True)
class Where:
    """The table and namespace the file would be run in."""

    host: str  # this machine's catalog architecture
    table: str  # whose table, in words (kernel/owner.py)
    binfmt_dir: str
    policy_path: str
    private: bool = False  # the table is a user namespace's own, not the host's
    mounted: bool = True
    root: str = ""  # the container's or chroot's root the file runs under ("": this one's)
    missing: frozenset[str] = frozenset()  # interpreters that are not there (under root)


@dataclass(frozen=True)
class Match:
    """An entry that matches the file, as the kernel would meet it (newest first)."""

    entry: str
    enabled: bool
    interpreter: str
    flags: str
    owned: bool


@dataclass(frozen=True)
class Explanation:
    file: str
    format: str  # "ELF aarch64", "script (#!/bin/sh)", "unknown"
    arch: str | None  # the catalog architecture of an ELF program
    outcome: Outcome
    entry: str | None = None  # the entry that takes it
    interpreter: str | None = None  # what the kernel runs (an entry's, or the #! one)
    flags: str = ""
    emulator: str | None = None  # the policy's emulator behind an entry of multiarchd's
    # The QEMU CPU model the entry's file carries (multiarchd's image of QEMU; None: QEMU's own)
    cpu: str | None = None
    reason: Reason | None = None
    message: str = ""
    fix: str = ""  # the one command (or edit) that makes it run as the policy means
    matches: tuple[Match, ...] = ()
    table: str = ""

    @property
    def runs(self) -> bool:
        return self.outcome is not Outcome.FAILS


def elf_arch(header: bytes, catalog: Catalog) -> Arch | None:
    """The catalog architecture whose ELF magic and mask the header matches (QEMU's bytes)."""
    return next((a for a in catalog.arches.values() if a.matches(header)), None)


def shebang(header: bytes) -> str | None:
    """The interpreter a `#!` line names, as binfmt_script reads it (None: not a script)."""
    if not header.startswith(b"#!"):
        return None
    line = header[2:].split(b"\n", 1)[0].strip(b" \t")
    word = line.split(None, 1)[0] if line.split() else b""
    return word.decode("utf-8", "surrogateescape")


def _format(program: Program, arch: Arch | None) -> str:
    if arch is not None:
        return f"ELF {arch.name} ({arch.bits}-bit {arch.endian}-endian, e_machine {arch.machine})"
    script = shebang(program.header)
    if script is not None:
        return f"script (#!{printable(script)})" if script else "script (#! with no interpreter)"
    return "ELF of no known architecture" if program.header.startswith(b"\x7fELF") \
        else "unknown (no ELF header, no #!)"


def _matches(program: Program, observed: Observed) -> list[Entry]:
    base = program.path.rsplit("/", 1)[-1]
    found = [e for e in observed.entries if e.registration.matches(base, program.header)]
    return sorted(found, key=lambda e: -e.order)


def explain(program: Program, observed: Observed, want: Desired | None, catalog: Catalog,
            where: Where) -> Explanation:
    """What execve of `program` would do in `where`'s table (`observed`), and why."""
    arch = elf_arch(program.header, catalog)
    found = _matches(program, observed) if where.mounted else []
    base = Explanation(
        printable(program.path), _format(program, arch), arch.name if arch else None,
        Outcome.FAILS, table=where.table,
        matches=tuple(Match(printable(e.name), e.enabled, printable(e.registration.interpreter),
                            str(e.registration.flags), owned(e.name)) for e in found))
    if not program.executable:
        return _fails(base, Reason.NOT_EXECUTABLE, "not executable: execve refuses it (EACCES) "
                      "before any format is asked", f"chmod +x {base.file}")
    winner = next((e for e in found if e.enabled), None) if observed.enabled else None
    if winner is not None:
        return _taken(base, winner, found, want, where)
    if arch is not None and _native(arch, want, catalog, where.host):
        return replace(base, outcome=Outcome.NATIVE,
                        message=f"the kernel runs {arch.name} programs itself on this "
                                f"{where.host} host")
    script = shebang(program.header)
    if script is not None:
        return _script(base, script, where)
    return _nothing(base, arch, found, observed, want, where)


def _fails(base: Explanation, reason: Reason, message: str, fix: str) -> Explanation:
    return replace(base, outcome=Outcome.FAILS, reason=reason, message=message, fix=fix)


def _native(arch: Arch, want: Desired | None, catalog: Catalog, host: str) -> bool:
    w = want.want(OWNED_PREFIX + arch.name) if want else None
    if w is not None:
        return w.verdict is Why.NATIVE
    return catalog.host_runs(host, arch.name)


def _script(base: Explanation, script: str, where: Where) -> Explanation:
    if not script:
        return _fails(base, Reason.UNKNOWN_FORMAT, "a #! line that names no interpreter: "
                      "ENOEXEC", f"name the interpreter on the first line of {base.file}")
    if script in where.missing:
        return _fails(base, Reason.INTERPRETER_MISSING,
                      f"its #! interpreter {printable(script)} is not there{_under(where)}: "
                      "ENOENT", f"install {printable(script)}{_under(where)}")
    return replace(base, outcome=Outcome.SCRIPT, interpreter=printable(script),
                    message=f"a script: binfmt_script runs {printable(script)} with it")


def _under(where: Where) -> str:
    return f" under {where.root}" if where.root else ""


def _taken(base: Explanation, winner: Entry, found: list[Entry], want: Desired | None,
           where: Where) -> Explanation:
    reg = winner.registration
    name, interp = printable(winner.name), printable(reg.interpreter)
    w = want.want(winner.name) if want and owned(winner.name) else None
    taken = replace(base, outcome=Outcome.ENTRY, entry=name, interpreter=interp,
                     flags=str(reg.flags), cpu=w.cpu if w else None,
                     emulator=w.emulator if w else None)
    if "F" not in reg.flags and reg.interpreter in where.missing:
        fix = _missing_fix(interp, w, where)
        return _fails(taken, Reason.INTERPRETER_MISSING,
                      f"entry {name} takes it, but it has no F and its interpreter {interp} is "
                      f"not there{_under(where)}: the kernel opens it at each exec, in the "
                      "caller's root (ENOENT)", fix)
    ours = [e for e in found if e.enabled and owned(e.name) and e.order < winner.order]
    if not owned(winner.name) and ours:
        return replace(taken, reason=Reason.FOREIGN_WINS, fix=f"echo 0 > "
                        f"{where.binfmt_dir}/{name}",
                        message=f"another tool's entry {name}, registered after "
                                f"{printable(ours[0].name)}, takes it (the newest enabled "
                                "match wins); disabling it hands it to multiarchd's")
    if w is not None and w.verdict is Why.HELD:
        return replace(taken, reason=Reason.HELD, message=f"held: {w.message}",
                        fix=_held_fix(w))
    older = [printable(e.name) for e in found if e is not winner and e.enabled]
    also = f"; it was registered after {', '.join(older)}, which match too" if older else ""
    return replace(taken, message=f"entry {name} takes it: the kernel runs {interp} "
                                   f"with it{also}")


def _missing_fix(interp: str, w: Want | None, where: Where) -> str:
    """An interpreter looked up at each exec is not there: F (opened once, where multiarchd
    runs) for a root apart, the file itself when it is gone from this one."""
    if not where.root:
        return f"install {interp}"
    if w is not None and w.kind == "arch":
        return f"add F to flags under arches.{w.label} in {where.policy_path}, then " \
               f"`{_APPLY}`"
    return f"cp {interp} {where.root}{interp}"


def _held_fix(w: Want) -> str:
    return f"multiarchctl release {w.label}" if w.hold else \
        f"apt-get install --reinstall the package of {w.interpreter}"


def _nothing(base: Explanation, arch: Arch | None, found: list[Entry], observed: Observed,
             want: Desired | None, where: Where) -> Explanation:
    if arch is None:
        return _fails(base, Reason.UNKNOWN_FORMAT, f"{base.format}: no entry of the table "
                      "matches it and the kernel runs no such format itself (ENOEXEC)",
                      f"add an entry for it under custom: in {where.policy_path}, then "
                      "`multiarchctl apply`")
    if not where.mounted:
        return _fails(base, Reason.NOT_MOUNTED, f"binfmt_misc is not mounted at "
                      f"{where.binfmt_dir}: no emulator can be asked (ENOEXEC)",
                      f"mount -t binfmt_misc binfmt_misc {where.binfmt_dir}")
    if found and not observed.enabled:
        return _fails(base, Reason.TABLE_DISABLED, "binfmt_misc is disabled as a whole "
                      f"({where.binfmt_dir}/status): no entry is asked (ENOEXEC)",
                      f"echo 1 > {where.binfmt_dir}/status")
    w = want.want(OWNED_PREFIX + arch.name) if want else None
    if w is None:
        return _fails(base, Reason.POLICY_ERROR, "the policy is rejected, so nothing says what "
                      f"{arch.name} should have", "multiarchctl check-config")
    return _not_ours(base, arch, w, found, where)


_APPLY = "multiarchctl apply"


def _not_ours(base: Explanation, arch: Arch, w: Want, found: list[Entry],
              where: Where) -> Explanation:
    """No entry takes a foreign program: what the policy says of its architecture."""
    policy, a = where.policy_path, arch.name
    if w.verdict is Why.DISABLED:
        return _fails(base, Reason.DISABLED, f"{a} is turned off in the policy (enabled: "
                      "false): multiarchd keeps no entry for it (ENOEXEC)",
                      f"set `enabled: true` under arches.{a} in {policy}, then `{_APPLY}`")
    if w.verdict is Why.UNMANAGED:
        return _fails(base, Reason.NOT_IN_POLICY, f"{a} is not in the policy, and no other "
                      "entry matches (ENOEXEC)", f"add `{a}: {{}}` under arches in {policy}, "
                      f"then `{_APPLY}`")
    if w.verdict is Why.MISSING_EMULATOR:
        return _fails(base, Reason.MISSING_EMULATOR, f"{w.message} (ENOEXEC)",
                      "apt-get install qemu-user-static")
    if w.verdict is Why.HELD:
        return _fails(base, Reason.HELD, f"held: {w.message} (ENOEXEC)", _held_fix(w))
    if w.verdict is Why.ERROR:
        return _fails(base, Reason.POLICY_ERROR, f"{w.message} (ENOEXEC)",
                      "multiarchctl check-config")
    cpu = replace(base, interpreter=w.interpreter, cpu=w.cpu)
    if any(e.name == w.entry for e in found):
        return _fails(cpu, Reason.ENTRY_DISABLED, f"entry {w.entry} is there but disabled: "
                      "the kernel skips it (ENOEXEC)", _APPLY)
    if where.private:
        return _fails(cpu, Reason.PRIVATE_TABLE, f"this namespace has a table of its own "
                      f"({where.table}), which has no entry for {a}: the host's entries do not "
                      "apply here (ENOEXEC)", f"{_APPLY} --private")
    return _fails(cpu, Reason.NOT_APPLIED, f"the policy wants {w.entry} but the table does not "
                  f"hold it yet (ENOEXEC)", _APPLY)
