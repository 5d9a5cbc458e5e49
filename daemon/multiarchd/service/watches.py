"""What the service watches, computed from the configuration and the last run: the policy
directory, the binfmt_misc table, and the directories of every interpreter in use or that may
appear. The inotify adapter keeps the kernel's watches equal to this set."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..host.facts import candidate_paths
from ..model.catalog import Catalog
from ..reconciler.run import Config, Result


@dataclass(frozen=True)
class Watch:
    """Watch `directory`; `names` limits the trigger to those entries in it (None: any)."""

    directory: str
    names: frozenset[str] | None = None
    recursive: bool = False

    def wants(self, path: str) -> bool:
        if self.names is None:
            return True
        return os.path.basename(path) in self.names or path == self.directory


def policy_dir(config: Config) -> str:
    return os.path.dirname(os.path.abspath(config.policy_path))


def watches_for(config: Config, result: Result | None, catalog: Catalog) -> set[Watch]:
    pdir = policy_dir(config)
    watches = {Watch(config.binfmt_dir)}
    if os.path.isdir(pdir):
        # The directory, not the file: editors and config tools replace files by rename.
        watches.add(Watch(pdir, recursive=True))
    else:
        watches.add(Watch(os.path.dirname(pdir), frozenset({os.path.basename(pdir)})))
    # Interpreters in use (a package upgrade replaces them) and every place an emulator may
    # appear (installing one makes its architectures available).
    paths = set(candidate_paths(result.policy if result else None, catalog))
    for want in result.desired.wants if result and result.desired else ():
        if want.registration is not None:
            paths.add(os.path.realpath(want.registration.interpreter))
    interpreters: dict[str, set[str]] = {}
    for path in paths:
        interpreters.setdefault(os.path.dirname(path), set()).add(os.path.basename(path))
    watches.update(Watch(d, frozenset(names)) for d, names in interpreters.items()
                   if os.path.isdir(d))
    return watches
