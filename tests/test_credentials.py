"""The binfmt_misc C flag made safe (core/cpu_image.py): a setuid foreign program runs with its
owner's rights, as sudo and su need, while QEMU, which runs with those rights too, takes no
orders from the user who started it: no QEMU_* variable when the kernel says AT_SECURE, and no
option taken from the program's name or argv[0]. Proven on the real kernel as an ordinary user
(uid 1000) in a user namespace that maps ids 0..65535, with the attacks that work on a plain
QEMU registered with C."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from multiarchd.catalog import load_catalog
from multiarchd.core.cpu_image import carried_model, is_guarded, with_cpu_model
from multiarchd.core.probes import Code, program
from multiarchd.model.flags import Flags
from multiarchd.model.registration import Registration
from tests.support.commands import run
from tests.support.fullbinfmt import FullBinfmt
from tests.support.paths import BUSYBOX_CACHE

CATALOG = load_catalog()
USER = 1000
# exit(geteuid()): the status is the euid's low byte (0 for root, 232 for uid 1000)
EUID = {"aarch64": Code((0xD28015E8,    # movz x8, #175 (geteuid)
                         0xD4000001,    # svc #0          x0 = euid
                         0xD2800BA8,    # movz x8, #93 (exit)
                         0xD4000001)),  # svc #0
        "s390x": Code((0x0A, 0xC9,      # svc 201 (geteuid)   r2 = euid
                       0x0A, 0x01), width=1)}  # svc 1 (exit)
BUSYBOX = {"aarch64": BUSYBOX_CACHE / "arm64" / "bin" / "busybox",
           "s390x": BUSYBOX_CACHE / "s390x" / "bin" / "busybox"}
SAID = "any user who can run a setuid foreign program steers QEMU as root"


@pytest.fixture
def table() -> Iterator[FullBinfmt]:
    with FullBinfmt() as t:
        yield t


@pytest.fixture
def place(trusted_dir: Path) -> dict[str, Path]:
    """root's directory D (0755: the user cannot write in it) holding setuid-root copies of a
    foreign program that exits with its euid and of busybox, a file only D's owner could have
    put there, and the user's own directory."""
    d = trusted_dir / "d"
    d.mkdir(mode=0o755)
    for arch, code in EUID.items():
        (d / f"euid-{arch}").write_bytes(program(CATALOG.arches[arch], code))
        shutil.copy(BUSYBOX[arch], d / f"busybox-{arch}")
    for f in d.iterdir():
        f.chmod(0o4755)
    (d / "real").write_text("root's\n")
    (d / "real").chmod(0o644)
    home = trusted_dir / "home"
    home.mkdir(mode=0o755)
    os.chown(home, USER, USER)
    return {"d": d, "home": home}


def registered(table: FullBinfmt, policy: Path, flags: str) -> None:
    policy.write_text(f"defaults: {{flags: [{', '.join(flags)}]}}\n"
                      "arches: {aarch64: {}, s390x: {}}\n")
    r = run("multiarchd", "--once", binfmt=table, config=policy)
    assert r.returncode == 0, r.stdout + r.stderr


def euid(table: FullBinfmt, prog: Path, env: dict[str, str] | None = None) -> int:
    return table.as_user(USER, str(prog), env=env).returncode


@pytest.mark.parametrize("arch", ["aarch64", "s390x"])
def test_with_c_a_setuid_foreign_program_is_root_and_qemu_obeys_no_user(
        table: FullBinfmt, place: dict[str, Path], tmp_path: Path, state_dir: Path,
        arch: str) -> None:
    registered(table, tmp_path / "arches.yaml", "CFP")
    entry = table.read(f"multiarch-{arch}")
    assert f"interpreter {state_dir}/cpu/{arch}\n" in entry and "flags: POCF" in entry
    made = (state_dir / "cpu" / arch).read_bytes()
    assert is_guarded(made)
    assert carried_model(made) == ("max,pauth-impdef=on" if arch == "aarch64" else None)
    d, home = place["d"], place["home"]
    prog = d / f"euid-{arch}"
    assert euid(table, prog) == 0  # what sudo and su need
    # 1. QEMU's log, through a variable: no file of root's
    assert euid(table, prog, {"QEMU_LOG": "page", "QEMU_LOG_FILENAME": f"{d}/owned"}) == 0
    assert not (d / "owned").exists()
    # 2. ... through a link named like an option (binfmt_misc hands QEMU "-D", then argv[0]
    # with P): with `--` first, "-D" is a program's name
    os.symlink(prog, home / "-D")
    r = table.as_user(USER, "/usr/bin/python3", "-c", "import os, sys; os.chdir(sys.argv[1]); "
                      "os.execv('-D', [sys.argv[2], '-d', 'page', sys.argv[3]])",
                      str(home), f"{d}/owned2", str(prog))
    assert r.returncode == 0, r.stderr
    assert not (d / "owned2").exists()
    # 3. QEMU_LD_PREFIX at a tree of the user's: the program opens root's file, not the user's
    fake = home / "prefix" / str(d / "real").lstrip("/")
    fake.parent.mkdir(parents=True)
    fake.write_text("the user's\n")
    r = table.as_user(USER, str(d / f"busybox-{arch}"), "cat", str(d / "real"),
                      env={"QEMU_LD_PREFIX": str(home / "prefix")})
    assert (r.returncode, r.stdout) == (0, "root's\n"), r.stderr
    # ... while without AT_SECURE (no setuid program) QEMU still reads the variables its user
    # gives it: nothing is taken from anyone running their own programs.
    shutil.copy(d / f"busybox-{arch}", home / "busybox")
    os.chown(home / "busybox", USER, USER)
    r = table.as_user(USER, str(home / "busybox"), "cat", str(d / "real"),
                      env={"QEMU_LD_PREFIX": str(home / "prefix")})
    assert (r.returncode, r.stdout) == (0, "the user's\n"), r.stderr


