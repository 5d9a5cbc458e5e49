"""A QEMU CPU model per architecture, carried by the registered file itself (core/cpu_image.py,
host/cpu_models.py): proven on the real kernel where `F` is the reason it exists (a chroot with
no /proc, a container), with no QEMU_CPU in any environment, each child of another
architecture on its own model, and the features a program sees the same as QEMU's `-cpu` by
hand."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from multiarchd.core.cpu_image import CannotCarry, carried_model, with_cpu_model
from tests.support import loops
from tests.support.binfmt import PrivateBinfmt
from tests.support.commands import PolicyWriter, run, state_of
from tests.support.paths import BUSYBOX_CACHE, DEFAULT_POLICY, REPO
from tests.test_opened import _dpkg_replace

QEMU = Path("/usr/bin/qemu-aarch64-static")
TRIXIE = BUSYBOX_CACHE / "arm64-trixie" / "bin" / "busybox"  # built with branch protection
RISCV64 = BUSYBOX_CACHE / "riscv64" / "bin" / "busybox"
SHIPPED = "max,pauth-impdef=on"
AT_HWCAP, AT_HWCAP2 = 16, 26


def once(binfmt: PrivateBinfmt, config: Path) -> subprocess.CompletedProcess[str]:
    r = run("multiarchd", "--once", binfmt=binfmt, config=config)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def interpreter(binfmt: PrivateBinfmt, arch: str) -> str:
    [line] = [x for x in binfmt.read(f"multiarch-{arch}").splitlines()
              if x.startswith("interpreter ")]
    return line.split(" ", 1)[1]


def features(od: str) -> tuple[int, int]:
    """HWCAP and HWCAP2 from `od -A n -t x8 -v /proc/self/auxv` (QEMU 7.2 emulates auxv for
    every guest, /proc/cpuinfo only for some)."""
    words = [int(w, 16) for w in od.split()]
    pairs = dict(zip(words[0::2], words[1::2]))
    return pairs[AT_HWCAP], pairs.get(AT_HWCAP2, 0)


AUXV = ("od", "-A", "n", "-t", "x8", "-v", "/proc/self/auxv")


# -- the image, pure ------------------------------------------------------------------------------

def test_the_image_is_qemu_with_a_model_and_refuses_what_it_cannot_carry() -> None:
    image = QEMU.read_bytes()
    made = with_cpu_model(image, "cortex-a72")
    phoff, = struct.unpack_from("<Q", image, 32)
    phentsize, phnum = struct.unpack_from("<HH", image, 54)
    headers = phoff + phentsize * phnum
    assert made[headers:len(image)] == image[headers:]  # QEMU's bytes as they were
    assert made[:headers] != image[:headers]
    assert carried_model(made) == "cortex-a72" and carried_model(image) is None
    for bad in ("", "max;reboot", "a b", "-cpu", "x" * 201):
        with pytest.raises(CannotCarry):
            with_cpu_model(image, bad)
    with pytest.raises(CannotCarry, match="ELF"):
        with_cpu_model(b"#!/bin/sh\n", "max")
    arm32 = bytearray(image[:64])
    arm32[4] = 1  # ELFCLASS32
    with pytest.raises(CannotCarry, match="64-bit"):
        with_cpu_model(bytes(arm32), "max")
    other = bytearray(image)
    struct.pack_into("<H", other, 18, 43)  # EM_SPARCV9: no start-up code for such a host
    with pytest.raises(CannotCarry, match="machine 43"):
        with_cpu_model(bytes(other), "max")


def test_a_model_that_is_not_one_is_a_policy_error_at_its_place(tmp_path: Path) -> None:
    policy = tmp_path / "arches.yaml"
    policy.write_text("arches:\n  aarch64:\n    cpu: 'max;reboot'\n  all: {cpu: cortex-a72}\n")
    r = run("multiarchctl", "check-config", policy)
    assert r.returncode == 2
    assert f"{policy}:3:10: cpu 'max;reboot' is not a QEMU CPU model" in r.stdout + r.stderr
    assert f"{policy}:4:8: arches.all can only say `cpu: default`" in r.stdout + r.stderr


# -- on the real kernel ---------------------------------------------------------------------------

@pytest.fixture
def shipped(binfmt: PrivateBinfmt) -> PrivateBinfmt:
    """The private table after `--once` with the shipped default policy."""
    once(binfmt, DEFAULT_POLICY)
    return binfmt


def test_the_shipped_policy_runs_aarch64_with_its_model_and_says_so(
        shipped: PrivateBinfmt, state_dir: Path) -> None:
    path = interpreter(shipped, "aarch64")
    assert path == f"{state_dir}/cpu/aarch64"
    assert carried_model(Path(path).read_bytes()) == SHIPPED
    assert interpreter(shipped, "s390x") == "/usr/bin/qemu-s390x-static"  # QEMU's own
    status = run("multiarchctl", "status", "--local", binfmt=shipped, config=DEFAULT_POLICY)
    _table, header, *rows = status.stdout.splitlines()
    assert header.split()[:4] == ["NAME", "STATE", "EMULATOR", "CPU"]
    aarch64 = next(r.split() for r in rows if r.startswith("aarch64 "))
    assert aarch64[1:4] == ["active", "qemu", SHIPPED]
    assert next(r.split() for r in rows if r.startswith("s390x "))[3] == "default"
    # The same features as QEMU started by hand with the model, not those of its default.
    through = shipped.exec(str(TRIXIE), *AUXV)
    assert through.returncode == 0, through.stderr
    by_hand = subprocess.run([str(QEMU), "-cpu", SHIPPED, str(TRIXIE), *AUXV],
                             capture_output=True, text=True, check=True)
    assert features(through.stdout) == features(by_hand.stdout)


def test_the_program_sees_no_qemu_variable_and_a_foreign_child_runs_on_its_own_model(
        shipped: PrivateBinfmt, busybox: dict[str, Path]) -> None:
    env = shipped.exec(str(TRIXIE), "env")
    assert env.returncode == 0 and "QEMU" not in env.stdout, env.stdout
    # An arm64 shell starts an s390x busybox: that child runs with qemu-s390x's own model
    # (no -cpu of aarch64's leaks to it), and an arm64 child with aarch64's.
    child = shipped.exec(str(TRIXIE), "sh", "-c",
                         f"{busybox['s390x']} uname -m; {TRIXIE} {' '.join(AUXV)}")
    assert child.returncode == 0, child.stderr
    first, rest = child.stdout.split("\n", 1)
    assert first == "s390x"
    by_hand = subprocess.run([str(QEMU), "-cpu", SHIPPED, str(TRIXIE), *AUXV],
                             capture_output=True, text=True, check=True)
    assert features(rest) == features(by_hand.stdout)


def test_the_p_flag_still_hands_the_program_its_own_argv0(shipped: PrivateBinfmt) -> None:
    """With P, QEMU takes argv[0] from after the program's path: the words the file puts first
    must not shift it (busybox picks its applet by argv[0])."""
    r = shipped.exec(sys.executable, "-c", "import os, sys; os.execv(sys.argv[1], "
                     "['uname', '-m'])", str(TRIXIE))
    assert (r.returncode, r.stdout) == (0, "aarch64\n"), r.stderr


def test_it_runs_in_a_chroot_with_no_proc_and_neither_path_inside(
        shipped: PrivateBinfmt, trusted_dir: Path) -> None:
    root = trusted_dir / "root"
    (root / "bin").mkdir(parents=True)
    shutil.copy(TRIXIE, root / "bin" / "busybox")
    r = shipped.exec("chroot", str(root), "/bin/busybox", "sh", "-c",
                     "test -e /proc/self || echo no-proc; uname -m")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["no-proc", "aarch64"]
    assert not list(root.rglob("qemu*"))


@pytest.mark.parametrize("model", ["cortex-a72", "default"])
def test_a_model_of_the_policy_gives_what_qemu_gives_by_hand(
        binfmt: PrivateBinfmt, tmp_path: Path, model: str) -> None:
    policy = tmp_path / "arches.yaml"
    policy.write_text(f"arches:\n  aarch64: {{cpu: {model}}}\n")
    once(binfmt, policy)
    through = binfmt.exec(str(TRIXIE), *AUXV)
    assert through.returncode == 0, through.stderr
    by_hand = [str(QEMU), *(["-cpu", model] if model != "default" else []), str(TRIXIE), *AUXV]
    expected = subprocess.run(by_hand, capture_output=True, text=True, check=True).stdout
    assert features(through.stdout) == features(expected)
    if model == "default":
        assert interpreter(binfmt, "aarch64") == str(QEMU)


def test_a_model_qemu_refuses_leaves_its_own_and_says_why(
        binfmt: PrivateBinfmt, tmp_path: Path) -> None:
    policy = tmp_path / "arches.yaml"
    policy.write_text("arches:\n  aarch64: {cpu: no-such-cpu}\n")
    once(binfmt, policy)
    assert interpreter(binfmt, "aarch64") == str(QEMU)
    status = run("multiarchctl", "status", "--local", binfmt=binfmt, config=policy).stdout
    assert state_of(status, "aarch64") == "active"
    assert f"{policy}:2:18: CPU model no-such-cpu not used (unable to find CPU model " \
           "'no-such-cpu'): runs with QEMU's own" in status
    assert binfmt.exec(str(TRIXIE), "uname", "-m").stdout == "aarch64\n"


def carried_copy(binfmt: PrivateBinfmt, trusted_dir: Path, tmp_path: Path
                 ) -> tuple[Path, Path, Path]:
    """A copy of the QEMU in a trusted directory, a policy that carries a model on it, applied:
    (the copy, the policy, the file that carries the model)."""
    qemu = trusted_dir / "qemu-aarch64-static"
    shutil.copy(QEMU, qemu)
    policy = tmp_path / "arches.yaml"
    policy.write_text(f"defaults: {{flags: [F, P]}}\narches:\n  aarch64:\n"
                      f"    interpreter: {qemu}\n    cpu: cortex-a72\n")
    once(binfmt, policy)
    return qemu, policy, Path(interpreter(binfmt, "aarch64"))


def test_an_upgraded_qemu_is_carried_again_with_no_failed_exec(
        binfmt: PrivateBinfmt, trusted_dir: Path, tmp_path: Path, state_dir: Path) -> None:
    qemu, policy, carried = carried_copy(binfmt, trusted_dir, tmp_path)
    before = os.stat(carried).st_ino
    # The arm64 busybox runs the whole time the QEMU is replaced (by rename, as dpkg does) and
    # the entry carried again.
    with loops.running(binfmt, TRIXIE, "aarch64", tmp_path) as counts:
        shutil.copy(QEMU, trusted_dir / "new")
        os.rename(trusted_dir / "new", qemu)
        once(binfmt, policy)
    assert os.stat(carried).st_ino != before  # made again from the new file
    assert interpreter(binfmt, "aarch64") == str(carried)
    assert all(n > 0 and bad == 0 for n, bad in counts), counts


def test_dpkgs_replace_of_the_qemu_makes_the_model_file_again_once(
        binfmt: PrivateBinfmt, trusted_dir: Path, tmp_path: Path, state_dir: Path) -> None:
    """dpkg links the old QEMU to .dpkg-tmp, renames the new one over, removes the link: the
    file that carries the model is made again once, from the new QEMU, at the rename (the
    link alone made it again from the old one: two replaces for one upgrade)."""
    qemu, policy, carried = carried_copy(binfmt, trusted_dir, tmp_path)
    made = [os.stat(carried).st_ino]

    def run_and_note() -> None:
        once(binfmt, policy)
        made.append(os.stat(carried).st_ino)
    _dpkg_replace(qemu, QEMU, run_and_note)
    before, linked, staged, renamed, unlinked = made
    assert (linked, staged) == (before, before), made
    assert renamed != before and unlinked == renamed, made


def test_a_cpu_edit_says_the_model_in_its_replace_line(
        binfmt: PrivateBinfmt, policy: PolicyWriter, state_dir: Path) -> None:
    """The file at the same path is made again for the new model: the replace line says which
    model, not that a file was "replaced on disk" as an upgrade would."""
    once(binfmt, policy("arches:\n  aarch64: {cpu: cortex-a53}\n"))
    r = once(binfmt, policy("arches:\n  aarch64: {cpu: cortex-a72}\n"))
    said = [x for x in (r.stdout + r.stderr).splitlines() if "replaced multiarch-aarch64" in x]
    assert len(said) == 1 and said[0].endswith(
        f"replaced multiarch-aarch64: {state_dir}/cpu/aarch64 was made again for QEMU with -cpu "
        "cortex-a72; F keeps the old file open until re-registered"), r.stdout + r.stderr


@pytest.mark.parametrize("kept", ["fifo", "cut short"])
def test_a_kept_model_file_that_is_not_whole_is_made_again(
        binfmt: PrivateBinfmt, state_dir: Path, kept: str) -> None:
    path = state_dir / "cpu" / "aarch64"
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        whole = path.read_bytes()
        path.unlink()
    else:
        whole = b"\x7fELF" + b"\0" * 5000
    if kept == "fifo":
        os.mkfifo(path)  # never opened for reading: the run would hang
    else:
        path.write_bytes(whole[:5000])
        path.chmod(0o755)
    once(binfmt, DEFAULT_POLICY)
    assert path.is_file() and carried_model(path.read_bytes()) == SHIPPED
    assert interpreter(binfmt, "aarch64") == str(path)
    assert binfmt.exec(str(TRIXIE), "uname", "-m").stdout == "aarch64\n"


# -- models that would not do what they say -------------------------------------------------------

def test_a_model_that_asks_for_a_list_is_refused_by_check_config(tmp_path: Path) -> None:
    policy = tmp_path / "arches.yaml"
    for model in ("help", "max,help", "'?'"):
        policy.write_text(f"arches:\n  aarch64:\n    cpu: {model}\n")
        r = run("multiarchctl", "check-config", policy)
        assert r.returncode == 2, (model, r.stdout)
        said = r.stdout + r.stderr
        assert f"{policy}:3:10: cpu " in said and ("asks QEMU for a list" in said or
                                                   "is not a QEMU CPU model" in said), said
    # and so does the schema editors check against
    schema = json.loads((REPO / "config" / "arches.schema.json").read_text())
    for model in ("help", "max,help", "?"):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"arches": {"aarch64": {"cpu": model}}}, schema)
    jsonschema.validate({"arches": {"aarch64": {"cpu": "max,pauth-impdef=on"}}}, schema)


def test_a_model_with_an_interpreter_that_is_no_qemu_is_a_problem_at_its_place(
        tmp_path: Path) -> None:
    policy = tmp_path / "arches.yaml"
    (tmp_path / "arches.d").mkdir()
    policy.write_text("arches:\n  aarch64:\n    interpreter: /opt/emu/aarch64-run\n")
    (tmp_path / "arches.d" / "50-cpu.yaml").write_text("arches:\n  aarch64: {cpu: cortex-a72}\n")
    r = run("multiarchctl", "check-config", config=policy)  # (the policy with its drop-ins)
    assert r.returncode == 2
    assert f"{tmp_path}/arches.d/50-cpu.yaml:2:18: cpu 'cortex-a72': only QEMU takes a CPU " \
           "model, and interpreter /opt/emu/aarch64-run is not named as one" in r.stdout + r.stderr
    for fine in ("/opt/emu/qemu-aarch64", "/usr/libexec/qemu-binfmt/aarch64-binfmt-P"):
        policy.write_text(f"arches:\n  aarch64:\n    interpreter: {fine}\n")
        said = run("multiarchctl", "check-config", config=policy)
        assert "only QEMU takes" not in said.stdout + said.stderr, fine


def test_a_model_qemu_warns_about_is_not_used_and_says_what_qemu_said(
        binfmt: PrivateBinfmt, tmp_path: Path) -> None:
    """rv64,v=true makes QEMU 7.2 print 'vector version is not specified' at every start: on
    every riscv64 program's stderr, were it carried."""
    policy = tmp_path / "arches.yaml"
    policy.write_text("arches:\n  riscv64: {cpu: 'rv64,v=true'}\n")
    once(binfmt, policy)
    assert interpreter(binfmt, "riscv64") == "/usr/bin/qemu-riscv64-static"
    status = run("multiarchctl", "status", "--local", binfmt=binfmt, config=policy).stdout
    assert "CPU model rv64,v=true not used (QEMU would print 'vector version is not " \
           "specified, use the default value v1.0' on the stderr of every riscv64 program" \
           in status, status
    r = binfmt.exec(str(RISCV64), "true")
    assert (r.returncode, r.stderr) == (0, "")
    # Written as QEMU asks, it is carried, and programs say nothing of it.
    policy.write_text("arches:\n  riscv64: {cpu: 'rv64,v=true,vext_spec=v1.0'}\n")
    once(binfmt, policy)
    assert carried_model(Path(interpreter(binfmt, "riscv64")).read_bytes()) == \
        "rv64,v=true,vext_spec=v1.0"
    r = binfmt.exec(str(RISCV64), "true")
    assert (r.returncode, r.stderr) == (0, "")
