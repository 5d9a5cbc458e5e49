"""Reading the policy files: `arches.yaml` and its drop-ins, validated and merged into a Policy.

Every problem names its place. A problem in `defaults`, `foreign_entries` or the file's shape
rejects the whole policy (nothing is applied); a problem in one architecture or custom entry
spoils only that one, which is then left in the kernel exactly as it is.
"""

from __future__ import annotations

import glob
import os
from typing import Any

from . import yamlsrc
from .catalog import Catalog
from .entry import MAX_MAGIC, MAX_NAME, OWNED_PREFIX
from .flags import KERNEL_ORDER, MEANING, Flags
from .policy import (ALL, ARCH_KEYS, CUSTOM_KEYS, DEFAULT_EMULATORS, DEFAULTS_KEYS, TOP_KEYS,
                     ArchRule, CustomRule, ForeignMode, Policy)
from .problems import Place, Problem, did_you_mean
from .yamlsrc import MapNode, Node, Scalar, SeqNode


def policy_files(main: str) -> list[str]:
    """The main file, then `arches.d/*.yaml` beside it in name order."""
    dropins = sorted(glob.glob(os.path.join(os.path.dirname(main), "arches.d", "*.yaml")))
    return [main, *dropins]


def load_policy(main: str, catalog: Catalog, only: str | None = None) -> Policy:
    """Read and validate the policy (or only the one file `only`)."""
    files = [only] if only is not None else policy_files(main)
    merger = _Merger(catalog)
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            merger.problem(Place(path), "policy file not found; create it (an empty "
                           "`arches: {}` asks for no entries) or point --config at it")
            continue
        except (OSError, UnicodeDecodeError) as e:
            merger.problem(Place(path), f"cannot read the policy file: {e}")
            continue
        merger.add_file(path, text)
    return merger.result(tuple(files))


def _kind(node: Node) -> str:
    if isinstance(node, MapNode):
        return "a map"
    if isinstance(node, SeqNode):
        return "a list"
    v = node.value
    return "nothing" if v is None else f"{type(v).__name__} {v!r}"


def decode_bytes(text: str) -> bytes:
    """`\\x7fMYF` -> bytes: `\\xHH` escapes and `\\\\`; every other character is one byte."""
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            if text[i + 1:i + 2] == "\\":
                out.append(0x5C)
                i += 2
                continue
            hexpart = text[i + 2:i + 4]
            if text[i + 1:i + 2] != "x" or len(hexpart) != 2:
                raise ValueError(f"bad escape at character {i + 1}: only \\xHH and \\\\ are allowed")
            out.append(int(hexpart, 16))
            i += 4
            continue
        if ord(c) > 0xFF:
            raise ValueError(f"character {c!r} is not a byte; write it as \\xHH escapes")
        out.append(ord(c))
        i += 1
    return bytes(out)