def test_without_c_the_program_runs_with_the_users_rights(
        table: FullBinfmt, place: dict[str, Path], tmp_path: Path) -> None:
    registered(table, tmp_path / "arches.yaml", "FP")
    for arch in EUID:
        assert euid(table, place["d"] / f"euid-{arch}") == USER & 0xFF


def test_the_stub_ends_options_and_drops_qemu_variables_only_when_secure(
        trusted_dir: Path) -> None:
    """Each host's start-up code, run: x86-64's natively on a copy of this host's busybox,
    arm64's on an arm64 busybox under a setuid copy of QEMU (which hands the program the
    AT_SECURE the kernel gave it)."""
    qemu = trusted_dir / "qemu-aarch64"
    shutil.copy("/usr/bin/qemu-aarch64-static", qemu)
    qemu.chmod(0o4755)
    for host, busybox, runner in (("x86_64", BUSYBOX_CACHE / "native", []),
                                  ("aarch64", BUSYBOX_CACHE / "arm64", [str(qemu)])):
        for model in (None, "max"):
            made = with_cpu_model((busybox / "bin" / "busybox").read_bytes(), model)
            where = trusted_dir / f"{host}-{model}"
            where.mkdir(mode=0o755)
            for applet in ("echo", "env"):
                (where / applet).write_bytes(made)
                (where / applet).chmod(0o4755)
            words = subprocess.run([*runner, str(where / "echo"), "a", "-b"], capture_output=True,
                                   text=True, check=True).stdout
            assert words == ("-cpu max " if model else "") + "-- a -b\n"
            if model:  # (busybox's env would take -cpu for an option of its own)
                continue
            env = {"QEMU_LD_PREFIX": "/x", "QEMU": "1", "QEMUX": "2", "A": "3"}
            mine = subprocess.run([*runner, str(where / "env")], env=env, capture_output=True,
                                  text=True, check=True).stdout.split()
            assert sorted(mine) == ["A=3", "QEMU=1", "QEMUX=2", "QEMU_LD_PREFIX=/x"]
            secure = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534",
                                     "--clear-groups", *runner, str(where / "env")], env=env,
                                    capture_output=True, text=True, check=True).stdout.split()
            assert sorted(secure) == ["A=3", "QEMU=1", "QEMUX=2"], host


def _unguardable(trusted_dir: Path) -> Path:
    """A copy of QEMU the start-up code cannot be put in (its notes made PT_NULL)."""
    qemu = trusted_dir / "qemu-s390x-static"
    image = bytearray(Path("/usr/bin/qemu-s390x-static").read_bytes())
    phoff, = struct.unpack_from("<Q", image, 32)
    phnum, = struct.unpack_from("<H", image, 56)
    for i in range(phnum):
        if struct.unpack_from("<I", image, phoff + 56 * i)[0] == 4:  # PT_NOTE
            struct.pack_into("<I", image, phoff + 56 * i, 0)
    qemu.write_bytes(bytes(image))
    qemu.chmod(0o755)
    return qemu


