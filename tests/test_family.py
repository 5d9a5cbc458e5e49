"""What a kernel runs by itself, seen, not supposed: Debian's own kernel of each architecture
that has one, booted bare under qemu-system-* (tests/support/kernels.py) with every catalog
architecture's probe, binfmt_misc not even mounted. What ran there is what the catalog's `runs`
lists must say, since they decide what is native where multiarchd cannot find out by running
its probes (before Linux 6.7). A few seconds of TCG per boot."""

from __future__ import annotations

import pytest

from multiarchd.catalog import load_catalog
from multiarchd.host.facts import host_arch
from tests.support import kernels

CATALOG = load_catalog()


@pytest.mark.vm
@pytest.mark.parametrize("machine", kernels.MACHINES, ids=lambda m: m.name)
def test_a_booted_kernel_runs_what_the_catalog_says(machine: kernels.Machine) -> None:
    boot = kernels.boot(machine)
    assert host_arch(CATALOG, boot.machine) == machine.arch, boot.machine
    said = {a for a in CATALOG.arches if CATALOG.host_runs(machine.arch, a)}
    if machine.name == "aarch64-a64fx":
        # No AArch32 at EL0: the one claim the machine itself corrects (host/native.cannot_run;
        # tests/test_arm64_machine.py boots this CPU with multiarchd installed).
        said -= {"arm"}
    assert boot.ran == said, f"{machine.name}: ran {sorted(boot.ran)}, catalog {sorted(said)}"


def test_every_claim_of_the_catalog_is_booted() -> None:
    """A `runs` list is added with a Debian kernel that shows it, or not at all."""
    claimed = {name for name, arch in CATALOG.arches.items() if arch.runs}
    assert claimed <= {m.arch for m in kernels.MACHINES}
