"""What the service watches, computed from the configuration and the last run: the policy
directory (and its parent, for the directory itself being replaced), the binfmt_misc table, and
the directories of every interpreter in use or that may appear (for one that does not exist
yet, its nearest existing parent, for the next component). The inotify adapter keeps the
kernel's watches equal to this set; a watch names which directory it is (identity.py's note),
so a directory that is deleted and made again, or renamed over, is watched again."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from .. import identity
from ..core.result import Result
from ..host.facts import candidate_paths
from ..model.catalog import Catalog
from ..model.host import FileId
from ..model.options import Config
from ..policy.places import dropin_dirs


@dataclass(frozen=True)
class Watch:
    """Watch `directory`; `names` limits the trigger to those entries in it (None: any)."""

    directory: str
    names: frozenset[str] | None = None
    recursive: bool = False
    file: FileId = ""  # which directory that path names now

    def wants(self, path: str) -> bool:
        if self.names is None:
            return True
        return os.path.basename(path) in self.names or path == self.directory


def policy_dirs(config: Config) -> list[str]:
    """The main file's directory and every drop-in directory."""
    main = os.path.abspath(config.policy_path)
    return [os.path.dirname(main), *dropin_dirs(main)]


def is_policy(path: str, config: Config) -> bool:
    """Whether `path` is in the policy's directories (or is one of them)."""
    return any(path == d or path.startswith(d + os.sep) for d in policy_dirs(config))


def followed(watches: Iterable[Watch]) -> frozenset[str]:
    """The paths watched by name (interpreters, the places where one may appear, the policy's
    directories) and the directories that hold them (moved away or deleted whole); as opposed
    to whatever else is in a directory watched as a whole."""
    named = [w for w in watches if w.names is not None]
    return frozenset([*(w.directory for w in named),
                      *(os.path.join(w.directory, name) for w in named for name in w.names or ())])


Wanted = dict[tuple[str, bool], set[str] | None]  # (directory, recursive) -> names, or all


def _watch_name(wanted: Wanted, path: str, known: dict[str, tuple[str, str | None]]) -> None:
    """Watch for `path` in its directory; for a directory that does not exist yet, in the
    nearest existing one above it, for the next name down."""
    directory, name = os.path.dirname(path), os.path.basename(path)
    above, below = _existing(directory, known)
    if below is not None:
        directory, name = above, below
    key = (directory, False)
    if key not in wanted or wanted[key] is not None:  # None already watches every name
        wanted[key] = (wanted.get(key) or set()) | {name}


def _existing(directory: str, known: dict[str, tuple[str, str | None]]) -> tuple[str, str | None]:
    """The nearest existing directory at or above `directory`, and the name below it on the
    way there (None: `directory` exists). `known`: each directory's answer in this
    computation (some 250 candidate paths share a few dozen directories)."""
    if directory not in known:
        if directory == "/" or os.path.isdir(directory):
            known[directory] = (directory, None)
        else:
            above, below = _existing(os.path.dirname(directory), known)
            known[directory] = (above, below if below is not None else
                                os.path.basename(directory))
    return known[directory]


def watches_for(config: Config, result: Result | None, catalog: Catalog) -> set[Watch]:
    wanted: Wanted = {(config.binfmt_dir, False): None}
    known: dict[str, tuple[str, str | None]] = {}
    for pdir in policy_dirs(config):
        # The directory, not the file: editors and config tools replace files by rename; and
        # its parent for the directory itself (deleted and made again, renamed over, or made
        # later, as /run/multiarch/arches.d is by a VM tool).
        _watch_name(wanted, pdir, known)
        if os.path.isdir(pdir):
            wanted[(pdir, True)] = None
    # Interpreters in use (a package upgrade replaces them) and every place an emulator may
    # appear (installing one makes its architectures available).
    policy = (result.enforced or result.policy) if result else None
    paths = set(candidate_paths(policy, catalog))
    for want in result.desired.wants if result and result.desired else ():
        if want.registration is not None:
            paths.add(os.path.realpath(want.registration.interpreter))
    for path in paths:
        _watch_name(wanted, path, known)
    watches = set()
    for (directory, recursive), only in wanted.items():
        file = identity.of_path(directory)
        if file not in (identity.MISSING, identity.UNKNOWN):
            watches.add(Watch(directory, frozenset(only) if only is not None else None,
                              recursive, file))
    return watches
