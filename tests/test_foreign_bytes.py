"""Another tool's entries may hold any bytes the kernel takes: in the name, the interpreter, the
extension, the magic and mask, with any flags and offset. None of them may stop the daemon or
garble what it says: a run, the start, the boot record, status (text and JSON, through the
daemon and --local), the audit, D-Bus and the metrics file all carry them as readable text
(bytes that are not UTF-8 as \\xHH)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, event, given, settings, strategies as st

from multiarchd.model.registration import printable
from tests.support.binfmt import PrivateBinfmt
from tests.support.bus import PrivateBus
from tests.support.commands import DaemonStarter, PolicyWriter
from tests.support.daemon import DaemonProcess
from tests.support.lines import Lines
from tests.support.paths import BIN
from tests.test_boot_record import _ONCE
from tests.test_dbus import IFACE, NAME, PATH

# The issue's own: an interpreter path that is not UTF-8, with a control character.
ODD = b":odd:E::odd::/nowhere/\xff\x01x:"
OURS = b"multiarch-s390x"
# Bytes that have broken programs before: not UTF-8, a UTF-8-encoded surrogate, controls, the
# record's and the exporter's own separators, quotes; then any byte at all.
TELLING = b"\xff\xfe\x80\xc3\xed\xa0\x01\x1b\t\n\\\"'= %"


def write(ns: PrivateBinfmt, name: bytes, data: bytes) -> None:
    """Write to `register` or an entry as another tool would: bytes, to this private table."""
    fd = os.open(os.path.join(os.fsencode(ns.path), name), os.O_WRONLY)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def clean_run(r: subprocess.CompletedProcess[bytes], *codes: int) -> str:
    """What a command printed, as UTF-8 text, once it exited as expected without a traceback."""
    err = r.stderr.decode()
    assert r.returncode in codes and "Traceback" not in err, (r.returncode, err)
    return r.stdout.decode()


# -- the case ------------------------------------------------------------------------------
def boot(config: Path, *lines: bytes) -> tuple[int, str, str]:
    """A fresh table holding other tools' `lines`, then --once in it as the early unit runs it:
    its exit status, what it printed after the table's line, and whether it replayed."""
    with PrivateBinfmt() as ns:
        for line in lines:
            write(ns, b"register", line)
        r = subprocess.run(ns.enter(sys.executable, "-c", _ONCE, "--once", "--config",
                                    str(config)), capture_output=True, timeout=120)
    how = r.stderr.decode().rstrip("\n").rpartition("\n")[2]
    return r.returncode, clean_run(r, 0, 1).partition("\n")[2], how


@pytest.mark.kernel
def test_an_interpreter_path_that_is_not_utf8_neither_stops_once_nor_the_daemon(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter) -> None:
    config = policy("arches: {s390x: {}}\n")
    full = boot(config, ODD)
    assert full[0] == 0 and full[2] == "full run"
    shown = "  odd  enabled  /nowhere/\\xff\\x01x"
    assert shown in full[1], full[1]
    replayed = boot(config, ODD)  # from the record the first kept
    assert replayed[0::2] == (0, "replayed") and shown in replayed[1], replayed
    # The daemon starting where a record is kept, with that entry there: its first run keeps
    # a record too.
    write(binfmt, b"register", ODD)
    d = start_daemon(config, binfmt)
    status = clean_run(subprocess.run(
        [str(BIN / "multiarchctl"), "status", "--local", "--config", str(config),
         "--binfmt-dir", binfmt.path], capture_output=True, timeout=60), 0, 1)
    assert shown in status, status
    assert d.proc.poll() is None and not any("Traceback" in x for x in d.lines), d.lines


@pytest.mark.kernel
def test_an_entry_put_in_place_of_ours_is_repaired_and_told_readably(
        binfmt: PrivateBinfmt, bus: PrivateBus, policy: PolicyWriter,
        start_daemon: DaemonStarter) -> None:
    d = start_daemon(policy("arches: {s390x: {}}\n"), binfmt, bus=bus)
    with monitor(bus) as signals:
        since = d.mark()
        d.signal(signal.SIGSTOP)  # the kernel keeps the events meanwhile
        try:
            write(binfmt, OURS, b"-1")
            write(binfmt, b"register", b":multiarch-s390x:E::x\xff::/nowhere/\xff\x01x:P")
        finally:
            d.signal(signal.SIGCONT)
        line = d.wait_log("repaired multiarch-s390x", since)
        said = "interpreter /nowhere/\\xff\\x01x -> /usr/bin/qemu-s390x-static"
        assert said in line and "match extension .x\\xff -> magic" in line, line
        reconciled = next_signal(signals, "Reconciled")
        assert reconciled[0][0][:2] == ["replace", "multiarch-s390x"]
        assert said in reconciled[0][0][2], reconciled


