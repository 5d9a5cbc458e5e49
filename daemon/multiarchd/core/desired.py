"""Desired state: what the policy, the catalog and this host ask the kernel to hold. Pure."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from .cpu_image import HOSTS
from ..model.catalog import Arch, Catalog
from ..model.flags import Flags
from ..model.host import FileId, FileState, Host
from ..model.policy import ACCEPT_RISK, CPU_DEFAULT, ArchRule, CustomRule, ForeignMode, Policy
from ..model.problems import Place, Problem
from ..model.registration import Registration
from ..names import OWNED_PREFIX


class Why(enum.StrEnum):
    """Why an architecture or custom entry gets no registration (the report's state for it)."""

    NATIVE = "native"  # this host runs it itself: never registered
    DISABLED = "disabled"  # the policy turns it off
    MISSING_EMULATOR = "missing-emulator"  # wanted, but no emulator for it is installed
    ERROR = "error"  # a policy problem
    UNMANAGED = "unmanaged"  # not in the policy
    # Its interpreter file changed and the new one is not registered (core/gate.py): the entry
    # keeps the file registered before (with F), or is disabled (without).
    HELD = "held"


@dataclass(frozen=True)
class Want:
    """One architecture or custom entry, and the entry it should (or should not) have."""

    label: str  # architecture name, or the custom entry's name
    kind: str  # "arch" or "custom"
    entry: str  # the owned entry name, multiarch-<label>
    registration: Registration | None  # None: the entry must be absent
    verdict: Why | None = None  # why there is no registration
    interpreter: str | None = None  # the one it uses, or would use
    interpreter_id: FileId | None = None  # which file that path is now
    emulator: str | None = None
    message: str = ""
    frozen: bool = False  # leave whatever the kernel has under this name untouched
    explicit: bool = False  # named in the policy, not only through `all`
    # The QEMU CPU model its registered file carries (-cpu), None for the emulator's own: as
    # asked for here, then as made by host/cpu_models.py (which says why when it could not).
    cpu: str | None = None
    cpu_place: Place | None = None  # where the policy names it (None: the catalog's)
    hold: bool = False  # the policy's `hold: true` (core/gate.py)
    # C on a QEMU: where the policy asks for it. The entry must register the guarded image
    # (core/cpu_image.py, made by host/cpu_models.py); where it cannot, C is refused there
    # unless `unsafe` (the policy's `unsafe_credentials`).
    guard: Place | None = None
    unsafe: bool = False


@dataclass(frozen=True)
class Desired:
    wants: tuple[Want, ...]
    foreign: ForeignMode
    problems: tuple[Problem, ...]
    # The policy has a problem: an entry of ours it does not name is left as it is (a typo
    # must never remove what the admin meant to keep), until the problems are fixed.
    tentative: bool = False
    # Entries whose interpreter file this run wrote anew (a CPU model's, host/cpu_models.py):
    # an entry with F registered before holds the old one until registered again.
    remade: frozenset[str] = frozenset()

    _by_entry: dict[str, Want] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_entry", {w.entry: w for w in self.wants})

    def want(self, entry: str) -> Want | None:
        return self._by_entry.get(entry)

    def registered_arches(self) -> list[str]:
        """Architectures the policy has an entry for (what `test` probes by default)."""
        return [w.label for w in self.wants if w.kind == "arch" and w.registration]


def _check_file(host: Host, path: str, place: Place | None, kind: str,
                name: str) -> Problem | None:
    state = host.file(path)
    if state is FileState.OK:
        return None
    where = place or Place("policy")
    if state is FileState.MISSING:
        return Problem(where, f"interpreter {path} does not exist; install the emulator or fix "
                       "the path", (kind, name))
    if state is FileState.UNTRUSTED:
        return Problem(where, f"interpreter {path} is not trusted: {host.why.get(path, '')}",
                       (kind, name))
    return Problem(where, f"interpreter {path} is not an executable file; chmod +x it or fix "
                   "the path", (kind, name))


def _refused(base: Want, problem: Problem, host: Host, path: str) -> Want:
    """An interpreter that cannot be registered: a missing or broken one leaves the entry as
    the kernel has it; an untrusted one is never left registered (it would run as root)."""
    untrusted = host.file(path) is FileState.UNTRUSTED
    return replace(base, verdict=Why.ERROR, frozen=not untrusted, message=problem.message)


def _pick(arch: Arch, rule: ArchRule, policy: Policy, catalog: Catalog,
          host: Host) -> tuple[str, str] | None:
    """(emulator, interpreter) by preference order: the first installed (and trusted) one
    wins."""
    for name in rule.emulators or policy.emulators:
        emu = catalog.emulators[name]
        if not emu.runs(arch.name, host.arch):
            continue
        for path in emu.candidates(arch.name):
            if host.file(path) is FileState.OK:
                return name, path
    return None


def runs_natively(host: Host, catalog: Catalog, arch: str) -> bool:
    """Whether this machine runs `arch` by itself: as its probe showed, or where probes could
    not be run, as the catalog's `runs` says (less what the CPU itself refuses)."""
    if host.native is not None:
        return arch in host.native
    return catalog.host_runs(host.arch, arch) and arch not in host.cannot_run


def _arch_want(arch: Arch, policy: Policy, catalog: Catalog, host: Host,
               problems: list[Problem]) -> Want:
    entry = OWNED_PREFIX + arch.name
    rule = policy.rule_for(arch.name)
    explicit = arch.name in policy.arches
    # Wants are made whole, not by dataclasses.replace on the common paths: it is several
    # times slower, and a daemon makes one per architecture at every run.
    if runs_natively(host, catalog, arch.name):
        how = ("its probe ran with an empty binfmt_misc table" if host.native is not None
               else "its own architecture" if arch.name == host.arch
               else f"{host.arch} kernels run it, by the catalog")
        return Want(arch.name, "arch", entry, None, Why.NATIVE, explicit=explicit,
                    message=f"runs natively on this {host.arch} host ({how})")
    if policy.spoiled("arch", arch.name):
        return Want(arch.name, "arch", entry, None, Why.ERROR, frozen=True, explicit=explicit,
                    message=_left_as_it_is(policy.problems, ("arch", arch.name)))
    default_rule = ArchRule(arch=arch.name, place=Place(""))
    picked = _pick(arch, rule or default_rule, policy, catalog, host)
    emulator, interpreter = picked if picked else (None, None)
    if rule is not None and rule.interpreter:
        emulator, interpreter = "explicit", rule.interpreter
    base = Want(arch.name, "arch", entry, None, interpreter=interpreter, emulator=emulator,
                explicit=explicit)
    if rule is None and policy.problems:
        return replace(base, verdict=Why.UNMANAGED, frozen=True,
                       message="not in the policy; its entry is left as it is until the "
                               "policy's problems are fixed")
    if rule is None:
        return replace(base, verdict=Why.UNMANAGED, message="not in the policy")
    if not rule.enabled:
        return replace(base, verdict=Why.DISABLED, message="turned off in the policy")
    if rule.interpreter:
        problem = _check_file(host, rule.interpreter, rule.interpreter_place, "arch", arch.name)
        if problem:
            problems.append(problem)
            return _refused(base, problem, host, rule.interpreter)
    if interpreter is None:
        tried = ", ".join(rule.emulators or policy.emulators)
        skipped = [host.why[p] for n in rule.emulators or policy.emulators
                   for p in catalog.emulators[n].candidates(arch.name) if p in host.why]
        untrusted = f"; not trusted: {skipped[0]}" if skipped else ""
        return replace(base, verdict=Why.MISSING_EMULATOR,
                       message=f"no emulator installed for {arch.name} (tried {tried}); "
                               f"install one, e.g. qemu-user-static{untrusted}")
    # An explicit interpreter takes the customary flags of the emulator discovery found, if any.
    customary = catalog.emulators[picked[0] if picked else "qemu"].flags
    emu_flags = catalog.emulators[emulator].flags if emulator in catalog.emulators else customary
    flags = rule.flags or policy.flags or emu_flags
    qemu = emulator == "qemu" or (emulator == "explicit" and
                                  catalog.takes_cpu_model(arch.name, interpreter))
    guard = rule.place if qemu and "C" in flags else None
    message = ""
    if guard is not None and host.arch not in HOSTS:
        said = without_guard(arch.name, rule.unsafe_credentials, guard,
                             f"multiarchd has no start-up code for {host.arch} hosts")
        if isinstance(said, Problem):
            problems.append(said)
            flags = flags.without("C")
        message = str(said) if isinstance(said, str) else said.message
        guard = None
    reg = Registration(entry, interpreter, flags, arch.magic, arch.mask)
    return Want(arch.name, "arch", entry, reg, None, interpreter, host.ids.get(interpreter),
                emulator, message, explicit=explicit, cpu=_cpu(arch, rule, catalog, qemu),
                cpu_place=rule.cpu_place if rule.cpu else None, hold=rule.hold, guard=guard,
                unsafe=rule.unsafe_credentials)


def without_guard(arch: str, unsafe: bool, place: Place, why: str) -> Problem | str:
    """C on QEMU where the guarded image cannot be made: the policy problem that refuses it,
    or, where the policy accepts the risk in words, the message that says it is kept."""
    if unsafe:
        return f"{place}: C kept on a QEMU multiarchd could not guard ({why}), as " \
               "unsafe_credentials says: any user who can run a setuid foreign program " \
               "steers QEMU as root"
    return Problem(place, f"C refused for {arch}: {why}, and without multiarchd's image any "
                   "user who can run a setuid foreign program steers QEMU as root; registered "
                   "without C (setuid programs run with their caller's rights). To keep C "
                   f"anyway, add `unsafe_credentials: \"{ACCEPT_RISK}\"` under arches.{arch}",
                   ("arch", arch))


def _cpu(arch: Arch, rule: ArchRule, catalog: Catalog, qemu: bool) -> str | None:
    """The CPU model the entry should carry: the policy's, else the catalog's for the
    emulator; only QEMU takes one (an explicit interpreter counts when it is a QEMU)."""
    if not qemu or rule.cpu == CPU_DEFAULT:
        return None
    return rule.cpu or catalog.emulators["qemu"].cpu.get(arch.name)


def _custom_want(rule: CustomRule, host: Host, problems: list[Problem]) -> Want:
    entry = OWNED_PREFIX + rule.name
    base = Want(rule.name, "custom", entry, None, interpreter=rule.interpreter,
                emulator="custom", explicit=True)
    if not rule.enabled:
        return replace(base, verdict=Why.DISABLED, message="turned off in the policy")
    problem = _check_file(host, rule.interpreter, rule.interpreter_place, "custom", rule.name)
    if problem:
        problems.append(problem)
        return _refused(base, problem, host, rule.interpreter)
    flags, message = rule.flags or Flags(), ""
    if "C" in flags and rule.interpreter.rsplit("/", 1)[-1].startswith("qemu-"):
        # multiarchd guards QEMU (core/cpu_image.py) in architecture entries only
        problem = Problem(rule.place, f"C refused for custom entry {rule.name}: "
                          f"{rule.interpreter} is a QEMU, and with C any user who can run a "
                          "setuid foreign program steers it as root; registered without C. "
                          "Give that architecture C under arches instead (multiarchd then "
                          "registers its own guarded image of QEMU)", ("custom", rule.name))
        problems.append(problem)
        flags, message = flags.without("C"), problem.message
    reg = Registration(entry, rule.interpreter, flags, rule.magic, rule.mask, rule.offset,
                       rule.extension)
    return Want(rule.name, "custom", entry, reg, None, rule.interpreter,
                host.ids.get(rule.interpreter), "custom", message, explicit=True)


def _left_as_it_is(problems: Iterable[Problem], scope: tuple[str, str]) -> str:
    """The note of an entry a policy problem spoils: where the problem is (status prints the
    problems after its table, the journal apart: no "see above" holds everywhere)."""
    places = ", ".join(dict.fromkeys(str(p.place) for p in problems if p.scope == scope))
    return f"its entry is left as it is until the policy error at {places} is fixed"


def desired(policy: Policy, catalog: Catalog, host: Host) -> Desired:
    problems = list(policy.problems)
    wants = [_arch_want(a, policy, catalog, host, problems) for a in catalog.arches.values()]
    spoiled_custom = {p.scope[1] for p in policy.problems if p.scope and p.scope[0] == "custom"}
    wants += [_custom_want(c, host, problems) for c in policy.custom]
    # (a custom entry named like an architecture is refused, and must not freeze that
    # architecture's own entry)
    taken = {w.entry for w in wants}
    wants += [Want(name, "custom", OWNED_PREFIX + name, None, verdict=Why.ERROR, frozen=True,
                   explicit=True, message=_left_as_it_is(policy.problems, ("custom", name)))
              for name in sorted(spoiled_custom) if OWNED_PREFIX + name not in taken]
    return Desired(wants=tuple(wants), foreign=policy.foreign, problems=tuple(problems),
                   tentative=bool(policy.problems))
