"""The policy as plain data: what `arches.yaml` and its drop-ins ask for (policy/ reads
and validates them)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from .flags import Flags
from .problems import Place, Problem

DEFAULT_EMULATORS = ("fex", "box64", "rosetta", "box86", "qemu")
TOP_KEYS = ("defaults", "arches", "foreign_entries", "custom", "verify", "node_features")
# Where node-feature-discovery's local source reads feature files (one label per line).
NFD_FEATURES_DIR = "/etc/kubernetes/node-feature-discovery/features.d"
DEFAULTS_KEYS = ("flags", "emulators")
ARCH_KEYS = ("enabled", "flags", "emulators", "interpreter", "cpu", "hold", "unsafe_credentials")
CPU_DEFAULT = "default"  # `cpu: default`: QEMU's own model, no -cpu
# `unsafe_credentials:` takes only this sentence: C on a QEMU multiarchd could not guard
# (core/cpu_image.py) is kept only by an admin who wrote down what it means.
ACCEPT_RISK = "any user who can run a setuid foreign program steers QEMU as root"
CUSTOM_KEYS = ("name", "extension", "magic", "mask", "offset", "interpreter", "flags", "enabled")
ALL = "all"


class ForeignMode(enum.StrEnum):
    """What to do with other tools' entries: those that overlap one of ours (disable, remove),
    or those the audit finds unsafe (disable-unsafe: core/audit.py, high severity)."""

    KEEP = "keep"
    DISABLE = "disable"
    DISABLE_UNSAFE = "disable-unsafe"
    REMOVE = "remove"


@dataclass(frozen=True)
class ArchRule:
    arch: str  # canonical name, or "all"
    place: Place
    enabled: bool = True
    flags: Flags | None = None
    emulators: tuple[str, ...] | None = None
    interpreter: str | None = None
    interpreter_place: Place | None = None
    cpu: str | None = None  # a QEMU CPU model (-cpu), or CPU_DEFAULT; None: the catalog's
    cpu_place: Place | None = None
    # Keep the file registered now when the one at its path changes, until `multiarchctl
    # release` (core/gate.py).
    hold: bool = False
    # `unsafe_credentials: ACCEPT_RISK`: keep C on a QEMU where the guarded image cannot be made
    unsafe_credentials: bool = False


@dataclass(frozen=True)
class CustomRule:
    name: str
    place: Place
    interpreter: str
    interpreter_place: Place
    flags: Flags | None = None
    enabled: bool = True
    magic: bytes = b""
    mask: bytes | None = None
    offset: int = 0
    extension: str | None = None


@dataclass(frozen=True)
class Policy:
    files: tuple[str, ...]
    flags: Flags | None = None
    emulators: tuple[str, ...] = DEFAULT_EMULATORS
    all_arches: ArchRule | None = None  # the rule for every architecture not listed by name
    arches: Mapping[str, ArchRule] = field(default_factory=dict)
    foreign: ForeignMode = ForeignMode.KEEP
    custom: tuple[CustomRule, ...] = ()
    verify: bool = True  # run each architecture's probe after a change
    # `node_features: PATH`: the node-feature-discovery file of labels written after each run
    # whose labels changed (core/node_labels.py); None: none is written.
    node_features: str | None = None
    problems: tuple[Problem, ...] = ()

    @property
    def rejected(self) -> bool:
        return any(p.scope is None for p in self.problems)

    def spoiled(self, kind: str, name: str) -> bool:
        return any(p.scope == (kind, name) for p in self.problems)

    def rule_for(self, arch: str) -> ArchRule | None:
        return self.arches.get(arch, self.all_arches)
