"""The catalog of architectures and emulators: `catalog.toml` beside this module is the one
table to edit; load_catalog() reads it once per process."""

from __future__ import annotations

import os
import tomllib
from functools import cache
from typing import Any

from ..model.catalog import Arch, Catalog, Emulator
from ..model.flags import Flags


def _star(value: Any) -> frozenset[str] | None:
    return None if value == "*" else frozenset(value)


@cache
def load_catalog() -> Catalog:
    # Beside this module, read plainly: importlib.resources costs more to import than this
    # whole function takes, on the boot path.
    with open(os.path.join(os.path.dirname(__file__), "catalog.toml"), "rb") as f:
        raw = tomllib.load(f)
    arches = {
        name: Arch(
            name=name,
            bits=row["bits"],
            endian=row["endian"],
            machine=row["machine"],
            runs=tuple(row.get("runs", ())),
            aliases=tuple(row.get("aliases", ())),
            magic=bytes.fromhex(row["magic"]),
            mask=bytes.fromhex(row["mask"]),
        )
        for name, row in raw["arch"].items()
    }
    emulators = {
        name: Emulator(
            name=name,
            arches=_star(row["arches"]),
            hosts=_star(row["hosts"]),
            paths=tuple(row["paths"]),
            flags=Flags.parse(row["flags"]),
            cpu=dict(row.get("cpu", {})),
        )
        for name, row in raw["emulator"].items()
    }
    aliases = {name: name for name in arches}
    for arch in arches.values():
        aliases.update(dict.fromkeys(arch.aliases, arch.name))
    return Catalog(arches=arches, emulators=emulators, aliases=aliases)