# -- every field, through a running daemon ---------------------------------------------------------
def octets(avoid: bytes, min_size: int, max_size: int) -> st.SearchStrategy[bytes]:
    byte = st.one_of(st.sampled_from(TELLING), st.integers(1, 255)).filter(
        lambda b: b not in avoid)
    return st.lists(byte, min_size=min_size, max_size=max_size).map(bytes)


@dataclass(frozen=True)
class Other:
    """One entry of another tool: its name, its register line, and an interpreter to make."""

    name: bytes
    line: bytes
    enabled: bool
    interpreter: bytes | None  # a file to make there before registering (the F flag)


@st.composite
def others(draw: st.DrawFn, trusted: bytes) -> Other:
    sep = draw(st.sampled_from(b":#\xff\x01"))
    avoid = bytes([sep, 0])
    # Now and then one named as ours (multiarchd's to remove), or taking our entry's name.
    name = draw(st.sampled_from([b"", b"", b"", b"", b"multiarch-", OURS]))
    if name != OURS:
        name += draw(octets(avoid + b"/", 1, 20))
    assume(name not in (b".", b"..", b"register", b"status") and avoid[0] not in name)
    flags = "".join(sorted(draw(st.sets(st.sampled_from("POCF"))), key="POCF".index))
    made = None
    if "F" in flags:  # the kernel opens it at once: a file of that name, in a trusted place
        made = trusted + b"/" + draw(octets(avoid + b"/", 1, 20))
        interpreter = made
    else:
        interpreter = draw(octets(avoid, 1, 40))
    if draw(st.booleans()):
        kind, offset, mask = b"E", b"", b""
        magic = draw(octets(avoid + b"/", 1, 12))
    else:
        kind = b"M"
        # Now and then the start of s390x's ELF header: it overlaps ours, and is disabled.
        raw = draw(st.one_of(st.binary(min_size=1, max_size=16),
                             st.sampled_from([b"\x7fELF", b"\x7fELF\x02\x02\x01"])))
        offset = b"0" if raw.startswith(b"\x7fELF") else str(draw(st.integers(0, 128))).encode()
        magic = b"".join(b"\\x%02x" % b for b in raw)
        mask = b"".join(b"\\x%02x" % b for b in draw(
            st.binary(min_size=len(raw), max_size=len(raw)))) if draw(st.booleans()) else b""
    s = bytes([sep])
    line = s + s.join([name, kind, offset, magic, mask, interpreter, flags.encode()])
    return Other(name, line, draw(st.booleans()), made)


@dataclass
class Served:
    daemon: DaemonProcess
    binfmt: PrivateBinfmt
    bus: PrivateBus
    signals: Lines
    config: Path
    metrics: Path
    trusted: Path


@contextmanager
def monitor(bus: PrivateBus) -> Iterator[Lines]:
    """The daemon's signals, as busctl monitor prints them, once it listens."""
    proc = subprocess.Popen(["busctl", "--system", "--json=short", "monitor", NAME],
                            stdout=subprocess.PIPE, env=dict(os.environ, **bus.env))
    assert proc.stdout is not None
    try:
        signals = Lines(proc.stdout)
        # busctl monitor starts asynchronously: a first signal proves it listens.
        bus.busctl("call", NAME, PATH, IFACE, "Reload")
        assert next_signal(signals, "PropertiesChanged") is not None, "busctl heard nothing"
        yield signals
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def next_signal(signals: Lines, member: str, timeout: float = 15) -> Any:
    """The arguments of the next signal `member`; None when none came within the timeout."""
    while (line := signals.next(timeout)) is not None:
        msg = json.loads(line)
        if msg.get("type") == "signal" and msg.get("member") == member:
            return msg["payload"]["data"]
    return None


def changed(signals: Lines, until: Callable[[dict[str, Any]], bool]) -> bool:
    """Read PropertiesChanged signals until `until(properties)` holds for one; False when
    none came within the timeout."""
    while (args := next_signal(signals, "PropertiesChanged")) is not None:
        if until({k: v["data"] for k, v in args[1].items()}):
            return True
    return False


@pytest.fixture
def served(binfmt: PrivateBinfmt, bus: PrivateBus, policy: PolicyWriter,
           start_daemon: DaemonStarter, trusted_dir: Path, tmp_path: Path) -> Iterator[Served]:
    # Others' entries that overlap ours are disabled: a write to each, named with any bytes.
    config = policy("arches: {s390x: {}}\nforeign_entries: disable\n")
    (tmp_path / "textfile").mkdir()
    metrics = tmp_path / "textfile" / "multiarchd.prom"
    d = start_daemon(config, binfmt, "--metrics-textfile", metrics, bus=bus)
    with monitor(bus) as signals:
        yield Served(d, binfmt, bus, signals, config, metrics, trusted_dir)


