"""The policy files: which ones there are, reading them safely, parsing their YAML, and handing
the documents to validate.py.

Only regular files are read, opened without blocking (a FIFO or a device named as the policy
is refused, not waited on) and up to MAX_BYTES; the text must be UTF-8, and an error says where
it is not.
"""

from __future__ import annotations

import glob
import os
import stat

from .. import identity
from ..model.catalog import Catalog
from ..model.policy import Policy
from ..model.problems import Place
from .nodes import Node, YamlError
from .places import dropin_dirs
from .validate import Merger
from .yamlnodes import parse

Parsed = Node | YamlError | None  # a file's YAML: its root node, or why it is not YAML

MAX_BYTES = identity.TEXT_MAX  # 1 MiB: a policy is a few hundred bytes

_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}


class Unreadable(Exception):
    def __init__(self, place: Place, message: str) -> None:
        super().__init__(message)
        self.place = place
        self.message = message


def dropins(main: str, seen: identity.Seen | None = None) -> tuple[list[str], dict[str, str]]:
    """The drop-ins in force, in name order (`*.yaml` and `*.yml`), and those overridden by one
    of the same name in a later directory (/etc beats /run beats /usr/lib): loser -> winner."""
    chosen: dict[str, str] = {}
    overridden: dict[str, str] = {}
    for directory in dropin_dirs(main):
        if seen is not None:  # before looking: a drop-in made meanwhile is a change
            seen.listings[directory] = identity.listing_of(directory)
        for path in sorted(glob.glob(os.path.join(glob.escape(directory), "*.yaml")) +
                           glob.glob(os.path.join(glob.escape(directory), "*.yml"))):
            name = os.path.basename(path)
            if name in chosen:
                overridden[chosen[name]] = path
            chosen[name] = path
    return [chosen[name] for name in sorted(chosen)], overridden


def policy_files(main: str, seen: identity.Seen | None = None) -> list[str]:
    """The main file, then the drop-ins in force, in name order."""
    return [main, *dropins(main, seen)[0]]


def read_text(path: str, seen: identity.Seen | None = None) -> str:
    """The file's text, or Unreadable saying why not and where; `seen` notes the text."""
    if seen is not None:
        seen.texts[path] = identity.UNKNOWN
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        if seen is not None:
            seen.texts[path] = identity.MISSING
        raise Unreadable(Place(path), "policy file not found; create it (`arches: {}` asks "
                                      "for no entries) or point --config at it") from None
    except OSError as e:
        raise Unreadable(Place(path), f"cannot open the policy file: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
            raise Unreadable(Place(path), f"the policy is {kind}, not a regular file; "
                                          "point it at a file")
        data = identity.read_upto(fd, MAX_BYTES)
    except OSError as e:
        raise Unreadable(Place(path), f"cannot read the policy file: {e.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_BYTES:
        raise Unreadable(Place(path), f"the policy file is larger than {MAX_BYTES} bytes (1 MiB), "
                                      "the most multiarchd reads; a policy is a few lines")
    decoded = decode(path, data)
    if seen is not None:
        seen.texts[path] = identity.text(decoded)
    return decoded


def decode(path: str, data: bytes) -> str:
    """The text of a policy file's bytes, or Unreadable at the first byte that is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        before = data[:e.start]
        line = before.count(b"\n") + 1
        column = len(before[before.rfind(b"\n") + 1:].decode("utf-8", "replace")) + 1
        raise Unreadable(Place(path, line, column), f"byte {data[e.start]:#04x} is not UTF-8; "
                                                    "save the file as UTF-8") from None


def _texts(main: str, only: str | None = None, seen: identity.Seen | None = None
           ) -> list[tuple[str, str | Unreadable]]:
    texts: list[tuple[str, str | Unreadable]] = []
    for path in [only] if only is not None else policy_files(main, seen):
        try:
            texts.append((path, read_text(path, seen)))
        except Unreadable as e:
            texts.append((path, e))
    return texts


def load_policy(main: str, catalog: Catalog, only: str | None = None,
                seen: identity.Seen | None = None) -> Policy:
    """Read and validate the policy (or only the one file `only`, judged in its role: a file in
    an `arches.d` directory as a drop-in, any other as a main file, which must say
    `arches:`)."""
    if only is not None and role(only) == MAIN_ROLE:
        return policy_from(_texts(main, only, seen), catalog, only)
    return policy_from(_texts(main, only, seen), catalog, main, whole=only is None)


MAIN_ROLE, DROP_IN_ROLE = "a main policy file", "a drop-in"


def role(path: str) -> str:
    """How a file given alone is judged: a drop-in when it sits in an `arches.d` directory."""
    return DROP_IN_ROLE if os.path.basename(os.path.dirname(os.path.abspath(path))) == \
        "arches.d" else MAIN_ROLE


class PolicyCache:
    """The last policy made, with the exact texts it was made from: a daemon reads the files at
    every run (a few small reads) and makes the policy again only when one changed, parsing
    again only the files whose text changed (their nodes are kept, by path and text)."""

    def __init__(self) -> None:
        self._key: tuple[object, ...] | None = None
        self._policy: Policy | None = None
        self._parsed: dict[tuple[str, str], Parsed] = {}

    def load(self, main: str, catalog: Catalog, seen: identity.Seen | None = None) -> Policy:
        texts = _texts(main, seen=seen)
        key = (main, id(catalog), *((path, text if isinstance(text, str) else
                                     (text.place, text.message)) for path, text in texts))
        if self._policy is None or key != self._key:
            # Only the files there are now: the nodes of texts replaced are let go.
            parsed = {(p, t): self._parsed[p, t] for p, t in texts
                      if isinstance(t, str) and (p, t) in self._parsed}
            self._policy, self._key = policy_from(texts, catalog, main, parsed=parsed), key
            self._parsed = parsed
        return self._policy


def _parse(text: str) -> Parsed:
    try:
        return parse(text)
    except YamlError as e:
        return e


def policy_from(texts: list[tuple[str, str | Unreadable]], catalog: Catalog, main: str,
                whole: bool = True, parsed: dict[tuple[str, str], Parsed] | None = None) -> Policy:
    """The policy the texts of these files (in merge order) make; `parsed` keeps each file's
    nodes by path and text (those missing are parsed and added)."""
    parsed = {} if parsed is None else parsed
    merger = Merger(catalog)
    for path, text in texts:
        if isinstance(text, Unreadable):
            merger.unreadable(text.place, text.message)
            continue
        if (path, text) not in parsed:
            parsed[path, text] = _parse(text)
        merger.add_file(path, parsed[path, text], main=path == main)
    return merger.result(tuple(path for path, _ in texts), whole)
