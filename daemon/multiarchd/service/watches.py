"""What the service watches, computed from the configuration and the last run: the policy
directory (and its parent, for the directory itself being replaced), the binfmt_misc table, and
the directories of every interpreter in use or that may appear (for one that does not exist
yet, its nearest existing parent, for the next component). The inotify adapter keeps the
kernel's watches equal to this set; a watch names its directory's inode, so a directory that is
deleted and made again, or renamed over, is watched again."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..host.facts import candidate_paths
from ..model.catalog import Catalog
from ..policy.files import dropin_dirs
from ..reconciler.run import Config, Result


@dataclass(frozen=True)
class Watch:
    """Watch `directory`; `names` limits the trigger to those entries in it (None: any)."""

    directory: str
    names: frozenset[str] | None = None
    recursive: bool = False
    inode: tuple[int, int] = (0, 0)  # which directory that path is now

    def wants(self, path: str) -> bool:
        if self.names is None:
            return True
        return os.path.basename(path) in self.names or path == self.directory


def policy_dirs(config: Config) -> list[str]:
    """The main file's directory and every drop-in directory."""
    main = os.path.abspath(config.policy_path)
    return [os.path.dirname(main), *dropin_dirs(main)]


def is_policy(path: str, config: Config) -> bool:
    return any(path == d or path.startswith(d + os.sep) for d in policy_dirs(config))


def _existing(path: str, names: set[str]) -> tuple[str, set[str]]:
    """The nearest existing directory at or above `path`, and what to watch for in it."""
    while not os.path.isdir(path) and path != "/":
        names = {os.path.basename(path)}
        path = os.path.dirname(path)
    return path, names


def watches_for(config: Config, result: Result | None, catalog: Catalog) -> set[Watch]:
    wanted: dict[tuple[str, bool], set[str] | None] = {(config.binfmt_dir, False): None}
    for pdir in policy_dirs(config):
        # The directory, not the file: editors and config tools replace files by rename; and
        # its parent for the directory itself (deleted and made again, renamed over, or made
        # later, as /run/multiarch/arches.d is by a VM tool).
        parent, names = _existing(os.path.dirname(pdir), {os.path.basename(pdir)})
        key = (parent, False)
        if not (key in wanted and wanted[key] is None):
            wanted[key] = (wanted.get(key) or set()) | names
        if os.path.isdir(pdir):
            wanted[(pdir, True)] = None
    # Interpreters in use (a package upgrade replaces them) and every place an emulator may
    # appear (installing one makes its architectures available).
    policy = result.enforced or result.policy if result else None
    paths = set(candidate_paths(policy, catalog))
    for want in result.desired.wants if result and result.desired else ():
        if want.registration is not None:
            paths.add(os.path.realpath(want.registration.interpreter))
    for path in paths:
        directory, names = _existing(os.path.dirname(path), {os.path.basename(path)})
        key = (directory, False)
        if key in wanted and wanted[key] is None:
            continue
        wanted[key] = (wanted.get(key) or set()) | names
    watches = set()
    for (directory, recursive), only in wanted.items():
        try:
            st = os.stat(directory)
        except OSError:
            continue
        watches.add(Watch(directory, frozenset(only) if only is not None else None,
                          recursive, (st.st_dev, st.st_ino)))
    return watches
