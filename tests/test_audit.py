"""The audit of the whole table (core/audit.py) on the real kernel: each kind of unsafe entry
planted by hand in a private table, as an attacker or a careless tool would, is found with its
reason and fix; `foreign_entries: disable-unsafe` disables exactly the unsafe ones; and a
clean install (multiarchd's entries beside Debian's own binfmt.d entries) has no finding."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from multiarchd.catalog import load_catalog
from multiarchd.model.flags import Flags
from multiarchd.model.registration import Registration
from tests.support.binfmt import PrivateBinfmt
from tests.support.commands import DaemonStarter, PolicyWriter, run
from tests.support.paths import DEFAULT_POLICY

CATALOG = load_catalog()
QEMU = "/usr/bin/qemu-s390x-static"


def _line(name: str, arch: str, interpreter: Path | str, flags: str) -> str:
    a = CATALOG.arches[arch]
    return Registration(name, str(interpreter), Flags.parse(flags), a.magic,
                        a.mask).register_line()


@pytest.fixture
def planted(binfmt: PrivateBinfmt, trusted_dir: Path, tmp_path: Path) -> dict[str, Path]:
    """One entry of each kind, registered by hand; the paths the test looks at."""
    log = tmp_path / "hijacked.log"
    logger = trusted_dir / "logger"  # would log every native program it is handed
    logger.write_text(f"#!/bin/sh\necho \"$@\" >> {log}\n")
    logger.chmod(0o755)
    binfmt.write("register", _line("evil-native", "x86_64", logger, ""))
    users = trusted_dir / "users"  # a user's copy of an emulator, with C
    users.mkdir()
    shutil.copy(QEMU, users / "qemu")
    os.chown(users, 65534, 65534)
    os.chown(users / "qemu", 65534, 65534)
    binfmt.write("register", _line("evil-suid", "s390x", users / "qemu", "OCF"))
    gone = trusted_dir / "qemu-arm-gone"  # deleted after registration
    shutil.copy("/usr/bin/qemu-arm-static", gone)
    binfmt.write("register", _line("arm-gone", "arm", gone, "F"))
    gone.unlink()
    binfmt.write("register", f":shell-scripts:E::sh::{logger}:")
    # and one that is fine: an emulator as Debian's package registers it (OPF: with C, a plain
    # QEMU is high, tests/test_credentials.py)
    binfmt.write("register", _line("qemu-ppc64le", "ppc64le", "/usr/bin/qemu-ppc64le-static",
                                   "OPF"))
    return {"log": log, "logger": logger}


def test_each_unsafe_entry_is_found_and_nothing_else(
        binfmt: PrivateBinfmt, planted: dict[str, Path]) -> None:
    r = run("multiarchctl", "audit", "--json", binfmt=binfmt, config=DEFAULT_POLICY)
    assert r.returncode == 1, r.stderr
    found = {(f["entry"], f["kind"], f["severity"]) for f in json.loads(r.stdout)["findings"]}
    assert found == {("evil-native", "native-magic", "high"),
                     ("evil-suid", "untrusted-credentials", "high"),
                     ("arm-gone", "interpreter-gone", "medium"),
                     ("shell-scripts", "native-extension", "high")}, found
    text = run("multiarchctl", "audit", binfmt=binfmt, config=DEFAULT_POLICY).stdout
    assert "its magic 7f454c46020101" in text and f"run through {planted['logger']}" in text
    assert "C runs" in text and "owned by uid 65534" in text
    assert "no longer exists: the kernel runs a deleted file (F)" in text
    assert "every file named *.sh" in text
    # status shows them per entry too
    status = json.loads(run("multiarchctl", "status", "--json", binfmt=binfmt,
                            config=DEFAULT_POLICY).stdout)
    per_entry = {f["name"]: [g["kind"] for g in f["findings"]] for f in status["foreign"]}
    assert per_entry["evil-native"] == ["native-magic"] and per_entry["qemu-ppc64le"] == []


def test_disable_unsafe_disables_exactly_the_unsafe_ones(
        binfmt: PrivateBinfmt, planted: dict[str, Path], policy: PolicyWriter,
        start_daemon: DaemonStarter) -> None:
    d = start_daemon(policy("arches: {s390x: {}}\nforeign_entries: disable-unsafe\n"), binfmt)
    state = {n: binfmt.read(n).split("\n")[0] for n in binfmt.names()}
    assert {n for n, s in state.items() if s == "disabled"} == \
        {"evil-native", "evil-suid", "shell-scripts"}, state
    assert state["arm-gone"] == state["qemu-ppc64le"] == state["multiarch-s390x"] == "enabled"
    for entry in ("evil-native", "evil-suid", "shell-scripts"):
        d.wait_log(rf"disabled {entry}: unsafe: ")
    # Disabled, it is still a finding (it would take native programs once enabled), said once
    # however many runs see it.
    d.reload()
    said = [line for line in d.lines if "audit: medium: evil-native: its magic" in line]
    assert len(said) == 1 and "once it is enabled" in said[0], said
    # The hijack is off: a native program in the namespace runs itself, not the logger.
    assert binfmt.exec("/bin/echo", "native").stdout == "native\n"
    assert not planted["log"].exists()


def test_a_clean_install_has_no_finding(binfmt: PrivateBinfmt) -> None:
    """multiarchd's entries beside what Debian's own packages register through binfmt.d."""
    for conf in sorted(Path("/usr/lib/binfmt.d").glob("*.conf")):
        for line in conf.read_text().splitlines():
            if line.strip() and not line.startswith(("#", ";")):
                binfmt.write("register", line)
    r = run("multiarchd", "--once", binfmt=binfmt, config=DEFAULT_POLICY)
    assert r.returncode == 0, r.stderr
    r = run("multiarchctl", "audit", binfmt=binfmt, config=DEFAULT_POLICY)
    assert (r.returncode, r.stdout.split(" in ")[0]) == (0, "no findings"), r.stdout


# The hijacks seen planted in a table (each shown to take this host's own programs), by what
# they would take: an audit that compared entries with a few files' first bytes found none.
GNU_STATIC = ("\\x7fELF\\x02\\x01\\x01\\x03" + "\\x00" * 8 + "\\x03\\x00\\x3e\\x00",
              "\\xff" * 5 + "\\xfe\\xfe\\xff" + "\\x00" * 8 + "\\xfe\\xff\\xff\\xff")
HIJACKS = {"shebang-sh": ":shebang-sh:M::#!/bin/sh::{echo}:",
           "shebang": ":shebang:M::#!::{echo}:",
           "gnu-static": f":gnu-static:M::{GNU_STATIC[0]}:{GNU_STATIC[1]}:{{echo}}:",
           "multiarch-x": ":multiarch-x:M::\\x7fMAX::{unknown}:OC",
           "shebang-off": ":shebang-off:M::#! ::{echo}:",
           # a native shell as the interpreter: each file taken runs as its commands
           "sh-runs": ":sh-runs:M::ZZZZ::/bin/sh:", "txt-bash": ":txt-bash:E::txt::/bin/bash:"}


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="an x86-64 host's own programs")
def test_every_planted_hijack_is_found_by_what_it_would_take(
        binfmt: PrivateBinfmt, trusted_dir: Path) -> None:
    echo, unknown = trusted_dir / "echo", trusted_dir / "unknown"
    shutil.copy("/bin/echo", echo)  # says the path it is handed, in place of the program
    shutil.copy("/bin/true", unknown)
    script = trusted_dir / "script"
    script.write_text("#!/bin/sh\necho ran itself\n")
    script.chmod(0o755)
    assert binfmt.exec(str(script)).stdout == "ran itself\n"
    for line in HIJACKS.values():
        binfmt.write("register", line.format(echo=echo, unknown=unknown))
    binfmt.write("shebang-off", "0")
    # Each takes what it says it would: scripts, a static GNU/Linux program run as root by
    # every dpkg trigger.
    assert binfmt.exec(str(script)).stdout == f"{script}\n"
    assert binfmt.exec("/sbin/ldconfig", "--version").stdout == "/sbin/ldconfig --version\n"
    r = run("multiarchctl", "audit", "--json", binfmt=binfmt, config=DEFAULT_POLICY)
    found = {(f["entry"], f["kind"], f["severity"]) for f in json.loads(r.stdout)["findings"]}
    assert found == {("shebang-sh", "native-magic", "high"), ("shebang", "native-magic", "high"),
                     ("gnu-static", "native-magic", "high"),
                     ("multiarch-x", "unknown-interpreter-flags", "high"),
                     ("shebang-off", "native-magic", "medium"),
                     ("sh-runs", "untrusted-interpreter", "medium"),
                     ("txt-bash", "untrusted-interpreter", "medium")}, found
    text = run("multiarchctl", "audit", binfmt=binfmt, config=DEFAULT_POLICY).stdout
    assert "its magic 23212f62696e2f7368 at offset 0 matches this host's own programs " \
           f"(scripts (#!)): each one it takes would run through {echo}" in text, text
    assert "its magic 7f454c4602010103000000000000000003003e00 at offset 0 matches this " \
           "host's own programs (x86_64 programs)" in text
    assert f"C (the rights of setuid programs) is given to {unknown}, which is no known " \
           "emulator" in text
    assert "/bin/sh is not to be trusted: interpreter /bin/sh (-> /usr/bin/dash) is a shell, " \
           "not an emulator" in text
