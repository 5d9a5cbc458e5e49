"""Node labels for node-feature-discovery (`node_features:` in the policy): what the file says
is what `multiarchctl status` says, across a verify, a hold, a removed emulator and a disable;
every label is one Kubernetes accepts; a reader never sees half a file."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from multiarchd.catalog import load_catalog
from multiarchd.core.node_labels import PREFIX, feature_file, goarch, labels
from multiarchd.core.report import Report, State, Status
from multiarchd.core.result import Result
from multiarchd.core.plan import Plan
from multiarchd.model.policy import Policy
from multiarchd.policy.files import load_policy
from multiarchd.service.node_features import NodeFeatures

from tests.support.binfmt import PrivateBinfmt
from tests.support.bus import PrivateBus
from tests.support.commands import DaemonStarter, PolicyWriter
from tests.support.fakes import FakeLog
from tests.support.fuzz import examples
from tests.support.inotify import wait_for_file
from tests.support.paths import BIN, DEFAULT_POLICY, REPO

# Kubernetes' label syntax, from its documentation ("Labels and Selectors", "Object Names and
# IDs"): a key is an optional prefix (a DNS subdomain: lower-case RFC 1123 labels joined by
# dots, at most 253 characters) and '/', then a name of at most 63 characters, alphanumeric at
# both ends, '-', '_' and '.' between; a value is empty or the same as a name.
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
PREFIX_RULE = re.compile(rf"{_DNS_LABEL}(\.{_DNS_LABEL})*")
NAME_RULE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
VALUE_RULE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
GOARCH_NAMES = {"amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64", "mips64le",
                "loong64"}


def valid_label(key: str, value: str) -> bool:
    prefix, _, name = key.rpartition("/")
    return (not prefix or (len(prefix) <= 253 and bool(PREFIX_RULE.fullmatch(prefix)))) and \
        len(name) <= 63 and bool(NAME_RULE.fullmatch(name)) and \
        len(value) <= 63 and bool(VALUE_RULE.fullmatch(value))


def read_labels(text: str) -> dict[str, str]:
    """The file as NFD's local source reads it: `name[=value]` a line, '#' a comment."""
    found = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            found[name] = value if "=" in line else "true"
    return found


def _status(name: str, state: State, cpu: str = "") -> Status:
    return Status(name, "arch", state, f"multiarch-{name}", "/usr/bin/qemu", "qemu", "FP", "",
                  True, cpu)


ARCHES = sorted(load_catalog().arches)


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(st.tuples(st.sampled_from(ARCHES) | st.text(max_size=80),
                          st.sampled_from(list(State)), st.text(max_size=200)), max_size=12),
       st.booleans())
def test_every_label_is_a_kubernetes_label(
        arches: list[tuple[str, State, str]], host: bool) -> None:
    report = Report(tuple(_status(n, s, c) for n, s, c in arches), (), ())
    found = labels(report, host)
    for key, value in found.items():
        assert valid_label(key, value), (key, value)
    assert read_labels(feature_file(found)) == found  # as NFD reads the file back


@pytest.mark.fast
def test_the_labels_name_arches_as_kubernetes_does() -> None:
    catalog = load_catalog()
    names = {goarch(a) for a in catalog.arches}
    assert GOARCH_NAMES <= names, GOARCH_NAMES - names
    report = Report((_status("x86_64", State.VERIFIED), _status("aarch64", State.HELD,
                                                                  "max,pauth-impdef=on"),
                     _status("i386", State.NATIVE), _status("sparc64", State.UNMANAGED)), (), ())
    assert labels(report, True) == {
        f"{PREFIX}table": "host", f"{PREFIX}386": "native", f"{PREFIX}amd64": "true",
        f"{PREFIX}arm64": "held", f"{PREFIX}arm64.cpu": "max_pauth-impdef_on"}


