"""The policy files: which ones there are, reading them and parsing their YAML, and handing the
documents to validate.py."""

from __future__ import annotations

import glob
import os

from ..model.catalog import Catalog
from ..model.policy import Policy
from ..model.problems import Place
from .nodes import YamlError
from .validate import Merger
from .yamlnodes import parse


def policy_files(main: str) -> list[str]:
    """The main file, then `arches.d/*.yaml` beside it in name order."""
    dropins = sorted(glob.glob(os.path.join(os.path.dirname(main), "arches.d", "*.yaml")))
    return [main, *dropins]


def load_policy(main: str, catalog: Catalog, only: str | None = None) -> Policy:
    """Read and validate the policy (or only the one file `only`)."""
    files = [only] if only is not None else policy_files(main)
    merger = Merger(catalog)
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
        try:
            root = parse(text)
        except YamlError as e:
            merger.add_file(path, e)
            continue
        merger.add_file(path, root)
    return merger.result(tuple(files))