class _Merger:
    """Validates each file and merges them: later files override earlier ones key by key."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.problems: list[Problem] = []
        self.flags: Flags | None = None
        self.emulators: tuple[str, ...] = DEFAULT_EMULATORS
        self.foreign = ForeignMode.KEEP
        self.arch_fields: dict[str, dict[str, Any]] = {}
        self.custom: dict[str, CustomRule] = {}
        self.verify = True
        self.file = ""

    # -- reporting -----------------------------------------------------------------------------
    def problem(self, place: Place, message: str, scope: tuple[str, str] | None = None) -> None:
        self.problems.append(Problem(place, message, scope))

    def at(self, node: Node) -> Place:
        return Place(self.file, node.mark.line, node.mark.column)

    def _map(self, node: Node, what: str, scope: tuple[str, str] | None) -> MapNode | None:
        if isinstance(node, MapNode):
            return node
        if isinstance(node, Scalar) and node.value is None:
            return MapNode((), node.mark)
        self.problem(self.at(node), f"{what} must be a map, not {_kind(node)}", scope)
        return None

    def _keys(self, node: MapNode, allowed: tuple[str, ...], what: str,
              scope: tuple[str, str] | None) -> dict[str, tuple[Scalar, Node]]:
        out: dict[str, tuple[Scalar, Node]] = {}
        for key, value in node.items:
            name = str(key.value)
            if name not in allowed:
                self.problem(self.at(key), f"unknown key {name!r} in {what}"
                             f"{did_you_mean(name, allowed)}", scope)
                continue
            out[name] = (key, value)
        return out

    # -- values --------------------------------------------------------------------------------
    def _flags(self, node: Node, scope: tuple[str, str] | None) -> Flags | None:
        letters: list[tuple[str, Node]] = []
        if isinstance(node, SeqNode):
            letters = [(str(n.value) if isinstance(n, Scalar) else "?", n) for n in node.items]
        elif isinstance(node, Scalar) and isinstance(node.value, str):
            letters = [(c, node) for c in node.value]
        else:
            self.problem(self.at(node), f"flags must be a list such as [F, P], not {_kind(node)}",
                         scope)
            return None
        for letter, where in letters:
            if letter not in KERNEL_ORDER or len(letter) != 1:
                allowed = ", ".join(f"{k} ({v})" for k, v in MEANING.items())
                self.problem(self.at(where), f"unknown flag {letter!r}; allowed: {allowed}", scope)
                return None
        return Flags.parse("".join(letter for letter, _ in letters))

    def _emulators(self, node: Node, scope: tuple[str, str] | None) -> tuple[str, ...] | None:
        if not isinstance(node, SeqNode):
            self.problem(self.at(node), f"emulators must be a list such as [fex, qemu], not "
                         f"{_kind(node)}", scope)
            return None
        names = []
        for item in node.items:
            name = item.value if isinstance(item, Scalar) else None
            if not isinstance(name, str) or name not in self.catalog.emulators:
                self.problem(self.at(item), f"unknown emulator {name!r}"
                             f"{did_you_mean(str(name), self.catalog.emulators)}", scope)
                return None
            names.append(name)
        return tuple(names)

    def _bool(self, node: Node, what: str, scope: tuple[str, str] | None) -> bool | None:
        if isinstance(node, Scalar) and isinstance(node.value, bool):
            return node.value
        self.problem(self.at(node), f"{what} must be true or false, not {_kind(node)}", scope)
        return None

    def _interpreter(self, node: Node, scope: tuple[str, str] | None) -> str | None:
        if not (isinstance(node, Scalar) and isinstance(node.value, str) and node.value):
            self.problem(self.at(node), f"interpreter must be an absolute path, not "
                         f"{_kind(node)}", scope)
            return None
        path = node.value
        if not path.startswith("/"):
            self.problem(self.at(node), f"interpreter {path!r} is a relative path; the kernel "
                         "needs an absolute one such as /usr/bin/qemu-aarch64-static", scope)
        elif ":" in path or "\n" in path:
            self.problem(self.at(node), f"interpreter {path!r} contains ':' or a newline, which "
                         "binfmt_misc cannot register; use a path (or symlink) without them",
                         scope)
        else:
            return path
        return None

    def _string(self, node: Node, what: str, scope: tuple[str, str] | None) -> str | None:
        if isinstance(node, Scalar) and isinstance(node.value, (str, int)) and \
                not isinstance(node.value, bool):
            return str(node.value)
        self.problem(self.at(node), f"{what} must be a string, not {_kind(node)}", scope)
        return None

    # -- sections ------------------------------------------------------------------------------
    def add_file(self, path: str, text: str) -> None:
        self.file = path
        try:
            root = yamlsrc.parse(text)
        except yamlsrc.YamlError as e:
            self.problem(Place(path, e.mark.line, e.mark.column),
                         f"{e.message}; fix the YAML syntax")
            return
        if root is None:
            return  # an empty file adds nothing
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
                             f"{', '.join(modes)}, not {_kind(node)}"
                             f"{did_you_mean(str(value), modes)}")
        if "verify" in keys:
            verify = self._bool(keys["verify"][1], "verify", None)
            if verify is not None:
                self.verify = verify
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
        if isinstance(node, Scalar) and node.value == ALL:
            self.arch_fields.setdefault(ALL, {"place": self.at(node)})
            return
        section = self._map(node, "arches (`all` or a map of architectures)", None)
        if section is None:
            return
        seen: dict[str, Scalar] = {}
        for key, value in section.items:
            raw = str(key.value)
            arch = ALL if raw == ALL else self.catalog.canonical(raw)
            if arch is None:
                self.problem(self.at(key), f"unknown architecture {raw!r}"
                             f"{did_you_mean(raw, self.catalog.aliases)}", ("arch", raw))
                continue
            scope = ("arch", arch)
            if arch in seen:
                first = seen[arch]
                self.problem(self.at(key), f"architecture {arch!r} is given twice: as "
                             f"{first.value!r} at line {first.mark.line} and as {raw!r} here; "
                             "keep one", scope)
                continue
            seen[arch] = key
            fields = self._arch_rule(value, raw, scope)
            if fields is not None:
                merged = self.arch_fields.setdefault(arch, {})
                merged.update(fields)
                merged["place"] = self.at(key)

    def _arch_rule(self, node: Node, raw: str, scope: tuple[str, str]) -> dict[str, Any] | None:
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
        if "interpreter" in keys:
            node = keys["interpreter"][1]
            fields["interpreter"] = self._interpreter(node, scope)
            fields["interpreter_place"] = self.at(node)
        return fields if len(self.problems) == before else None

    def _custom(self, node: Node) -> None:
        if not isinstance(node, SeqNode):
            self.problem(self.at(node), f"custom must be a list of entries, not {_kind(node)}")
            return
        for index, item in enumerate(node.items, 1):
            rule = self._custom_rule(item, index)
            if rule is not None:
                self.custom[rule.name] = rule

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
        return CustomRule(
            name=name, place=self.at(section), interpreter=interpreter,
            interpreter_place=self.at(keys["interpreter"][1]), flags=flags, enabled=enabled,
            magic=magic, mask=mask, offset=offset, extension=extension,
        )

    def _check_name(self, name: str, node: Node, scope: tuple[str, str]) -> None:
        limit = MAX_NAME - len(OWNED_PREFIX)
        if name in ("", ".", "..", "register", "status"):
            self.problem(self.at(node), f"custom name {name!r} is reserved by binfmt_misc; "
                         "choose another", scope)
        elif "/" in name or ":" in name or "\n" in name:
            self.problem(self.at(node), f"custom name {name!r} contains '/', ':' or a newline; "
                         "use letters, digits, '-', '_' and '.'", scope)
        elif self.catalog.canonical(name) is not None:
            self.problem(self.at(node), f"custom name {name!r} is an architecture's name; its "
                         "entry would collide with multiarchd's own for that architecture", scope)
        elif len(name) > limit:
            self.problem(self.at(node), f"custom name is {len(name)} characters; the kernel "
                         f"allows {limit} after the {OWNED_PREFIX!r} prefix", scope)

    def _extension(self, node: Node, scope: tuple[str, str]) -> str | None:
        ext = self._string(node, "extension", scope)
        if ext is None:
            return None
        ext = ext.removeprefix(".")
        if not ext or "/" in ext or ":" in ext or "\n" in ext:
            self.problem(self.at(node), f"extension {ext!r} must be a non-empty file name "
                         "ending without '/', ':' or a newline, such as 'exe'", scope)
            return None
        return ext

    def _magic(self, keys: dict[str, tuple[Scalar, Node]],
               scope: tuple[str, str]) -> tuple[bytes, bytes | None, int]:
        magic_node = keys["magic"][1]
        magic, mask, offset = b"", None, 0
        text = self._string(magic_node, "magic", scope)
        try:
            magic = decode_bytes(text) if text is not None else b""
        except ValueError as e:
            self.problem(self.at(magic_node), f"magic: {e}", scope)
        if text is not None and not magic:
            self.problem(self.at(magic_node), "magic must not be empty", scope)
        if "mask" in keys:
            mask_node = keys["mask"][1]
            mtext = self._string(mask_node, "mask", scope)
            try:
                mask = decode_bytes(mtext) if mtext is not None else None
            except ValueError as e:
                self.problem(self.at(mask_node), f"mask: {e}", scope)
            if mask is not None and magic and len(mask) != len(magic):
                self.problem(self.at(mask_node), f"mask is {len(mask)} bytes but magic is "
                             f"{len(magic)}; the kernel needs them the same length", scope)
        if "offset" in keys:
            node = keys["offset"][1]
            if isinstance(node, Scalar) and type(node.value) is int and node.value >= 0:
                offset = node.value
            else:
                self.problem(self.at(node), f"offset must be a whole number >= 0, not "
                             f"{_kind(node)}", scope)
        if offset + len(magic) > MAX_MAGIC:
            self.problem(self.at(magic_node), f"offset {offset} plus {len(magic)} magic bytes "
                         f"reaches past byte {MAX_MAGIC}, the most binfmt_misc reads", scope)
        return magic, mask, offset

    # -- result --------------------------------------------------------------------------------
    def result(self, files: tuple[str, ...]) -> Policy:
        arches: dict[str, ArchRule] = {}
        all_rule = None
        for arch, f in self.arch_fields.items():
            rule = ArchRule(
                arch=arch, place=f["place"], enabled=f.get("enabled", True),
                flags=f.get("flags"), emulators=f.get("emulators"),
                interpreter=f.get("interpreter"), interpreter_place=f.get("interpreter_place"),
            )
            if arch == ALL:
                all_rule = rule
            else:
                arches[arch] = rule
        return Policy(
            files=files, flags=self.flags, emulators=self.emulators, all_arches=all_rule,
            arches=arches, foreign=self.foreign, custom=tuple(self.custom.values()),
            verify=self.verify, problems=tuple(self.problems),
        )