def test_c_on_a_qemu_that_cannot_be_guarded_is_refused_unless_the_risk_is_accepted(
        table: FullBinfmt, place: dict[str, Path], trusted_dir: Path, tmp_path: Path) -> None:
    qemu = _unguardable(trusted_dir)
    policy = tmp_path / "arches.yaml"
    policy.write_text(f"arches:\n  s390x:\n    interpreter: {qemu}\n    flags: [C, F, P]\n")
    r = run("multiarchd", "--once", binfmt=table, config=policy)
    assert r.returncode == 2, r.stdout + r.stderr  # the policy has a problem
    assert f"{policy}:2:3: C refused for s390x: no note header" in r.stdout + r.stderr
    assert f"interpreter {qemu}\nflags: POF\n" in table.read("multiarch-s390x")
    assert euid(table, place["d"] / "euid-s390x") == USER & 0xFF
    status = run("multiarchctl", "status", "--local", binfmt=table, config=policy)
    assert "C refused for s390x" in status.stdout
    # Accepted in words: C is kept, and the audit says what it costs.
    policy.write_text(policy.read_text() + f"    unsafe_credentials: \"{SAID}\"\n")
    r = run("multiarchd", "--once", binfmt=table, config=policy)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"interpreter {qemu}\nflags: POCF\n" in table.read("multiarch-s390x")
    assert euid(table, place["d"] / "euid-s390x") == 0
    status = run("multiarchctl", "status", "--local", binfmt=table, config=policy)
    assert "C kept on a QEMU multiarchd could not guard" in status.stdout
    audit = run("multiarchctl", "audit", "--json", binfmt=table, config=policy)
    found = [(f["entry"], f["kind"], f["severity"]) for f in json.loads(audit.stdout)["findings"]]
    assert found == [("multiarch-s390x", "unguarded-credentials", "high")]
    # Any other sentence is a problem at its place.
    policy.write_text(policy.read_text().replace(SAID, "yes"))
    r = run("multiarchctl", "check-config", policy)
    assert r.returncode == 2 and f"{policy}:5:25: unsafe_credentials takes only" in r.stdout


def _line(name: str, arch: str, interpreter: str, flags: str) -> str:
    a = CATALOG.arches[arch]
    return Registration(name, interpreter, Flags.parse(flags), a.magic, a.mask).register_line()


def test_the_audit_calls_c_on_a_plain_qemu_high_and_disable_unsafe_disables_it(
        table: FullBinfmt, place: dict[str, Path], tmp_path: Path) -> None:
    """As Tonistiigi's binfmt registers every QEMU (CF), beside multiarchd's own guarded C."""
    table.write("register", _line("qemu-s390x", "s390x", "/usr/bin/qemu-s390x-static", "CF"))
    policy = tmp_path / "arches.yaml"
    policy.write_text("defaults: {flags: [C, F, P]}\narches: {aarch64: {}}\n")
    r = run("multiarchd", "--once", binfmt=table, config=policy)
    assert r.returncode == 0, r.stdout + r.stderr
    audit = run("multiarchctl", "audit", "--json", binfmt=table, config=policy)
    [f] = json.loads(audit.stdout)["findings"]
    assert (f["entry"], f["kind"], f["severity"]) == ("qemu-s390x", "unguarded-credentials",
                                                      "high")
    assert "any user who can run a setuid foreign program steers QEMU as root" in f["reason"]
    assert "let multiarchd register s390x with C" in f["fix"]
    # The attack it names works through that entry ...
    d = place["d"]
    env = {"QEMU_LOG": "page", "QEMU_LOG_FILENAME": f"{d}/owned"}
    table.as_user(USER, str(d / "euid-s390x"), env=env)
    assert (d / "owned").stat().st_uid == 0
    # ... until disable-unsafe turns it off
    policy.write_text(policy.read_text() + "foreign_entries: disable-unsafe\n")
    r = run("multiarchd", "--once", binfmt=table, config=policy)
    assert table.read("qemu-s390x").startswith("disabled\n"), r.stdout + r.stderr
    assert table.read("multiarch-aarch64").startswith("enabled\n")


def test_a_model_qemu_refuses_leaves_c_its_guard(
        table: FullBinfmt, place: dict[str, Path], tmp_path: Path, state_dir: Path) -> None:
    policy = tmp_path / "arches.yaml"
    policy.write_text("arches:\n  aarch64: {cpu: no-such-cpu, flags: [C, F, P]}\n")
    r = run("multiarchd", "--once", binfmt=table, config=policy)
    assert r.returncode == 0, r.stdout + r.stderr
    path = state_dir / "cpu" / "aarch64"
    assert f"interpreter {path}\nflags: POCF\n" in table.read("multiarch-aarch64")
    assert is_guarded(path.read_bytes()) and carried_model(path.read_bytes()) is None
    status = run("multiarchctl", "status", "--local", binfmt=table, config=policy).stdout
    assert "CPU model no-such-cpu not used (unable to find CPU model" in status
    d = place["d"]
    assert euid(table, d / "euid-aarch64",
                {"QEMU_LOG": "page", "QEMU_LOG_FILENAME": f"{d}/owned"}) == 0
    assert not (d / "owned").exists()


@pytest.mark.kernel  # its table is a binfmt_misc instance of its own: root and a user namespace
def test_c_on_qemu_in_a_custom_entry_is_refused(table: FullBinfmt, tmp_path: Path) -> None:
    policy = tmp_path / "arches.yaml"
    policy.write_text("arches: {}\ncustom:\n  - name: s390x-too\n    magic: '\\x7fELF\\x02\\x02'\n"
                      "    interpreter: /usr/bin/qemu-s390x-static\n    flags: [C, F]\n")
    r = run("multiarchd", "--once", binfmt=table, config=policy)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"{policy}:3:5: C refused for custom entry s390x-too" in r.stdout + r.stderr
    assert "flags: OF\n" in table.read("multiarch-s390x-too")
