"""Checking single values of the policy (flags, emulators, paths, names, magic), each problem
with its place: the pieces validate.py builds whole sections from. Pure.

What passes here is what the kernel accepts and gives back unchanged: names, extensions and
interpreters are checked as the bytes that will be written, against binfmt_misc's rules and
limits, and a value YAML would read as a number or a date must be quoted.
"""

from __future__ import annotations

import re
import unicodedata

from ..core.cpu_image import not_a_model
from ..model.catalog import Catalog
from ..model.escapes import decode_bytes
from ..model.flags import KERNEL_ORDER, MEANING, Flags
from ..model.policy import ACCEPT_RISK, CPU_DEFAULT, NFD_FEATURES_DIR
from ..model.problems import Place, Problem, did_you_mean
from ..model.registration import MAX_MAGIC, MAX_NAME, STAND_IN
from ..names import CONTROL_FILES, OWNED_PREFIX
from .nodes import MapNode, Node, Scalar, SeqNode

# What a problem spoils: None for the whole policy, else ("arch" | "custom", name).
Scope = tuple[str, str] | None

MAX_PROBLEMS = 30  # per policy: past that, fix these first
NAME_RULE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
MAX_EXTENSION = 64  # bytes; a file name extension, not a path


class TooManyProblems(Exception):
    def __init__(self, place: Place) -> None:
        super().__init__(place)
        self.place = place  # of the first problem not listed


def kind_of(node: Node) -> str:
    if isinstance(node, MapNode):
        return "a map"
    if isinstance(node, SeqNode):
        return "a list"
    v = node.value
    return "nothing" if v is None else f"{type(v).__name__} {v!r}"