def foreign_names(props: dict[str, Any]) -> set[str] | None:
    if "ForeignEntries" not in props:
        return None
    return {f[0] for f in props["ForeignEntries"]}


def check_everything_answers(s: Served, expected: set[str]) -> None:
    assert s.daemon.proc.poll() is None, "\n".join(s.daemon.lines)
    r = s.bus.busctl("--json=short", "call", NAME, PATH, "org.freedesktop.DBus.Properties",
                     "GetAll", "s", IFACE)
    assert r.returncode == 0, r.stderr
    props = {k: v["data"] for k, v in json.loads(r.stdout)["data"][0].items()}
    assert {f[0] for f in props["ForeignEntries"]} == expected
    for name in props:
        assert s.bus.busctl("get-property", NAME, PATH, IFACE, name).returncode == 0, name
    r = s.bus.busctl("--json=short", "call", NAME, PATH, IFACE, "Plan")
    assert r.returncode == 0, r.stderr
    env = dict(os.environ, **s.bus.env)

    def ctl(*args: str) -> str:
        return clean_run(subprocess.run([str(BIN / "multiarchctl"), *args], env=env,
                                        capture_output=True, timeout=60), 0, 1)
    text = ctl("status")
    assert all(name in text for name in expected), text
    assert {f["name"] for f in json.loads(ctl("status", "--json"))["foreign"]} == expected
    assert {f["entry"] for f in json.loads(ctl("audit", "--json"))["findings"]} <= \
        expected | {"multiarch-s390x"}
    local = ("--local", "--config", str(s.config), "--binfmt-dir", s.binfmt.path)
    assert {f["name"] for f in json.loads(ctl("status", "--json", *local))["foreign"]} == \
        expected
    sample = re.compile(r'^[a-z_]+(\{([a-z_]+="([^"\\\n]|\\[\\"n])*",?)*\})? [0-9.e+-]+$')
    for line in s.metrics.read_bytes().decode().splitlines():
        assert line.startswith("# ") or sample.match(line), line
    s.daemon.mark()  # what it said so far: no traceback, no byte shown as Python's \udcXX
    assert not any("Traceback" in x or "\\udc" in x for x in s.daemon.lines), \
        "\n".join(s.daemon.lines)


@pytest.mark.kernel
@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_any_bytes_in_other_tools_entries_are_shown_and_never_stop_the_daemon(
        served: Served, data: st.DataObject) -> None:
    s = served
    entries = data.draw(st.lists(others(os.fsencode(s.trusted)), min_size=1, max_size=3,
                                 unique_by=lambda o: o.name))
    theirs = [o for o in entries if not o.name.startswith(b"multiarch-")]
    for o in entries:
        event("takes our entry's name" if o.name == OURS else "named as ours"
              if o.name.startswith(b"multiarch-") else "another name")
        event("F" if o.interpreter else "without F")
        event("s390x's magic" if b"\\x7f\\x45\\x4c\\x46" in o.line else "another match")
    expected = {printable(os.fsdecode(o.name)) for o in theirs}
    table = os.fsencode(s.binfmt.path)
    ours = Path(os.fsdecode(os.path.join(table, OURS))).read_bytes()
    # Stopped meanwhile, so that one may take our entry's name; the kernel keeps the events.
    s.daemon.signal(signal.SIGSTOP)
    try:
        for o in entries:
            if o.name == OURS:
                write(s.binfmt, OURS, b"-1")
            if o.interpreter is not None:
                os.link("/usr/bin/true", o.interpreter)
            try:
                write(s.binfmt, b"register", o.line)
            except OSError as e:
                raise AssertionError(f"the kernel refused {o.line!r}: {e}") from None
            if not o.enabled:
                write(s.binfmt, o.name, b"0")
    finally:
        s.daemon.signal(signal.SIGCONT)
    try:
        if expected:  # what the daemon did of itself, seen from outside
            assert changed(s.signals, lambda p: foreign_names(p) == expected), \
                "the daemon never said it saw them\n" + "\n".join(s.daemon.lines)
        r = s.bus.busctl("--json=short", "call", NAME, PATH, IFACE, "Reconcile")
        assert r.returncode == 0 and json.loads(r.stdout)["data"][0] == "converged", r
        # Ours is as the policy wants, whatever took its name; the rest of our names removed.
        assert [n for n in os.listdir(table) if n.startswith(b"multiarch-")] == [OURS]
        assert Path(os.fsdecode(os.path.join(table, OURS))).read_bytes() == ours
        check_everything_answers(s, expected)
    finally:
        for o in theirs:
            write(s.binfmt, o.name, b"-1")
        for o in entries:
            if o.interpreter is not None and os.path.lexists(o.interpreter):
                os.unlink(o.interpreter)
        if expected:
            assert changed(s.signals, lambda p: foreign_names(p) == set()), \
                "\n".join(s.daemon.lines)
