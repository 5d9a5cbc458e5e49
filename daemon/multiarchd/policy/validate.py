"""Validating and merging the policy: the sections of `arches.yaml` and its drop-ins, checked
and merged into one Policy. Pure: files.py reads the files and parses their YAML.

Every problem names its place. A problem in `defaults`, `foreign_entries` or the file's shape
rejects the whole policy (nothing is applied); a problem in one architecture or custom entry
spoils only that one, which is then left in the kernel exactly as it is.
"""

from __future__ import annotations

from typing import Any

from ..model.catalog import Catalog
from ..model.flags import KERNEL_ORDER, Flags
from ..model.policy import (ALL, ARCH_KEYS, CPU_DEFAULT, CUSTOM_KEYS, DEFAULT_EMULATORS,
                            DEFAULTS_KEYS, TOP_KEYS, ArchRule, CustomRule, ForeignMode, Policy)
from ..model.problems import Place, Problem, closest, did_you_mean
from ..model.registration import MAX_REGISTER, Registration
from ..names import OWNED_PREFIX
from .fields import MAX_PROBLEMS, Fields, Scope, TooManyProblems, kind_of
from .nodes import MapNode, Node, Scalar, SeqNode, YamlError


class Merger(Fields):
    """Validates each file and merges them: later files override earlier ones key by key."""

    def __init__(self, catalog: Catalog) -> None:
        super().__init__(catalog)
        self.flags: Flags | None = None
        self.emulators: tuple[str, ...] = DEFAULT_EMULATORS
        self.foreign = ForeignMode.KEEP
        self.arch_fields: dict[str, dict[str, Any]] = {}
        self.custom: dict[str, CustomRule] = {}
        self.verify = True
        self.node_features: str | None = None
        self.arches_given = False  # some file said `arches:` (an empty map asks for nothing)

    # -- sections ------------------------------------------------------------------------------
    def add_file(self, path: str, root: Node | YamlError | None, main: bool = False) -> None:
        """One file's document (None when it has none, or its YAML error), merged over the
        others. The main file must hold a policy: an empty one is an accident, not a wish."""
        self.file = path
        try:
            self._add(path, root, main)
        except TooManyProblems as e:
            self.problems.append(Problem(e.place, f"more than {MAX_PROBLEMS} problems; fix "
                                         "these first"))

    def unreadable(self, place: Place, message: str) -> None:
        """A file that could not be read: the whole policy is rejected."""
        self.problems.append(Problem(place, message))
        self.arches_given = True  # said already: the file is the problem, not its content

    def _add(self, path: str, root: Node | YamlError | None, main: bool) -> None:
        if isinstance(root, YamlError):
            self.problem(Place(path, root.mark.line, root.mark.column),
                         f"{root.message}; fix the YAML syntax")
            return
        if root is None:
            if main:
                self.problem(Place(path, 1, 1), "the policy file is empty (or only comments); "
                             "nothing is changed: write `arches: all` for every foreign "
                             "architecture, or `arches: {}` to remove every entry")
            return  # an empty drop-in adds nothing
        top = self._map(root, "the policy file", None)
        if top is None:
            return
        keys = self._keys(top, TOP_KEYS, "the policy file", None)
        if "defaults" in keys:
            self._defaults(keys["defaults"][1])
        if "foreign_entries" in keys:
            node = keys["foreign_entries"][1]
            value = node.value if isinstance(node, Scalar) else None
            modes = [m.value for m in ForeignMode]
            if value in modes:
                self.foreign = ForeignMode(value)
            else:
                self.problem(self.at(node), f"foreign_entries must be one of "
                             f"{', '.join(modes)}, not {kind_of(node)}"
                             f"{did_you_mean(str(value), modes)}")
        if "verify" in keys:
            verify = self._bool(keys["verify"][1], "verify", None)
            if verify is not None:
                self.verify = verify
        if "node_features" in keys:
            self.node_features = self._feature_file(keys["node_features"][1])
        if "arches" in keys:
            self._arches(keys["arches"][1])
        if "custom" in keys:
            self._custom(keys["custom"][1])

    def _defaults(self, node: Node) -> None:
        section = self._map(node, "defaults", None)
        if section is None:
            return
        keys = self._keys(section, DEFAULTS_KEYS, "defaults", None)
        if "flags" in keys:
            flags = self._flags(keys["flags"][1], None)
            if flags is not None:
                self.flags = flags
        if "emulators" in keys:
            emulators = self._emulators(keys["emulators"][1], None)
            if emulators is not None:
                self.emulators = emulators

    def _arches(self, node: Node) -> None:
        if isinstance(node, Scalar) and node.value is None:
            self.problem(self.at(node), "arches is empty (null); nothing is changed: write "
                         "`arches: all`, a map of architectures, or `arches: {}` to remove "
                         "every entry")
            return
        self.arches_given = True
        if isinstance(node, Scalar) and node.value == ALL:
            self.arch_fields.setdefault(ALL, {"place": self.at(node)})
            return
        section = self._map(node, "arches (`all` or a map of architectures)", None)
        if section is None:
            return
        seen: dict[str, Scalar] = {}
        named = {self.catalog.canonical(str(k.value)) for k, _ in section.items}
        if section.items and not named - {None} and \
                not any(str(k.value) == ALL for k, _ in section.items):
            # Nothing here is an architecture: a typo (`al` for `all`), not a wish for none.
            self.problem(self.at(section), "no name in arches is an architecture; nothing is "
                         "changed: write `arches: all`, known names (see `multiarchctl "
                         "arches`), or `arches: {}` to remove every entry")
        for key, value in section.items:
            raw = str(key.value)
            arch = ALL if raw == ALL else self.catalog.canonical(raw)
            if arch is None:
                # A misspelling of one not named otherwise leaves that one's entry as it is,
                # rather than removing it as "not in the policy".
                close = closest(raw, self.catalog.aliases)
                meant = self.catalog.canonical(close) if close else None
                meant = None if meant in named else meant
                self.problem(self.at(key), f"unknown architecture {raw!r}"
                             f"{did_you_mean(raw, self.catalog.aliases)}",
                             ("arch", meant or raw))
                continue
            scope = ("arch", arch)
            if arch in seen:
                first = seen[arch]
                self.problem(self.at(key), f"architecture {arch!r} is given twice: as "
                             f"{first.value!r} at line {first.mark.line} and as {raw!r} here; "
                             "keep one", scope)
                continue
            seen[arch] = key
            if arch == ALL and isinstance(value, MapNode) and \
                    any(k.value == "interpreter" for k, _ in value.items):
                self.problem(self.at(value), "arches.all cannot name an interpreter: each "
                             "architecture needs its own; give it under the architecture's name")
                continue
            if arch == ALL and isinstance(value, MapNode) and \
                    any(k.value == "cpu" and not (isinstance(v, Scalar) and
                                                  v.value == CPU_DEFAULT)
                        for k, v in value.items):
                self.problem(self.at(value), "arches.all can only say `cpu: default` (QEMU's "
                             "own model everywhere): a model belongs to one architecture; give "
                             "it under the architecture's name")
                continue
            fields = self._arch_rule(value, raw, scope)
            if fields is not None:
                merged = self.arch_fields.setdefault(arch, {})
                merged.update(fields)
                merged["place"] = self.at(key)

    def _arch_rule(self, node: Node, raw: str, scope: Scope) -> dict[str, Any] | None:
        if isinstance(node, Scalar) and isinstance(node.value, bool):
            return {"enabled": node.value}  # `s390x: false` is short for {enabled: false}
        section = self._map(node, f"arches.{raw}", scope)
        if section is None:
            return None
        before = len(self.problems)
        keys = self._keys(section, ARCH_KEYS, f"arches.{raw}", scope)
        fields: dict[str, Any] = {}
        if "enabled" in keys:
            fields["enabled"] = self._bool(keys["enabled"][1], f"arches.{raw}.enabled", scope)
        if "flags" in keys:
            fields["flags"] = self._flags(keys["flags"][1], scope)
        if "emulators" in keys:
            fields["emulators"] = self._emulators(keys["emulators"][1], scope)
        if "hold" in keys:
            fields["hold"] = self._bool(keys["hold"][1], f"arches.{raw}.hold", scope)
        if "cpu" in keys:
            fields["cpu"] = self._cpu(keys["cpu"][1], scope)
            fields["cpu_place"] = self.at(keys["cpu"][1])
        if "unsafe_credentials" in keys:
            fields["unsafe_credentials"] = self._accept_risk(keys["unsafe_credentials"][1], scope)
        if "interpreter" in keys:
            node = keys["interpreter"][1]
            fields["interpreter"] = self._interpreter(node, scope)
            fields["interpreter_place"] = self.at(node)
            if fields["interpreter"] and scope:
                arch = self.catalog.arches[scope[1]]
                self._fits(Registration(OWNED_PREFIX + arch.name, fields["interpreter"],
                                        Flags.parse(KERNEL_ORDER), arch.magic, arch.mask),
                           node, scope)
        return fields if len(self.problems) == before else None

    def _fits(self, reg: Registration, node: Node, scope: Scope) -> None:
        size = len(reg.register_line().encode())
        if size > MAX_REGISTER:
            self.problem(self.at(node), f"the register line would be {size} bytes; the kernel "
                         f"takes at most {MAX_REGISTER}: shorten the interpreter path (a "
                         "symlink) or the magic and mask", scope)

    def _custom(self, node: Node) -> None:
        if not isinstance(node, SeqNode):
            self.problem(self.at(node), f"custom must be a list of entries, not {kind_of(node)}")
            return
        here: dict[str, Place] = {}
        for index, item in enumerate(node.items, 1):
            rule = self._custom_rule(item, index)
            if rule is None:
                continue
            if rule.name in here:
                self.problem(rule.place, f"custom entry {rule.name!r} is given twice (first at "
                             f"line {here[rule.name].line}); keep one",
                             ("custom", rule.name))
                self.custom.pop(rule.name, None)  # neither applies: its entry stays as it is
                continue
            here[rule.name] = rule.place
            self.custom[rule.name] = rule  # over one of the same name in an earlier file

    def _custom_rule(self, node: Node, index: int) -> CustomRule | None:
        name_node = None
        if isinstance(node, MapNode):
            name_node = next((v for k, v in node.items if k.value == "name"), None)
        label = (str(name_node.value) if isinstance(name_node, Scalar) else f"#{index}")
        scope = ("custom", label)
        what = f"custom entry {label!r}"
        section = self._map(node, what, scope)
        if section is None:
            return None
        before = len(self.problems)
        keys = self._keys(section, CUSTOM_KEYS, what, scope)
        for required in ("name", "interpreter"):
            if required not in keys:
                self.problem(self.at(section), f"{what} needs a {required!r}", scope)
        name = self._string(keys["name"][1], "name", scope) if "name" in keys else None
        if name is not None:
            self._check_name(name, keys["name"][1], scope)
        interpreter = None
        if "interpreter" in keys:
            interpreter = self._interpreter(keys["interpreter"][1], scope)
        flags = self._flags(keys["flags"][1], scope) if "flags" in keys else None
        enabled = self._bool(keys["enabled"][1], "enabled", scope) if "enabled" in keys else True
        has_ext, has_magic = "extension" in keys, "magic" in keys
        if has_ext == has_magic:
            self.problem(self.at(section), f"{what} needs exactly one of 'extension' (match by "
                         "file name) or 'magic' (match by content)", scope)
        extension = None
        magic, mask, offset = b"", None, 0
        if has_ext:
            extension = self._extension(keys["extension"][1], scope)
            for key in ("mask", "offset"):
                if key in keys:
                    self.problem(self.at(keys[key][0]), f"{key!r} goes with 'magic', not with "
                                 "'extension'", scope)
        elif has_magic:
            magic, mask, offset = self._magic(keys, scope)
        if len(self.problems) != before or name is None or interpreter is None:
            return None
        assert enabled is not None
        self._fits(Registration(OWNED_PREFIX + name, interpreter, Flags.parse(KERNEL_ORDER),
                                magic, mask, offset, extension), section, scope)
        if len(self.problems) != before:
            return None
        return CustomRule(
            name=name, place=self.at(section), interpreter=interpreter,
            interpreter_place=self.at(keys["interpreter"][1]), flags=flags, enabled=enabled,
            magic=magic, mask=mask, offset=offset, extension=extension,
        )

    def _cpu_taken(self, arch: str, f: dict[str, Any]) -> None:
        """A CPU model with an interpreter that is no QEMU would be dropped without a word: said
        where the model is (once every file is merged: each may come from another)."""
        path, model = f.get("interpreter"), f.get("cpu")
        if path and model and model != CPU_DEFAULT and arch != ALL and \
                not self.catalog.takes_cpu_model(arch, path):
            self.problem(f["cpu_place"], f"cpu {model!r}: only QEMU takes a CPU model, and "
                         f"interpreter {path} is not named as one (qemu-*); name the QEMU file "
                         "itself, or drop cpu", ("arch", arch))

    # -- result --------------------------------------------------------------------------------
    def result(self, files: tuple[str, ...], whole: bool = True) -> Policy:
        """The merged policy; `whole`: these are all its files, so one must say `arches:`."""
        if whole and not self.arches_given and not self.problems:
            self.problems.append(Problem(Place(files[0], 1, 1), "no policy file says which "
                                         "architectures; nothing is changed: add `arches: all`, "
                                         "a map of architectures, or `arches: {}` for none"))
        arches: dict[str, ArchRule] = {}
        all_rule = None
        for arch, f in self.arch_fields.items():
            self._cpu_taken(arch, f)
            rule = ArchRule(
                arch=arch, place=f["place"], enabled=f.get("enabled", True),
                flags=f.get("flags"), emulators=f.get("emulators"),
                interpreter=f.get("interpreter"), interpreter_place=f.get("interpreter_place"),
                cpu=f.get("cpu"), cpu_place=f.get("cpu_place"), hold=f.get("hold", False),
                unsafe_credentials=f.get("unsafe_credentials", False),
            )
            if arch == ALL:
                all_rule = rule
            else:
                arches[arch] = rule
        return Policy(
            files=files, flags=self.flags, emulators=self.emulators, all_arches=all_rule,
            arches=arches, foreign=self.foreign, custom=tuple(self.custom.values()),
            verify=self.verify, node_features=self.node_features,
            problems=tuple(self.problems),
        )