def _bad_character(text: str) -> str | None:
    """Why `text` cannot be written to binfmt_misc and read back, or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return f"it holds {text[e.start]!r}, which is not a character (a lone surrogate)"
    for c in text:
        if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") or c == "\u0085":
            return f"it holds the control character {c!r}"
    if text != text.strip():
        return "it starts or ends with white space"
    return None


class Fields:
    """Checks one value at a time; each problem is recorded with its place and scope."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.problems: list[Problem] = []
        self.file = ""

    # -- reporting -----------------------------------------------------------------------------
    def problem(self, place: Place, message: str, scope: Scope = None) -> None:
        if len(self.problems) >= MAX_PROBLEMS:
            raise TooManyProblems(place)
        self.problems.append(Problem(place, message, scope))

    def at(self, node: Node) -> Place:
        return Place(self.file, node.mark.line, node.mark.column)

    def _map(self, node: Node, what: str, scope: Scope) -> MapNode | None:
        if isinstance(node, MapNode):
            return node
        if isinstance(node, Scalar) and node.value is None:
            return MapNode((), node.mark)
        self.problem(self.at(node), f"{what} must be a map, not {kind_of(node)}", scope)
        return None

    def _keys(self, node: MapNode, allowed: tuple[str, ...], what: str,
              scope: Scope) -> dict[str, tuple[Scalar, Node]]:
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
    def _flags(self, node: Node, scope: Scope) -> Flags | None:
        letters: list[tuple[str, Node]] = []
        if isinstance(node, SeqNode):
            letters = [(str(n.value) if isinstance(n, Scalar) else "?", n) for n in node.items]
        elif isinstance(node, Scalar) and isinstance(node.value, str):
            letters = [(c, node) for c in node.value]
        else:
            self.problem(self.at(node), f"flags must be a list such as [F, P], not {kind_of(node)}",
                         scope)
            return None
        for letter, where in letters:
            if letter not in KERNEL_ORDER or len(letter) != 1:
                allowed = ", ".join(f"{k} ({v})" for k, v in MEANING.items())
                self.problem(self.at(where), f"unknown flag {letter!r}; allowed: {allowed}", scope)
                return None
        return Flags.parse("".join(letter for letter, _ in letters))

    def _emulators(self, node: Node, scope: Scope) -> tuple[str, ...] | None:
        if not isinstance(node, SeqNode):
            self.problem(self.at(node), f"emulators must be a list such as [fex, qemu], not "
                         f"{kind_of(node)}", scope)
            return None
        names = []
        for item in node.items:
            name = item.value if isinstance(item, Scalar) else None
            if not isinstance(name, str) or name not in self.catalog.emulators:
                self.problem(self.at(item), f"unknown emulator {name!r}"
                             f"{did_you_mean(str(name), self.catalog.emulators)}", scope)
                return None
            names.append(name)
        if not names:
            self.problem(self.at(node), "emulators is empty: nothing could run any architecture; "
                         "list at least one, such as [qemu]", scope)
            return None
        return tuple(names)

    def _bool(self, node: Node, what: str, scope: Scope) -> bool | None:
        if isinstance(node, Scalar) and isinstance(node.value, bool):
            return node.value
        self.problem(self.at(node), f"{what} must be true or false, not {kind_of(node)}", scope)
        return None

    def _string(self, node: Node, what: str, scope: Scope) -> str | None:
        """A string as written; a number, a boolean or a date YAML would make of it is refused
        with the quoting that keeps it text."""
        if isinstance(node, Scalar) and isinstance(node.value, str):
            return node.value
        if isinstance(node, Scalar) and node.value is not None:
            self.problem(self.at(node), f"{what} {node.text} is read by YAML as "
                         f"{kind_of(node)}; quote it to keep the text: '{node.text}'", scope)
            return None
        self.problem(self.at(node), f"{what} must be a string, not {kind_of(node)}", scope)
        return None

    def _cpu(self, node: Node, scope: Scope) -> str | None:
        model = self._string(node, "cpu", scope)
        if model is None:
            return None
        why = not_a_model(model) if model != CPU_DEFAULT else None
        if why:
            self.problem(self.at(node), f"cpu {model!r} {why}: write a name "
                         "as `qemu-ARCH-static -cpu help` lists it, with properties after commas "
                         "(max,pauth-impdef=on), or `default` for QEMU's own", scope)
            return None
        return model

    def _accept_risk(self, node: Node, scope: Scope) -> bool | None:
        said = self._string(node, "unsafe_credentials", scope)
        if said is None or said == ACCEPT_RISK:
            return None if said is None else True
        self.problem(self.at(node), f"unsafe_credentials takes only the words \"{ACCEPT_RISK}\" "
                     "(it keeps C on a QEMU multiarchd cannot guard; see arches.yaml(5))", scope)
        return None

    def _interpreter(self, node: Node, scope: Scope) -> str | None:
        path = self._string(node, "interpreter", scope)
        if path is None:
            return None
        why = _bad_character(path)
        if not path.startswith("/"):
            self.problem(self.at(node), f"interpreter {path!r} is a relative path; the kernel "
                         "needs an absolute one such as /usr/bin/qemu-aarch64-static", scope)
        elif ":" in path:
            self.problem(self.at(node), f"interpreter {path!r} contains ':', which binfmt_misc "
                         "cannot register; use a path (or symlink) without it", scope)
        elif why:
            self.problem(self.at(node), f"interpreter {path!r}: {why}; binfmt_misc could not "
                         "give it back unchanged: use a path (or symlink) without it", scope)
        else:
            return path
        return None

    def _feature_file(self, node: Node) -> str | None:
        """`node_features:` a file for node-feature-discovery's local source, or null (off)."""
        if isinstance(node, Scalar) and node.value is None:
            return None
        path = self._string(node, "node_features", None)
        if path is None:
            return None
        name = path.rsplit("/", 1)[-1]
        why = _bad_character(path)
        if not path.startswith("/") or not name or name in (".", ".."):
            self.problem(self.at(node), f"node_features {path!r} is not an absolute file path; "
                         f"write one such as {NFD_FEATURES_DIR}/multiarchd")
        elif name.startswith("."):
            # NFD skips dot files: they are how a writer replaces a file without a half one.
            self.problem(self.at(node), f"node_features {path!r}: node-feature-discovery "
                         f"skips files whose name starts with '.'; name it such as "
                         f"{NFD_FEATURES_DIR}/multiarchd")
        elif why:
            self.problem(self.at(node), f"node_features {path!r}: {why}; choose another path")
        else:
            return path
        return None

    def _check_name(self, name: str, node: Node, scope: Scope) -> None:
        limit = MAX_NAME - len(OWNED_PREFIX) - len(STAND_IN)
        if name in CONTROL_FILES:
            self.problem(self.at(node), f"custom name {name!r} is reserved by binfmt_misc; "
                         "choose another", scope)
        elif not NAME_RULE.fullmatch(name):
            self.problem(self.at(node), f"custom name {name!r} may hold only letters, digits, "
                         "'-', '_' and '.', and not start with '-' or '.'", scope)
        elif self.catalog.canonical(name) is not None:
            self.problem(self.at(node), f"custom name {name!r} is an architecture's name; its "
                         "entry would collide with multiarchd's own for that architecture", scope)
        elif len(name) > limit:
            self.problem(self.at(node), f"custom name is {len(name)} characters; the kernel "
                         f"allows {limit} after the {OWNED_PREFIX!r} prefix", scope)

    def _extension(self, node: Node, scope: Scope) -> str | None:
        ext = self._string(node, "extension", scope)
        if ext is None:
            return None
        ext = ext.removeprefix(".")
        why = _bad_character(ext) or (
            "it is empty" if not ext else
            "it holds white space, '/', ':' or '.'" if re.search(r"[\s/:.]", ext) else
            f"it is longer than {MAX_EXTENSION} bytes" if len(ext.encode()) > MAX_EXTENSION
            else None)
        if why:
            self.problem(self.at(node), f"extension {ext!r}: {why}; give the file name's "
                         "ending without the dot, such as 'exe'", scope)
            return None
        return ext

    def _bytes(self, node: Node, what: str, scope: Scope) -> bytes | None:
        text = self._string(node, what, scope)
        if text is None:
            return None
        try:
            return decode_bytes(text)
        except ValueError as e:
            self.problem(self.at(node), f"{what}: {e}", scope)
            return None

    def _magic(self, keys: dict[str, tuple[Scalar, Node]],
               scope: Scope) -> tuple[bytes, bytes | None, int]:
        magic_node = keys["magic"][1]
        magic = self._bytes(magic_node, "magic", scope)
        if magic == b"":
            self.problem(self.at(magic_node), "magic must not be empty", scope)
        mask, offset = None, 0
        if "mask" in keys:
            mask_node = keys["mask"][1]
            mask = self._bytes(mask_node, "mask", scope)
            if mask is not None and magic and len(mask) != len(magic):
                self.problem(self.at(mask_node), f"mask is {len(mask)} bytes but magic is "
                             f"{len(magic)}; the kernel needs them the same length", scope)
        if "offset" in keys:
            node = keys["offset"][1]
            if isinstance(node, Scalar) and type(node.value) is int and node.value >= 0:
                offset = node.value
            else:
                self.problem(self.at(node), f"offset must be a whole number >= 0, not "
                             f"{kind_of(node)}", scope)
        if magic and offset + len(magic) > MAX_MAGIC:
            self.problem(self.at(magic_node), f"offset {offset} plus {len(magic)} magic bytes "
                         f"reaches past byte {MAX_MAGIC}, the most binfmt_misc reads", scope)
        return magic or b"", mask, offset
