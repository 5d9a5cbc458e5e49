"""Node labels from what this node proved, as a feature file of node-feature-discovery's local
source (one `name=value` a line): a scheduler then places a pod that needs amd64 on a node that
emulates it, beside the native `kubernetes.io/arch`. Pure.

`multiarch.feature.node.kubernetes.io/<arch>` is `true` only for an architecture whose probe
program ran through its entry at this node's last run (state `verified`); any other state is
the value (`active` not yet proved, `held`, `error`, `disabled`, `native`...; one the policy
does not name has no label), so that a
selector on `true` never picks a node that has not run the architecture. Architectures are
named as Kubernetes (GOARCH) names them, the names of `kubernetes.io/arch`. The prefix is a
sub-namespace of NFD's own, which nfd-master always allows (`denyLabelNs` cannot deny it)."""

from __future__ import annotations

import re

from .report import Report, State

PREFIX = "multiarch.feature.node.kubernetes.io/"
VERIFIED = "true"
MAX_NAME = MAX_VALUE = 63  # Kubernetes: a label's name (after the prefix) and its value

# The catalog's names as GOARCH (and kubernetes.io/arch) spells them; others are kept as they
# are (mips, ppc64, riscv32... are GOARCH names too, or at least label names).
GOARCH = {
    "x86_64": "amd64", "aarch64": "arm64", "i386": "386", "mips64el": "mips64le",
    "mipsel": "mipsle", "loongarch64": "loong64",
}

_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_.-]+")
_ENDS = "-_."


def goarch(arch: str) -> str:
    return GOARCH.get(arch, arch)


def label_value(text: str, limit: int = MAX_VALUE) -> str:
    """`text` in a label value's characters (letters, digits, '-', '_', '.', beginning and
    ending with a letter or digit, at most 63): `max,pauth-impdef=on` is `max_pauth-impdef_on`."""
    return _NOT_ALLOWED.sub("_", text.strip(_ENDS))[:limit].strip(_ENDS)


def labels(report: Report, host_table: bool) -> dict[str, str]:
    """Every label, by name (with its prefix), in the order a reader of the file meets them."""
    out = {f"{PREFIX}table": "host" if host_table else "private"}
    # An architecture the policy does not name has nothing to say (and would be some 30
    # labels on every node): it is left out, as custom entries are (no kubernetes.io/arch).
    for status in sorted((s for s in report.statuses
                          if s.kind == "arch" and s.state is not State.UNMANAGED),
                         key=lambda s: goarch(s.name)):
        name = label_value(goarch(status.name), MAX_NAME - len(".cpu"))
        if not name:
            continue
        out[PREFIX + name] = VERIFIED if status.state is State.VERIFIED else status.state.value
        cpu = label_value(status.cpu)
        if cpu and status.state is not State.NATIVE:
            out[f"{PREFIX}{name}.cpu"] = cpu
    return out


def feature_file(found: dict[str, str]) -> str:
    """The file NFD's local source reads: a comment, then `name=value` a line."""
    lines = ["# multiarchd: what this node proved it runs by emulation (see arches.yaml(5))"]
    lines += [f"{name}={value}" for name, value in found.items()]
    return "\n".join(lines) + "\n"
