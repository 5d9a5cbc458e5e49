"""The boot record: `multiarchd --once` at the next boot does what the last converged run would
do into that boot's table without parsing or planning again, and says exactly what a full run
says; anything that changed in between (the policy, an interpreter or its directory, the other
tools' entries, the record's owner) makes it a full run again.

Each "boot" is a fresh private binfmt_misc instance, --once run inside it as the early unit runs
it (no --binfmt-dir); the record lives in the test's own cache directory.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from multiarchd.kernel import raw
from multiarchd.kernel.table import BinfmtTable
from multiarchd.reconciler.record import escape, unescape
from tests.support.binfmt import PrivateBinfmt
from tests.support.commands import DaemonStarter, PolicyWriter
from tests.support.paths import DEFAULT_POLICY
from tests.test_once import QEMU_AARCH64

# --once as the installed script runs it, then whether the YAML parser was ever imported.
_ONCE = ("import sys\nfrom multiarchd.cli.multiarchd import main\ncode = main()\n"
         "print('full run' if 'yaml' in sys.modules else 'replayed', file=sys.stderr)\n"
         "sys.exit(code)")


def boot(config: Path, *other_entries: str) -> tuple[int, str, str, dict[str, str], str]:
    """A fresh table holding `other_entries`, then --once in it: exit status, stdout, stderr,
    the table after, and how it ran ('replayed' or 'full run')."""
    with PrivateBinfmt() as ns:
        for line in other_entries:
            ns.write("register", line)
        r = subprocess.run(ns.enter(sys.executable, "-c", _ONCE, "--once", "--config",
                                    str(config)),
                           capture_output=True, text=True, timeout=120)
        stderr, _, how = r.stderr.rstrip("\n").rpartition("\n")
        # Which table is the first line, full run or replay: each boot's is a namespace of its
        # own, so it is checked here and the rest compared.
        table, _, stdout = r.stdout.partition("\n")
        assert table.startswith("binfmt_misc table: a private one: user namespace ") or \
            not r.stdout, r.stdout
        return r.returncode, stdout, stderr + "\n" if stderr else "", ns.snapshot(), how


@pytest.mark.kernel  # fresh private binfmt_misc tables (no user namespaces in a chroot)
def test_the_next_boot_replays_the_record_and_says_what_a_full_run_says() -> None:
    full = boot(DEFAULT_POLICY)
    assert full[4] == "full run" and full[0] == 0 and "converged: 33 active" in full[1]
    again = boot(DEFAULT_POLICY)
    assert again[4] == "replayed"
    assert again[:4] == full[:4]  # exit status, report, one line per entry registered, table


@pytest.mark.kernel  # fresh private binfmt_misc tables (no user namespaces in a chroot)
def test_other_tools_entries_are_part_of_what_the_record_holds() -> None:
    full = boot(DEFAULT_POLICY, QEMU_AARCH64)
    assert "overlaps foreign qemu-aarch64" in full[1]
    again = boot(DEFAULT_POLICY, QEMU_AARCH64)
    assert (again[4], again[:4]) == ("replayed", full[:4])
    # A boot whose table differs (here: without the other tool's entry) runs in full.
    without = boot(DEFAULT_POLICY)
    assert without[4] == "full run" and "overlaps" not in without[1]


def test_the_daemon_keeps_the_record_of_what_it_last_had_right(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter) -> None:
    config = policy("arches: all\n")
    d = start_daemon(config, binfmt)
    code, out, _, table, how = boot(config)
    assert (code, how, table) == (0, "replayed", binfmt.snapshot())
    since = d.mark()
    new = config.with_name("arches.yaml.new")
    new.write_text("arches:\n  all: {}\n  s390x: false\n")
    new.rename(config)
    d.wait_log("removed multiarch-s390x", since)
    code, out, _, table, how = boot(config)
    assert (code, how, table) == (0, "replayed", binfmt.snapshot())
    assert "multiarch-s390x" not in table


def test_the_service_started_with_a_record_is_ready_with_the_table_applied_and_told_once(
        binfmt: PrivateBinfmt, start_daemon: DaemonStarter) -> None:
    assert boot(DEFAULT_POLICY)[4] == "full run"  # the record (the daemon shares the cache)
    d = start_daemon(DEFAULT_POLICY, binfmt, ready=False)
    d.wait_notify("READY=1")
    assert len(binfmt.names()) == 33
    # Said from the record, before the rest of the daemon was imported; then from its first run.
    assert d.wait_notify("STATUS=") == "STATUS=converged: 33 active; starting"
    d.wait_until(lambda: "STATUS=converged: 33 active" in d.messages, "the first run's STATUS")
    d.signal(signal.SIGTERM)  # straight away: still a clean stop
    d.wait_notify("STOPPING=1")
    assert d.stop() == 0
    registered = [line for line in d.lines if " registered multiarch-" in line]
    assert len(registered) == len(set(registered)) == 33  # the first full run redid nothing


@pytest.mark.kernel  # fresh private binfmt_misc tables (no user namespaces in a chroot)
def test_a_policy_edit_is_a_full_run(policy: PolicyWriter) -> None:
    config = policy("arches: all\n")
    assert boot(config)[4] == "full run"
    assert boot(config)[4] == "replayed"
    policy("arches:\n  all: {}\n  s390x: false\n")
    code, out, _, table, how = boot(config)
    assert (code, how) == (0, "full run")
    assert "multiarch-s390x" not in table and len(table) == 32
    # An edit that keeps the size and the modification time (two saves within one clock tick
    # look so): the text is what counts.
    before = config.stat()
    config.write_text("arches: {}\n\n")  # as long as "arches: all\n"
    assert config.stat().st_size == len("arches: all\n")
    os.utime(config, ns=(before.st_atime_ns, before.st_mtime_ns))
    code, out, _, table, how = boot(config)
    assert (how, table) == ("full run", {})
    policy("arches:\n  all: {}\n  s390x: false\n")
    # A drop-in appearing is a change of the policy too.
    policy("arches:\n  s390x: true\n", "arches.d/50-s390x.yaml")
    code, out, _, table, how = boot(config)
    assert (how, "multiarch-s390x" in table) == ("full run", True)


def test_an_interpreter_made_untrusted_is_never_replayed(
        policy: PolicyWriter, trusted_dir: Path) -> None:
    qemu = trusted_dir / "qemu-s390x-static"
    shutil.copy("/usr/bin/qemu-s390x-static", qemu)
    config = policy(f"arches:\n  s390x: {{interpreter: {qemu}}}\n")
    assert boot(config)[3].keys() == {"multiarch-s390x"}
    assert boot(config)[4] == "replayed"
    qemu.chmod(0o757)  # writable by others: refused, whatever the record says
    code, out, _, table, how = boot(config)
    assert (code, how, table) == (2, "full run", {})  # 2: the policy names it
    assert "writable by others" in out
    qemu.chmod(0o755)
    assert boot(config)[3].keys() == {"multiarch-s390x"}
    trusted_dir.chmod(0o777)  # its directory too
    try:
        code, out, _, table, how = boot(config)
    finally:
        trusted_dir.chmod(0o755)
    assert (how, table) == ("full run", {})
    qemu.unlink()  # and an emulator gone
    code, out, _, table, how = boot(config)
    assert (how, table) == ("full run", {})


def test_a_table_holding_our_entries_already_is_a_full_run_that_changes_nothing(
        binfmt: PrivateBinfmt) -> None:
    assert boot(DEFAULT_POLICY)[4] == "full run"
    first = subprocess.run(binfmt.enter(sys.executable, "-c", _ONCE, "--once", "--config",
                                        str(DEFAULT_POLICY)), capture_output=True, text=True)
    assert first.stderr.splitlines()[-1] == "replayed"
    inodes = {n: os.stat(os.path.join(binfmt.path, n)).st_ino for n in binfmt.names()}
    second = subprocess.run(binfmt.enter(sys.executable, "-c", _ONCE, "--once", "--config",
                                         str(DEFAULT_POLICY)), capture_output=True, text=True)
    assert (second.returncode, second.stderr) == (0, "full run\n")
    assert {n: os.stat(os.path.join(binfmt.path, n)).st_ino for n in binfmt.names()} == inodes


@pytest.mark.kernel  # fresh private binfmt_misc tables (no user namespaces in a chroot)
def test_a_record_others_could_have_written_is_not_believed() -> None:
    assert boot(DEFAULT_POLICY)[4] == "full run"
    record = Path(os.environ["CACHE_DIRECTORY"], "boot-record")
    record.chmod(0o666)
    assert boot(DEFAULT_POLICY)[4] == "full run"  # and it is written anew, root's
    assert record.stat().st_mode & 0o777 == 0o644
    assert boot(DEFAULT_POLICY)[4] == "replayed"


@pytest.mark.kernel  # fresh private binfmt_misc tables (no user namespaces in a chroot)
def test_other_arguments_are_a_full_run() -> None:
    assert boot(DEFAULT_POLICY)[4] == "full run"
    with PrivateBinfmt() as ns:
        r = subprocess.run(ns.enter(sys.executable, "-c", _ONCE, "--once", "--config",
                                    str(DEFAULT_POLICY), "--log-target", "stderr"),
                           capture_output=True, text=True)
        assert r.stderr.splitlines()[-1] == "replayed"  # the log target changes no fact
    with PrivateBinfmt() as ns:
        r = subprocess.run(ns.enter(sys.executable, "-c", _ONCE, "--once", "--dry-run",
                                    "--config", str(DEFAULT_POLICY)),
                           capture_output=True, text=True)
        assert r.stderr.splitlines()[-1] == "full run" and ns.names() == []


@pytest.mark.parametrize("file, text", [("status", "-1"), ("status", "0"), ("register", "-1"),
                                        ("..", "-1"), ("a/b", "0"), ("multiarch-x", ":x:M::a::/b:")])
def test_no_write_reaches_status_nor_anything_but_a_line_reaches_register(
        tmp_path: Path, file: str, text: str) -> None:
    with pytest.raises(ValueError, match="refusing"):
        raw.write(str(tmp_path / "nothing-here"), file, text)
    table = BinfmtTable(str(tmp_path))  # and so through the table, whose only writer it is
    if text == "-1":
        with pytest.raises(ValueError, match="refusing"):
            table.remove(file)
    elif text == "0":
        with pytest.raises(ValueError, match="refusing"):
            table.set_enabled(file, False)


@pytest.mark.parametrize("text", ["", "a\tb", "x\\ty\nz\\", "\\\\x7f\\n", "\\", "é\t\n\\n"])
def test_escaping_keeps_every_field_whole(text: str) -> None:
    assert "\t" not in escape(text) and "\n" not in escape(text)
    assert unescape(escape(text)) == text


@given(st.text())
def test_escaping_round_trips_any_text(text: str) -> None:
    assert unescape(escape(text)) == text


# -- a record that cannot be stale or partial --------------------------------------------------

def _record() -> Path:
    return Path(os.environ["CACHE_DIRECTORY"], "boot-record")


@pytest.mark.kernel  # fresh private binfmt_misc tables (no user namespaces in a chroot)
def test_a_record_cut_short_anywhere_is_a_full_run_that_registers_everything() -> None:
    full = boot(DEFAULT_POLICY)
    assert full[4] == "full run"
    whole = _record().read_bytes()
    rng = __import__("random").Random(16)
    # (all but the last newline, without which a record is still whole)
    cuts = sorted({*rng.sample(range(1, len(whole) - 1), 24), len(whole) - 2, len(whole) - 3})
    for cut in cuts:
        _record().write_bytes(whole[:cut])
        code, out, err, table, how = boot(DEFAULT_POLICY)
        assert (code, how, len(table)) == (0, "full run", 33), (cut, err)
        assert "Traceback" not in err and table == full[3]
    _record().write_bytes(whole + b"log\tMESSAGE=more\n")  # something appended
    assert boot(DEFAULT_POLICY)[4] == "full run"


@pytest.mark.kernel  # fresh private binfmt_misc tables (no user namespaces in a chroot)
def test_a_record_too_large_is_neither_kept_nor_read(policy: PolicyWriter) -> None:
    custom = "".join(f"  - {{name: c{i}, extension: e{i}, interpreter: /usr/bin/true}}\n"
                     for i in range(2000))
    config = policy("arches: all\ncustom:\n" + custom)
    for _ in range(2):
        code, out, err, table, how = boot(config)
        assert (code, how, len(table)) == (0, "full run", 2033), err
    assert not _record().exists()
    assert boot(DEFAULT_POLICY)[4] == "full run"
    whole = _record().read_text()
    _record().write_text(whole[:-1] + "x" * (1 << 20) + "\n")  # over the limit, however sealed
    assert boot(DEFAULT_POLICY)[4] == "full run"


@pytest.mark.parametrize("kept", ["cache", "runtime"])
@pytest.mark.kernel  # fresh private binfmt_misc tables (no user namespaces in a chroot)
def test_a_fifo_where_a_kept_file_goes_hangs_nothing(kept: str) -> None:
    directory = Path(os.environ["CACHE_DIRECTORY" if kept == "cache" else "RUNTIME_DIRECTORY"])
    directory.mkdir(parents=True, exist_ok=True)
    name = directory / ("boot-record" if kept == "cache" else "native")
    saved = name.read_bytes() if name.exists() else None
    name.unlink(missing_ok=True)
    os.mkfifo(name)
    try:
        code, out, err, table, how = boot(DEFAULT_POLICY)  # (boot() times out at 120 s)
        assert (code, how, len(table)) == (0, "full run", 33), err
    finally:
        name.unlink(missing_ok=True)
        if saved is not None:
            name.write_bytes(saved)


def test_an_interpreter_on_a_mount_made_noexec_is_a_full_run(
        policy: PolicyWriter, trusted_dir: Path) -> None:
    (trusted_dir / "bin").mkdir()
    shutil.copy("/usr/bin/qemu-s390x-static", trusted_dir / "bin" / "qemu-s390x-static")
    config = policy(f"arches:\n  s390x: {{interpreter: {trusted_dir}/bin/qemu-s390x-static, "
                    "flags: [P]}\n")
    assert boot(config)[3].keys() == {"multiarch-s390x"}
    assert boot(config)[4] == "replayed"
    where = str(trusted_dir / "bin")
    subprocess.run(["mount", "--bind", where, where], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,noexec", where], check=True)
        code, out, err, table, how = boot(config)
    finally:
        subprocess.run(["umount", where], check=True)
    assert (code, how, table) == (2, "full run", {}), out


@pytest.mark.kernel  # fresh private binfmt_misc tables (no user namespaces in a chroot)
def test_the_code_is_known_by_its_content(tmp_path: Path) -> None:
    """An edit of the catalog that keeps its size and modification time still counts."""
    import multiarchd
    copy = Path("/var/lib") / f"multiarchd-code-{os.getpid()}"
    shutil.copytree(Path(multiarchd.__file__).parent, copy / "multiarchd")
    env = {**os.environ, "PYTHONPATH": str(copy)}
    try:
        def boot_with_copy() -> str:
            with PrivateBinfmt() as ns:
                r = subprocess.run(ns.enter(sys.executable, "-c", _ONCE, "--once", "--config",
                                            str(DEFAULT_POLICY)),
                                   capture_output=True, text=True, timeout=120, env=env)
                return r.stderr.splitlines()[-1]
        assert boot_with_copy() == "full run"
        assert boot_with_copy() == "replayed"
        catalog = copy / "multiarchd" / "catalog" / "catalog.toml"
        before = catalog.stat()
        text = catalog.read_text()
        catalog.write_text(text.replace("\\xff", "\\xfe", 1))
        os.utime(catalog, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert catalog.stat().st_size == before.st_size
        assert boot_with_copy() == "full run"
    finally:
        shutil.rmtree(copy)


def test_a_drop_in_name_holding_a_newline_is_not_two_names(tmp_path: Path) -> None:
    from multiarchd.identity import listing_of
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "50-off.yaml\nzz").touch()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "50-off.yaml").touch()
    (tmp_path / "b" / "zz").touch()
    assert listing_of(str(tmp_path / "a")) != listing_of(str(tmp_path / "b"))


def test_only_the_boot_path_keeps_the_record(binfmt: PrivateBinfmt, policy: PolicyWriter) -> None:
    from tests.support.commands import run
    r = run("multiarchctl", "apply", "--local", binfmt=binfmt, config=policy("arches: all\n"))
    assert r.returncode == 0, r.stderr
    assert not _record().exists()


# -- every input a run reads is in the record --------------------------------------------------

_AUDITED = """
import json, os, sys
seen = []
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes)):
        flags = args[2] if isinstance(args[2], int) else 0
        writes = (args[1] or "r").strip("rbt") if isinstance(args[1], str) else \\
            flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
        if not writes:
            seen.append(os.fsdecode(args[0]))
    elif event in ("os.listdir", "os.scandir") and args and isinstance(args[0], (str, bytes)):
        seen.append(os.fsdecode(args[0]))
