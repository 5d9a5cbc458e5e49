"""Where the policy lives: the main file's drop-in directories, and which files in them are the
policy's. Light (no parser), for the watcher and the trigger as much as for the reader."""

from __future__ import annotations

import os

_LAYERED = os.path.join("etc", "multiarch", "arches.yaml")


def dropin_dirs(main: str) -> list[str]:
    """Where drop-ins are read from, lowest precedence first. For the main file at
    ROOT/etc/multiarch/arches.yaml (/ on a system), as binfmt.d does: ROOT/usr/lib (what packages
    ship), ROOT/run (what is made at run time), ROOT/etc (the admin's); else arches.d beside it."""
    if main == "/" + _LAYERED or main.endswith(os.sep + _LAYERED):
        root = main[:-len(_LAYERED)]
        return [f"{root}usr/lib/multiarch/arches.d", f"{root}run/multiarch/arches.d",
                f"{root}etc/multiarch/arches.d"]
    return [os.path.join(os.path.dirname(main), "arches.d")]


def read_as_policy(path: str, main: str) -> bool:
    """Whether a file at `path` is one the policy is read from (the main file, or a drop-in's
    name in a drop-in directory), as opposed to an editor's swap file or backup beside it."""
    name = os.path.basename(path)
    return path == os.path.abspath(main) or (
        os.path.dirname(path) in dropin_dirs(os.path.abspath(main)) and
        name.endswith((".yaml", ".yml")) and not name.startswith("."))