@pytest.mark.fast
def test_the_file_is_written_only_when_its_labels_change() -> None:
    written: list[tuple[str, str]] = []
    removed: list[str] = []
    nf = NodeFeatures(lambda p, t: written.append((p, t)), removed.append, FakeLog())

    def result(path: str | None, state: State) -> Result:
        return Result(Policy(files=(), node_features=path), None, Plan(()),
                      Report((_status("s390x", state),), (), ()))
    nf.publish(result("/a", State.ACTIVE), True)
    nf.publish(result("/a", State.ACTIVE), True)
    assert len(written) == 1
    nf.publish(result("/a", State.VERIFIED), True)
    assert len(written) == 2 and f"{PREFIX}s390x=true\n" in written[-1][1]
    nf.publish(result("/b", State.VERIFIED), True)  # moved: the old file goes
    assert removed == ["/a"] and written[-1][0] == "/b"
    nf.publish(result(None, State.VERIFIED), True)  # off: no file left promising
    assert removed == ["/a", "/b"] and len(written) == 3

    log = FakeLog()

    def refuse(path: str, text: str) -> None:
        raise FileNotFoundError(2, "No such file or directory", path)
    failing = NodeFeatures(refuse, removed.append, log)
    for state in (State.ACTIVE, State.VERIFIED, State.VERIFIED):  # tried at each change
        failing.publish(result("/gone/multiarchd", state), True)
    assert log.texts() == ["cannot write the node feature file: [Errno 2] No such file or "
                           "directory: '/gone/multiarchd'; will try again after the next run"]


@pytest.mark.fast
def test_the_key_is_off_in_the_shipped_policy_and_checked(tmp_path: Path) -> None:
    assert load_policy(str(DEFAULT_POLICY), load_catalog()).node_features is None
    for bad, said in (("features", "is not an absolute file path"),
                      ("/etc/kubernetes/node-feature-discovery/features.d/.multiarchd",
                       "skips files whose name starts with '.'")):
        path = tmp_path / "arches.yaml"
        path.write_text(f"arches: {{s390x: {{}}}}\nnode_features: {bad}\n")
        problems = load_policy(str(path), load_catalog()).problems
        assert [str(p) for p in problems if said in str(p)], problems
    path.write_text("arches: {s390x: {}}\nnode_features: /etc/x/features.d/multiarchd\n")
    assert load_policy(str(path), load_catalog()).node_features == \
        "/etc/x/features.d/multiarchd"


# -- the daemon, on a private table, with its probes really run --------------------------------
QEMU = Path("/usr/bin/qemu-s390x-static")


def _status_labels(bus: PrivateBus) -> dict[str, str]:
    """What `multiarchctl status --json` says, in the file's words."""
    r = subprocess.run([str(BIN / "multiarchctl"), "status", "--json"], capture_output=True,
                       text=True, env=dict(os.environ, **bus.env), timeout=60)
    data = json.loads(r.stdout)
    report = Report(tuple(_status(a["name"], State(a["state"]), a["cpu"])
                          for a in data["architectures"] if a["kind"] == "arch"), (), ())
    return labels(report, host_table=False)


def _matches(bus: PrivateBus, want: dict[str, str]) -> Callable[[str], bool]:
    def done(text: str) -> bool:
        found = read_labels(text)
        return all(found.get(k) == v for k, v in want.items()) and \
            found == _status_labels(bus)
    return done


def test_the_file_says_what_status_says_through_verify_hold_removal_and_disable(
        binfmt: PrivateBinfmt, policy: PolicyWriter, bus: PrivateBus,
        start_daemon: DaemonStarter, trusted_dir: Path, tmp_path: Path) -> None:
    features = tmp_path / "features.d"
    features.mkdir()
    path = features / "multiarchd"
    emu = trusted_dir / "emu" / "qemu-s390x-static"
    emu.parent.mkdir()
    shutil.copy(QEMU, emu)
    text = ("arches:\n  s390x: {interpreter: %s, hold: %s}\n  aarch64: {}\n"
            f"node_features: {path}\n")
    d = start_daemon(policy(text % (emu, "true")), binfmt, inside=True, bus=bus)
    s390x, arm64 = f"{PREFIX}s390x", f"{PREFIX}arm64"
    got = read_labels(wait_for_file(str(path), _matches(bus, {s390x: "true", arm64: "true"})))
    assert got[f"{PREFIX}table"] == "private" and got[f"{PREFIX}arm64.cpu"] == \
        "max_pauth-impdef_on"
    assert path.stat().st_mode & 0o777 == 0o644 and os.listdir(features) == ["multiarchd"]

    # A new file under hold: true is not taken: s390x is no longer proved.
    since = d.mark()
    staged = emu.with_name(emu.name + ".dpkg-new")
    shutil.copy(QEMU, staged)
    os.replace(staged, emu)
    d.wait_log(r"multiarch-s390x held: hold: true", since)
    wait_for_file(str(path), _matches(bus, {s390x: "held", arm64: "true"}))

    # Its emulator removed: whatever status says, the file says, and not `true`.
    policy(text % (emu, "false"))
    wait_for_file(str(path), _matches(bus, {s390x: "true"}))
    emu.unlink()
    got = read_labels(wait_for_file(str(path), lambda t: read_labels(t).get(s390x) != "true"))
    assert got[s390x] != "true"
    wait_for_file(str(path), _matches(bus, {}))

    # Disabled by the policy.
    policy(f"arches:\n  s390x: {{enabled: false}}\n  aarch64: {{}}\nnode_features: {path}\n")
    wait_for_file(str(path), _matches(bus, {s390x: "disabled", arm64: "true"}))


