"""The rootless recipe says what it needs: wherever the docs give it, its `podman run` works as
written on a Debian 12 machine (`--network none`: rootless podman's network is slirp4netns,
which Debian 12's podman only recommends) and the words next to it name slirp4netns and the
user's subordinate ids (without them podman cannot make the container's user namespace)."""

from __future__ import annotations

import re

from tests.support.paths import REPO

BLOCK = re.compile(r"```sh\n(.*?)```(?=(.{0,1200}))", re.S)  # (the text after: not consumed)


def rootless_recipes() -> list[tuple[str, str, str]]:
    """(file, the recipe's shell block, the text after it) for each block that fills a private
    table from podman unshare."""
    found = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("**/*.md"))]:
        for block, after in BLOCK.findall(path.read_text()):
            if "podman unshare" in block and "--private" in block:
                found.append((path.name, block, after))
    return found


def test_the_rootless_recipe_states_its_network_and_subordinate_ids() -> None:
    recipes = rootless_recipes()
    assert recipes, "no rootless recipe (podman unshare ... --private) in README.md or docs/"
    for name, block, after in recipes:
        runs = [line for line in block.splitlines() if line.lstrip().startswith("podman run")]
        assert runs and all("--network none" in r for r in runs), (name, block)
        prose = " ".join(after.split())
        assert "slirp4netns" in prose and "/etc/subuid" in prose, (name, after)