sys.addaudithook(hook)
if os.environ.get("EXTRA_INPUT"):  # a new input, as a future change might add one
    import multiarchd.policy.files as files
    plain = files.read_text
    def read_text(path, *rest):
        open(os.environ["EXTRA_INPUT"]).read()
        return plain(path, *rest)
    files.read_text = read_text
from multiarchd.cli.multiarchd import main
code = main()
sys.addaudithook(lambda *a: None)
with os.fdopen(int(os.environ["AUDIT_FD"]), "w") as out:
    json.dump(seen, out)
sys.exit(code)
"""


def _unkeyed(config: Path, extra: str = "") -> list[str]:
    """What a full --once read (opened for reading, or listed) that its record does not key."""
    import json
    import multiarchd
    from multiarchd.reconciler.record import unescape
    _record().unlink(missing_ok=True)  # a full run, not a replay
    read, write = os.pipe()
    env = dict(os.environ, AUDIT_FD=str(write), EXTRA_INPUT=extra)
    with PrivateBinfmt() as ns:
        r = subprocess.run(ns.enter(sys.executable, "-c", _AUDITED, "--once", "--config",
                                    str(config)), capture_output=True, text=True, timeout=120,
                           env=env, pass_fds=(write,))
    os.close(write)
    with os.fdopen(read) as f:
        inputs = set(json.load(f))
    assert r.returncode == 0, r.stderr
    keyed = set()
    for line in _record().read_text().splitlines():
        kind, *fields = line.split("\t")
        if kind in ("file", "text", "list"):
            keyed.add(unescape(fields[0]))
    code = (os.path.dirname(multiarchd.__file__), sys.prefix, sys.base_prefix,
            "/usr/lib/python3")  # the code, Python and PyYAML: the record's code key
    machine = ("/proc/cpuinfo", "/proc/cmdline", "/proc/sys/kernel/random/boot_id")
    kept = (os.environ["CACHE_DIRECTORY"], os.environ["RUNTIME_DIRECTORY"],
            "/tmp/multiarchd-probe-")  # multiarchd's own: kept files, the probes' scratch
    return sorted(p for p in inputs if p.startswith("/") and p not in keyed
                  and p not in machine and "/binfmt_misc" not in p
                  and not p.startswith(code + kept) and not p.startswith("/proc/self/"))


@pytest.mark.kernel  # fresh private binfmt_misc tables
def test_every_input_a_run_reads_is_keyed_by_its_record(policy: PolicyWriter,
                                                        trusted_dir: Path) -> None:
    """Whatever a full run opens or lists is in the record (or is the code, the machine, the
    table, or multiarchd's own kept files, which the record keys otherwise); an input added to
    a run without going through the recorder is caught."""
    shutil.copy("/usr/bin/qemu-s390x-static", trusted_dir / "qemu-s390x-static")
    config = policy(f"arches:\n  all: {{}}\n  s390x: {{interpreter: "
                    f"{trusted_dir}/qemu-s390x-static}}\n")
    policy("arches: {riscv64: false}\n", "arches.d/50-x.yaml")
    assert _unkeyed(config) == []
    hostname = "/etc/hostname" if os.path.exists("/etc/hostname") else "/etc/os-release"
    assert _unkeyed(config, extra=hostname) == [hostname]


def test_no_cut_of_a_record_is_ever_replayed(binfmt: PrivateBinfmt) -> None:
    """Cut at every line's end (and either side of it) and every 97th byte: not one is
    replayed, nothing is written, and the whole record still is."""
    from multiarchd.reconciler.record import replay
    assert boot(DEFAULT_POLICY)[4] == "full run"
    whole = _record().read_bytes()
    ends = {i for i, b in enumerate(whole) if b == ord("\n")}
    cuts = sorted(({c for e in ends for c in (e - 1, e, e + 1)} | set(range(0, len(whole), 97)))
                  - {len(whole) - 1, len(whole)})  # (the last newline alone: still whole)
    assert len(cuts) > 157
    told: list[dict[str, str]] = []
    for cut in cuts:
        _record().write_bytes(whole[:cut])
        assert replay(str(DEFAULT_POLICY), binfmt.path, told.append) is None, cut
    assert binfmt.names() == [] and {t.get("PRIORITY") for t in told} == {"7"}  # why, only
    assert all(t["MESSAGE"].startswith("boot record not replayed: ") for t in told)
    _record().write_bytes(whole)
    assert replay(str(DEFAULT_POLICY), binfmt.path, told.append) is not None
    assert len(binfmt.names()) == 33


@pytest.mark.kernel  # fresh private binfmt_misc tables
def test_a_table_not_as_recorded_after_a_replay_is_a_full_run() -> None:
    """The replay reads the table back: where it is not what the record says it will be (here
    a record whose expected table was altered, and sealed again), a full run decides."""
    from multiarchd.reconciler.record import seal, unsealed
    full = boot(DEFAULT_POLICY)
    body = unsealed(_record().read_text())
    assert body is not None
    lines = body.split("\n")
    i = next(n for n, line in enumerate(lines) if line.startswith("after\t"))
    kind, name, data = lines[i].split("\t")
    lines[i] = "\t".join([kind, name, data.replace("656e61626c6564", "64697361626c6564", 1)])
    _record().write_text(seal("\n".join(lines)))
    code, out, err, table, how = boot(DEFAULT_POLICY)
    assert (code, how, table) == (0, "full run", full[3]), err