def test_a_reader_never_sees_half_a_file(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter,
        tmp_path: Path) -> None:
    """A thread reads the file in a loop while the daemon rewrites it: every read is a whole
    file (every label there, the last line ended), none a part of one."""
    features = tmp_path / "features.d"
    features.mkdir()
    path = features / "multiarchd"
    text = "arches:\n  s390x: {%s}\n  aarch64: {}\n  arm: {}\n  riscv64: {}\n" \
        f"node_features: {path}\n"
    d = start_daemon(policy(text % ""), binfmt)
    whole = set(read_labels(wait_for_file(str(path), lambda t: bool(t))))
    assert f"{PREFIX}riscv64" in whole
    stop = threading.Event()
    seen, bad = [0], []

    def reader() -> None:
        while not stop.is_set():
            got = path.read_text()
            seen[0] += 1
            if not got.endswith("\n") or set(read_labels(got)) != whole:
                bad.append(got)
    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(10):  # s390x off, on, off...: each time a new file
            off = i % 2 == 0
            policy(text % ("enabled: false" if off else ""))

            def done(text: str, off: bool = off) -> bool:
                return (read_labels(text).get(f"{PREFIX}s390x") == "disabled") is off
            wait_for_file(str(path), done)
    finally:
        stop.set()
        thread.join()
    assert d.stop() == 0
    assert seen[0] > 10 and not bad, (seen, bad[:1])
    assert os.listdir(features) == ["multiarchd"]  # no temporary file left


def test_the_daemonsets_readiness_check_holds_while_the_labels_do(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter,
        trusted_dir: Path, tmp_path: Path) -> None:
    """The manifest's own check, run in the table's namespace as in the pod: ready while each
    architecture labelled true runs, not once one of them lost its emulator."""
    docs = yaml.safe_load_all((REPO / "packaging/kubernetes/multiarchd.yaml").read_text())
    [daemonset] = [d for d in docs if d["kind"] == "DaemonSet"]
    check = daemonset["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["exec"]
    path = tmp_path / "multiarchd"
    emu = trusted_dir / "emu" / "qemu-s390x-static"
    emu.parent.mkdir()
    shutil.copy(QEMU, emu)
    config = policy(f"arches:\n  s390x: {{interpreter: {emu}}}\nnode_features: {path}\n")
    start_daemon(config, binfmt, inside=True)
    [sh, dash_c, script] = check["command"]
    # What the daemon keeps (which file the kernel opened) where the pod's commands find it.
    script = f"export RUNTIME_DIRECTORY={tmp_path}/run CACHE_DIRECTORY={tmp_path}/cache; " + \
        script.replace("multiarchctl ", f"{BIN}/multiarchctl ").replace(
            "--local", f"--local --config {config}")

    def ready() -> int:
        return binfmt.exec(sh, dash_c, script).returncode
    wait_for_file(str(path), lambda t: read_labels(t).get(f"{PREFIX}s390x") == "true")
    assert ready() == 0
    emu.unlink()
    wait_for_file(str(path), lambda t: read_labels(t).get(f"{PREFIX}s390x") not in (None, "true"))
    assert ready() != 0
