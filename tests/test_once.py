"""End to end: `multiarchd --once` on a real private binfmt_misc instance, real qemu, real busybox.

Each test reads as a user's story: given a policy and a kernel table, when multiarchd runs, the
entries are these, foreign programs run (or not), and the output says this.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.binfmt import PrivateBinfmt
from tests.support.commands import PolicyWriter, run, state_of
from tests.support.paths import DEFAULT_POLICY, FOREIGN

# What Debian's qemu-user-static registers for arm64 (binfmt.d/qemu-aarch64.conf).
QEMU_AARCH64 = (":qemu-aarch64:M::\\x7f\\x45\\x4c\\x46\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00"
                "\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00"
                "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:"
                "/usr/libexec/qemu-binfmt/aarch64-binfmt-P:OPF")


def once(binfmt: PrivateBinfmt, config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run("multiarchd", "--once", *extra, binfmt=binfmt, config=config)


def test_default_policy_makes_every_foreign_busybox_run(
        binfmt: PrivateBinfmt, busybox: dict[str, Path]) -> None:
    for deb_arch, path in busybox.items():
        before = binfmt.exec(str(path), "uname", "-m")
        assert before.returncode != 0, f"{deb_arch} ran before anything was registered"
    r = once(binfmt, DEFAULT_POLICY)
    assert r.returncode == 0, r.stderr
    assert "converged: 33 active" in r.stdout
    assert len(binfmt.names()) == 33
    assert "multiarch-x86_64" not in binfmt.names() and "multiarch-i386" not in binfmt.names()
    for deb_arch, path in busybox.items():
        out = binfmt.exec(str(path), "uname", "-m")
        assert (out.returncode, out.stdout.strip()) == (0, FOREIGN[deb_arch]), out.stderr


def test_second_run_changes_nothing(binfmt: PrivateBinfmt) -> None:
    assert once(binfmt, DEFAULT_POLICY).returncode == 0
    table = binfmt.snapshot()
    order = {n: Path(binfmt.path, n).stat().st_ino for n in table}
    again = once(binfmt, DEFAULT_POLICY)
    assert again.returncode == 0 and again.stderr == ""
    assert binfmt.snapshot() == table
    assert {n: Path(binfmt.path, n).stat().st_ino for n in table} == order  # not re-registered


def test_turning_s390x_off_removes_exactly_that_entry(
        binfmt: PrivateBinfmt, policy: PolicyWriter, busybox: dict[str, Path]) -> None:
    assert once(binfmt, DEFAULT_POLICY).returncode == 0
    before = binfmt.snapshot()
    r = once(binfmt, policy("arches:\n  all: {}\n  s390x: {enabled: false}\n"))
    assert r.returncode == 0, r.stderr
    after = binfmt.snapshot()
    assert set(before) - set(after) == {"multiarch-s390x"}
    assert all(after[n] == before[n] for n in after)
    assert "removed multiarch-s390x" in r.stderr
    assert binfmt.exec(str(busybox["s390x"]), "true").returncode != 0
    assert binfmt.exec(str(busybox["arm64"]), "true").returncode == 0


def test_foreign_entry_is_left_alone_and_reported_as_overlapping(
        binfmt: PrivateBinfmt, busybox: dict[str, Path]) -> None:
    binfmt.write("register", QEMU_AARCH64)
    theirs = binfmt.read("qemu-aarch64")
    r = once(binfmt, DEFAULT_POLICY)
    assert r.returncode == 0, r.stderr
    assert binfmt.read("qemu-aarch64") == theirs
    assert "overlaps foreign qemu-aarch64; this entry was registered later and wins" in r.stdout
    assert "qemu-aarch64  enabled" in r.stdout and "overlaps multiarch-aarch64" in r.stdout
    assert binfmt.exec(str(busybox["arm64"]), "uname", "-m").stdout.strip() == "aarch64"


def test_foreign_entry_registered_later_shadows_ours(binfmt: PrivateBinfmt) -> None:
    assert once(binfmt, DEFAULT_POLICY).returncode == 0
    binfmt.write("register", QEMU_AARCH64)
    r = once(binfmt, DEFAULT_POLICY)
    assert r.returncode == 1
    assert state_of(r.stdout, "aarch64") == "shadowed" and "shadowed by qemu-aarch64" in r.stdout


@pytest.mark.parametrize("mode", ["disable", "remove"])
def test_foreign_entries_policy_acts_only_on_overlapping_entries(
        binfmt: PrivateBinfmt, policy: PolicyWriter, mode: str) -> None:
    binfmt.write("register", QEMU_AARCH64)
    binfmt.write("register", ":other:E::xyz::/bin/true:")
    r = once(binfmt, policy(f"arches: {{aarch64: {{}}}}\nforeign_entries: {mode}\n"))
    assert r.returncode == 0, r.stderr
    if mode == "disable":
        assert binfmt.read("qemu-aarch64").startswith("disabled\n")
    else:
        assert "qemu-aarch64" not in binfmt.names()
    assert binfmt.read("other").startswith("enabled\n")
    assert "multiarch-aarch64" in binfmt.names()


def test_drift_of_every_kind_is_put_back(binfmt: PrivateBinfmt, busybox: dict[str, Path]) -> None:
    assert once(binfmt, DEFAULT_POLICY).returncode == 0
    good = binfmt.snapshot()
    binfmt.write("multiarch-s390x", "-1")  # removed
    binfmt.write("multiarch-arm", "0")  # disabled
    binfmt.write("multiarch-ppc64le", "-1")  # replaced with other content
    binfmt.write("register", ":multiarch-ppc64le:M::\\x7fELF\\x02\\x01:\\xff\\xff\\xff\\xff\\xff"
                             "\\xff:/bin/true:")
    binfmt.write("register", ":multiarch-stale:E::zzz::/bin/true:")  # ours, not in the policy
    r = once(binfmt, DEFAULT_POLICY)
    assert r.returncode == 0, r.stderr
    assert binfmt.snapshot() == good
    for words in ("registered multiarch-s390x", "enabled multiarch-arm",
                  "replaced multiarch-ppc64le", "removed multiarch-stale"):
        assert words in r.stderr
    assert binfmt.exec(str(busybox["ppc64el"]), "uname", "-m").stdout.strip() == "ppc64le"


BAD_EDITS = [
    ("arches: {all: {}\n", "malformed YAML"),
    ("arches: all\nforeign: keep\n", "unknown key 'foreign'"),
    ("arches: all\ndefaults: {flags: [F, Q]}\n", "unknown flag 'Q'"),
    ("arches:\n  all: {}\n  s390x: {enabled: nope}\n", "must be true or false"),
    ("arches:\n  all: {}\n  arm65: {}\n", "did you mean 'arm64'"),
    ("arches:\n  all: {}\n  arm64: {}\n  aarch64: {flags: [F]}\n", "given twice"),
    ("arches:\n  all: {}\n  arm: {interpreter: /nonexistent/qemu-arm}\n", "does not exist"),
    ("arches: all\ncustom:\n  - {name: status, extension: exe, interpreter: /bin/true}\n",
     "reserved"),
]


@pytest.mark.parametrize("text,words", BAD_EDITS, ids=[w for _, w in BAD_EDITS])
def test_bad_edit_leaves_the_table_byte_identical(
        binfmt: PrivateBinfmt, policy: PolicyWriter, text: str, words: str) -> None:
    assert once(binfmt, DEFAULT_POLICY).returncode == 0
    table = binfmt.snapshot()
    path = policy(text)
    r = once(binfmt, path)
    assert r.returncode == 2
    assert f"{path}:" in r.stderr and words in r.stderr
    assert binfmt.snapshot() == table


def test_one_bad_arch_does_not_stop_the_good_ones(binfmt: PrivateBinfmt, policy: PolicyWriter) -> None:
    path = policy("arches:\n  aarch64: {}\n  s390x: {flgs: [F]}\n  arm65: {}\n  riscv64: {}\n")
    r = once(binfmt, path)
    assert r.returncode == 2
    assert binfmt.names() == ["multiarch-aarch64", "multiarch-riscv64"]
    assert f"{path}:3:11: unknown key 'flgs'" in r.stderr
    assert f"{path}:4:3: unknown architecture 'arm65'" in r.stderr
    assert state_of(r.stdout, "s390x") == "error"


def test_what_the_kernel_would_refuse_is_refused_first_and_the_rest_applies(
        binfmt: PrivateBinfmt, policy: PolicyWriter) -> None:
    # 256 unprintable magic and mask bytes make a register line longer than the kernel's 1920:
    # check-config and every run say so with the place, instead of a refusal retried forever.
    magic = "\\x01" * 256
    path = policy(f"arches: {{s390x: {{}}}}\ncustom:\n  - name: huge\n    magic: '{magic}'\n"
                  f"    mask: '{magic}'\n    interpreter: /bin/true\n")
    r = once(binfmt, path)
    assert r.returncode == 2
    assert f"{path}:3:5: the register line would be 2084 bytes; the kernel takes at most 1920" \
        in r.stderr
    assert binfmt.names() == ["multiarch-s390x"]
    check = run("multiarchctl", "check-config", config=path)
    assert check.returncode == 2 and "the register line would be 2084 bytes" in check.stdout


def test_dry_run_prints_the_plan_and_writes_nothing(binfmt: PrivateBinfmt) -> None:
    r = once(binfmt, DEFAULT_POLICY, "--dry-run")
    assert r.returncode == 1
    assert "register multiarch-s390x: s390x via /usr/bin/qemu-s390x-static, flags PF" \
        in r.stdout
    assert binfmt.names() == []


def test_unmounted_binfmt_misc_is_said_plainly(tmp_path: Path) -> None:
    r = run("multiarchd", "--once", "--dry-run", "--config", DEFAULT_POLICY,
            "--binfmt-dir", tmp_path)
    assert r.returncode == 1
    assert f"binfmt_misc is not mounted at {tmp_path}" in r.stderr


def test_unregister_removes_ours_and_nothing_else(binfmt: PrivateBinfmt,
                                                  busybox: dict[str, Path]) -> None:
    # What the early-boot unit's ExecStop does at shutdown: an F entry keeps its interpreter's
    # file system busy until it goes.
    assert once(binfmt, DEFAULT_POLICY, "--log-target", "stderr").returncode == 0
    binfmt.write("register", QEMU_AARCH64)
    r = run("multiarchd", "--unregister", "--log-target", "stderr", binfmt=binfmt,
            config=DEFAULT_POLICY)
    assert r.returncode == 0, r.stderr
    assert binfmt.names() == ["qemu-aarch64"]
    assert "removed multiarch-s390x" in r.stderr
    assert binfmt.exec(str(busybox["s390x"]), "uname", "-m").returncode != 0
    again = run("multiarchd", "--unregister", binfmt=binfmt, config=DEFAULT_POLICY)
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")


def test_unregister_with_nothing_mounted_mounts_nothing(tmp_path: Path) -> None:
    r = run("multiarchd", "--unregister", "--config", DEFAULT_POLICY, "--binfmt-dir", tmp_path)
    assert (r.returncode, r.stderr) == (0, "")
    assert list(tmp_path.iterdir()) == []
