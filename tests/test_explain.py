"""`multiarchctl explain FILE`: which entry of this table runs a file, with what, or why nothing
does and the one fix, checked against the kernel itself: each file is run in the same private
table, and it runs exactly when explain says it does."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from multiarchd.catalog import load_catalog
from multiarchd.core.explain import (HEADER_SIZE, Explanation, Outcome, Program, Reason, Where,
                                     explain as decide)
from multiarchd.model.flags import Flags
from multiarchd.model.observed import Entry, Observed
from multiarchd.model.registration import Registration
from tests.support.binfmt import PrivateBinfmt
from tests.support.bus import PrivateBus
from tests.support.commands import DaemonStarter, PolicyWriter, run
from tests.support.paths import BUSYBOX_CACHE, DEFAULT_POLICY

AARCH64_MAGIC = r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00"
AARCH64_MASK = r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"


def explain(binfmt: PrivateBinfmt, file: str | Path, *extra: str,
            config: Path = DEFAULT_POLICY) -> tuple[dict[str, Any], int]:
    r = run("multiarchctl", "explain", "--json", str(file), *extra, binfmt=binfmt,
            config=config)
    assert r.returncode in (0, 1), r.stderr + r.stdout
    return json.loads(r.stdout), r.returncode


def kernel_runs(binfmt: PrivateBinfmt, *argv: str | Path) -> bool:
    """Whether execve of argv runs in the private table (a failed exec is nsenter's 126/127)."""
    r = binfmt.exec(*[str(a) for a in argv], "true")
    return r.returncode == 0


def apply(binfmt: PrivateBinfmt, config: Path = DEFAULT_POLICY) -> None:
    r = run("multiarchctl", "apply", "--local", binfmt=binfmt, config=config)
    assert r.returncode in (0, 1), r.stderr


def test_foreign_busyboxes_name_the_entry_and_interpreter_the_kernel_uses(
        binfmt: PrivateBinfmt, busybox: dict[str, Path]) -> None:
    apply(binfmt)
    for debian, path in busybox.items():
        data, code = explain(binfmt, path)
        assert (code, data["outcome"], data["runs"]) == (0, "entry", True), data
        arch = data["arch"]
        assert data["entry"] == f"multiarch-{arch}" and data["format"].startswith(f"ELF {arch}")
        # (QEMU's own file, or multiarchd's image of it that carries the CPU model)
        assert data["emulator"] == "qemu" and (f"qemu-{arch}" in data["interpreter"]
                                               or data["cpu"]), data
        assert data["matches"][0]["entry"] == data["entry"]
        assert kernel_runs(binfmt, path), debian
    aarch64, _ = explain(binfmt, busybox["arm64"])
    assert aarch64["cpu"] == "max,pauth-impdef=on"  # the shipped policy's model
    text = run("multiarchctl", "explain", str(busybox["arm64"]), binfmt=binfmt,
               config=DEFAULT_POLICY).stdout
    assert "runs: yes, through entry multiarch-aarch64" in text
    assert "CPU model max,pauth-impdef=on" in text and "table: a private one" in text, text


def test_a_native_program_and_a_script_run_without_any_entry(binfmt: PrivateBinfmt,
                                                              tmp_path: Path) -> None:
    apply(binfmt)
    data, code = explain(binfmt, "/bin/true")
    assert (code, data["outcome"], data["entry"], data["matches"]) == (0, "native", None, [])
    i386, _ = explain(binfmt, BUSYBOX_CACHE / "i386" / "bin" / "busybox")
    assert (i386["arch"], i386["outcome"]) == ("i386", "native")  # x86_64 kernels run it
    script = tmp_path / "hello"
    script.write_text("#!/bin/sh -e\necho hi\n")
    script.chmod(0o755)
    data, code = explain(binfmt, script)
    assert (code, data["outcome"], data["interpreter"]) == (0, "script", "/bin/sh")
    assert [t["outcome"] for t in data["then"]] == ["native"]  # /bin/sh itself
    assert kernel_runs(binfmt, script) and kernel_runs(binfmt, "/bin/true")


def test_not_executable_and_unknown_formats_fail_as_the_kernel_says(
        binfmt: PrivateBinfmt, tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x00MYF" + bytes(100))
    junk.chmod(0o755)
    data, code = explain(binfmt, junk)
    assert (code, data["outcome"], data["reason"]) == (1, "fails", "unknown-format")
    assert "custom:" in data["fix"]
    assert not kernel_runs(binfmt, junk)
    junk.chmod(0o644)
    data, _ = explain(binfmt, junk)
    assert (data["reason"], data["fix"]) == ("not-executable", f"chmod +x {junk}")


@pytest.mark.parametrize(("text", "reason", "fix"), [
    ("arches:\n  aarch64: {enabled: false}\n", "disabled", "enabled: true"),
    ("arches:\n  s390x: {}\n", "not-in-policy", "add `aarch64: {}` under arches"),
    ("defaults:\n  emulators: [rosetta]\narches:\n  aarch64: {}\n", "missing-emulator",
     "apt-get install qemu-user-static"),
])
def test_each_reason_nothing_runs_a_foreign_program(
        binfmt: PrivateBinfmt, busybox: dict[str, Path], policy: PolicyWriter,
        text: str, reason: str, fix: str) -> None:
    config = policy(text)
    apply(binfmt, config)
    data, code = explain(binfmt, busybox["arm64"], config=config)
    assert (code, data["outcome"], data["reason"]) == (1, "fails", reason), data
    assert fix in data["fix"] and "ENOEXEC" in data["message"]
    assert not kernel_runs(binfmt, busybox["arm64"])


def test_a_private_table_without_the_entry_says_apply_private(
        binfmt: PrivateBinfmt, busybox: dict[str, Path]) -> None:
    data, code = explain(binfmt, busybox["s390x"])
    assert (code, data["reason"], data["fix"]) == (1, "private-table",
                                                   "multiarchctl apply --private")
    assert "a private one" in data["message"]
    assert not kernel_runs(binfmt, busybox["s390x"])


def test_another_tools_entry_registered_later_wins_until_disabled(
        binfmt: PrivateBinfmt, busybox: dict[str, Path]) -> None:
    apply(binfmt)
    binfmt.write("register", f":other-arm64:M::{AARCH64_MAGIC}:{AARCH64_MASK}:"
                             "/usr/bin/qemu-aarch64-static:F")
    data, code = explain(binfmt, busybox["arm64"])
    assert (code, data["entry"], data["reason"]) == (0, "other-arm64", "foreign-entry-wins")
    assert data["interpreter"] == "/usr/bin/qemu-aarch64-static" and data["cpu"] is None
    assert [m["entry"] for m in data["matches"]] == ["other-arm64", "multiarch-aarch64"]
    assert data["fix"] == f"echo 0 > {binfmt.path}/other-arm64"
    binfmt.write("other-arm64", "0")  # the fix, as given
    data, _ = explain(binfmt, busybox["arm64"])
    assert (data["entry"], data["reason"]) == ("multiarch-aarch64", None)
    binfmt.write("multiarch-aarch64", "0")
    data, code = explain(binfmt, busybox["arm64"])
    assert (code, data["reason"], data["fix"]) == (1, "entry-disabled", "multiarchctl apply")
    assert not kernel_runs(binfmt, busybox["arm64"])
    binfmt.write("status", "0")
    data, _ = explain(binfmt, busybox["arm64"])
    assert (data["reason"], data["fix"]) == ("table-disabled", f"echo 1 > {binfmt.path}/status")


def test_a_chroot_without_the_interpreter_fails_only_without_f(
        binfmt: PrivateBinfmt, busybox: dict[str, Path], policy: PolicyWriter,
        tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(busybox["s390x"], root / "busybox")
    for flags, runs in (("[P]", False), ("[F, P]", True)):
        config = policy(f"arches:\n  s390x: {{flags: {flags}}}\n")
        apply(binfmt, config)
        data, code = explain(binfmt, root / "busybox", "--root", str(root), config=config)
        assert (code == 0, data["runs"]) == (runs, runs), data
        if not runs:
            assert data["reason"] == "interpreter-missing"
            assert data["fix"].startswith("add F to flags under arches.s390x")
        chrooted = binfmt.exec("chroot", str(root), "/busybox", "true")
        assert (chrooted.returncode == 0) == runs, chrooted.stderr


def test_a_held_entry_runs_the_file_opened_before_and_names_release(
        binfmt: PrivateBinfmt, busybox: dict[str, Path], policy: PolicyWriter,
        trusted_dir: Path) -> None:
    emu = trusted_dir / "qemu-s390x-static"
    shutil.copy("/usr/bin/qemu-s390x-static", emu)
    config = policy(f"arches:\n  s390x: {{interpreter: {emu}, hold: true}}\n")
    apply(binfmt, config)
    staged = trusted_dir / "qemu-s390x-static.dpkg-new"  # an upgrade, as dpkg makes it
    shutil.copy("/usr/bin/qemu-s390x-static", staged)
    staged.replace(emu)
    data, code = explain(binfmt, busybox["s390x"], config=config)
    assert (code, data["entry"], data["reason"]) == (0, "multiarch-s390x", "held"), data
    assert data["fix"] == "multiarchctl release s390x" and "opened at registration" in \
        data["message"]
    assert kernel_runs(binfmt, busybox["s390x"])


def _entry(name: str, arch: str, order: int, enabled: bool = True) -> Entry:
    a = load_catalog().arches[arch]
    return Entry(Registration(name, f"/usr/bin/qemu-{arch}-static", Flags.parse("F"), a.magic,
                              a.mask), enabled, order)


def _decide(observed: Observed, arch: str) -> Explanation:
    """A program of `arch` (its ELF header as the catalog matches it) on an x86_64 host."""
    where = Where("x86_64", "a test's", "/b", "/etc/multiarch/arches.yaml")
    header = load_catalog().arches[arch].magic + bytes(HEADER_SIZE - 20)
    return decide(Program("/p", header), observed, None, load_catalog(), where)


def test_the_newest_enabled_match_wins_and_binfmt_misc_comes_before_native_elf() -> None:
    """The kernel's order, decided without a kernel (each rule in microseconds)."""
    arm64 = "aarch64"
    ours, theirs = _entry("multiarch-aarch64", "aarch64", 1), _entry("other", "aarch64", 2)
    assert _decide(Observed((ours, theirs)), arm64).entry == "other"
    assert _decide(Observed((ours, replace(theirs, enabled=False))), arm64).entry == ours.name
    off = _decide(Observed((ours, theirs), enabled=False), arm64)
    assert (off.outcome, off.reason) == (Outcome.FAILS, Reason.TABLE_DISABLED)
    # An i386 entry on an x86_64 host takes i386 programs the kernel would run itself.
    i386 = "i386"
    assert _decide(Observed(()), i386).outcome is Outcome.NATIVE
    assert _decide(Observed((_entry("hijack", "i386", 1),)), i386).entry == "hijack"


def test_a_rejected_policy_and_an_unmounted_table_are_said_with_their_fix(
        binfmt: PrivateBinfmt, busybox: dict[str, Path], policy: PolicyWriter,
        tmp_path: Path) -> None:
    config = policy("arches:\n  s390x: {flags: [Q]}\n")
    data, code = explain(binfmt, busybox["s390x"], config=config)
    assert (code, data["reason"], data["fix"]) == (1, "policy-error", "multiarchctl check-config")
    assert data["policy_problems"] and "'Q'" in data["policy_problems"][0]["message"], data
    text = run("multiarchctl", "explain", str(busybox["s390x"]), binfmt=binfmt, config=config)
    assert "'Q'" in text.stderr and "runs: no (policy-error)" in text.stdout
    config = policy("arches: [\n")  # rejected as a whole: nothing says what it wants
    data, code = explain(binfmt, busybox["s390x"], config=config)
    assert (code, data["reason"]) == (1, "policy-error") and data["policy_problems"]
    r = run("multiarchctl", "explain", "--json", str(busybox["s390x"]), "--binfmt-dir",
            str(tmp_path), config=DEFAULT_POLICY)
    data = json.loads(r.stdout)
    assert (r.returncode, data["reason"]) == (1, "not-mounted")
    assert data["fix"] == f"mount -t binfmt_misc binfmt_misc {tmp_path}"


def test_an_interpreter_gone_without_f_fails_and_the_fix_says_where() -> None:
    header = load_catalog().arches["s390x"].magic + bytes(HEADER_SIZE - 20)
    a = load_catalog().arches["s390x"]
    other = Entry(Registration("other", "/opt/q", Flags(), a.magic, a.mask), True, 1)
    for root, fix in (("", "install /opt/q"), ("/srv/c", "cp /opt/q /srv/c/opt/q")):
        where = Where("x86_64", "a test's", "/b", "/p.yaml", root=root,
                      missing=frozenset({"/opt/q"}))
        e = decide(Program("/p", header), Observed((other,)), None, load_catalog(), where)
        assert (e.outcome, e.reason, e.entry, e.fix) == (
            Outcome.FAILS, Reason.INTERPRETER_MISSING, "other", fix)


def test_the_same_answer_over_d_bus_for_anyone_from_the_bytes_the_caller_read(
        bus: PrivateBus, binfmt: PrivateBinfmt, busybox: dict[str, Path],
        start_daemon: DaemonStarter) -> None:
    """Explain takes the file's first bytes, not a path: the daemon (root) opens nothing for a
    caller, so nobody learns a byte of a file it cannot read."""
    start_daemon(DEFAULT_POLICY, binfmt, bus=bus)
    for program in (busybox["arm64"], busybox["s390x"], Path("/bin/true")):
        header = program.read_bytes()[:HEADER_SIZE]
        r = bus.busctl("--json=short", "call", "io.github.multiarchd1", "/io/github/multiarchd1",
                       "io.github.multiarchd1.Manager", "Explain", "sayb", str(program),
                       str(len(header)), *map(str, header), "true", user="nobody")
        assert r.returncode == 0, r.stderr
        fmt, outcome, entry, interp, flags, cpu, reason, message, fix = \
            json.loads(r.stdout)["data"]
        local, _ = explain(binfmt, program)
        assert (fmt, outcome, entry or None, interp or None, flags, cpu or None, reason or None,
                message, fix) == (local["format"], local["outcome"], local["entry"],
                                  local["interpreter"], local["flags"], local["cpu"],
                                  local["reason"], local["message"], local["fix"])
    assert outcome == "native"
    too_long = bus.busctl("call", "io.github.multiarchd1", "/io/github/multiarchd1",
                          "io.github.multiarchd1.Manager", "Explain", "sayb", "f",
                          str(HEADER_SIZE + 1), *["0"] * (HEADER_SIZE + 1), "true")
    assert too_long.returncode != 0 and "longer than 256 bytes" in too_long.stderr
