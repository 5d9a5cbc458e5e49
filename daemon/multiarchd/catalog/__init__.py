"""The catalog of architectures and emulators: `catalog.toml` beside this module is the one
table to edit; load_catalog() reads it once per process."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources
from typing import Any

from ..model.catalog import Arch, Catalog, Emulator
from ..model.flags import Flags


def _star(value: Any) -> frozenset[str] | None:
    return None if value == "*" else frozenset(value)


@cache
def load_catalog() -> Catalog:
    raw = tomllib.loads(resources.files(__package__).joinpath("catalog.toml").read_text())
    arches = {
        name: Arch(
            name=name,
            bits=row["bits"],
            endian=row["endian"],
            machine=row["machine"],
            family=row["family"],
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
        )
        for name, row in raw["emulator"].items()
    }
    aliases = {name: name for name in arches}
    for arch in arches.values():
        aliases.update(dict.fromkeys(arch.aliases, arch.name))
    return Catalog(arches=arches, emulators=emulators, aliases=aliases)
