"""One bad file spoils only itself: whatever bytes sit at an interpreter's path (a QEMU cut
short, headers past its end, another ELF class, a script, an oversized file, a FIFO, a device),
the image builder refuses with a reason (core/cpu_image.py, fuzzed here), that architecture's
state says why, and every other architecture registers: at boot (`--once`) and in the daemon,
which keeps repairing and says degraded."""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multiarchd.core.cpu_image import (MAX_IMAGE, Broken, CannotCarry, carried_model,
                                       is_guarded, with_cpu_model)
from multiarchd.host.cpu_models import is_guarded_file
from tests.support.binfmt import PrivateBinfmt
from tests.support.bus import PrivateBus
from tests.support.commands import DaemonStarter, PolicyWriter, run, state_of
from tests.support.fuzz import examples
from tests.test_boot_record import boot

QEMU = Path("/usr/bin/qemu-aarch64-static")
MODEL = "max,pauth-impdef=on"
BASE = 0x400000


def tiny(machine: int = 62) -> bytes:
    """The smallest image the builder takes: an ELF64 header, a PT_LOAD of the whole file and
    a PT_NOTE after it (as QEMU's), and 16 bytes of code."""
    size = 64 + 2 * 56 + 16
    header = b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack(
        "<HHIQQQIHHHHHH", 2, machine, 1, BASE + size - 16, 64, 0, 0, 64, 56, 2, 0, 0, 0)
    load = struct.pack("<IIQQQQQQ", 1, 5, 0, BASE, BASE, size, size, 0x1000)
    note = struct.pack("<IIQQQQQQ", 4, 4, size - 16, BASE + size - 16, BASE + size - 16, 16,
                       16, 4)
    return header + load + note + bytes(16)


# (offset, struct format) of every header field the builder reads: the ELF header's, then the
# two program headers'.
FIELDS = [(4, "B"), (5, "B"), (16, "<H"), (18, "<H"), (24, "<Q"), (32, "<Q"), (54, "<H"),
          (56, "<H")] + [(64 + 56 * i + at, fmt) for i in range(2) for at, fmt in
                         [(0, "<I"), (8, "<Q"), (16, "<Q"), (32, "<Q"), (40, "<Q")]]
EDGES = st.sampled_from([0, 1, 2, 3, 4, 55, 56, 57, 64, 176, 2**15, 2**16 - 1, 2**31, 2**32 - 1,
                         2**47, 2**63 - 1, 2**63, 2**64 - 1, BASE, BASE + 160, BASE - 2**31])


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    """tiny(), x86-64 or arm64, with fields set to edge or random values, and maybe cut."""
    image = bytearray(tiny(draw(st.sampled_from([62, 183]))))
    for offset, fmt in draw(st.lists(st.sampled_from(FIELDS), max_size=4)):
        bits = 8 * struct.calcsize(fmt)
        value = draw(st.one_of(EDGES, st.integers(0, 2**bits - 1))) % 2**bits
        struct.pack_into(fmt, image, offset, value)
    return bytes(image[:draw(st.integers(0, len(image)))] if draw(st.booleans()) else image)


def built(image: bytes) -> bytes | None:
    """with_cpu_model's answer: the image, or None for a refusal (CannotCarry and no other)."""
    try:
        made = with_cpu_model(image, MODEL, b"\n#key\n")
    except CannotCarry:
        return None
    assert carried_model(made) == MODEL
    return made


def test_the_smallest_image_is_carried() -> None:
    for machine in (62, 183):
        assert built(tiny(machine)) is not None


@given(st.binary(max_size=400))
def test_any_bytes_are_carried_or_refused_with_a_reason(data: bytes) -> None:
    built(data)
    carried_model(data)
    assert is_guarded(data) == is_guarded(data[:64], len(data),
                                          lambda at, n: data[at:at + n]) is False


@settings(max_examples=examples(800))  # (each made image is 64 KiB: its segment is page-aligned)
@given(damaged())
def test_any_damaged_header_is_carried_or_refused_with_a_reason(image: bytes) -> None:
    made = built(image)
    carried_model(image)
    for data in (image, made or b""):  # judged from its headers and a read of its stub alike
        head = data[:200]
        assert is_guarded(data) == is_guarded(head, len(data), lambda at, n: data[at:at + n])


def test_a_guarded_file_is_known_from_its_headers_and_stub_read_not_mapped(
        trusted_dir: Path) -> None:
    """(A map of the file, touched after someone cut it short, kills the reader with SIGBUS.)"""
    made = trusted_dir / "made"
    made.write_bytes(with_cpu_model(QEMU.read_bytes(), MODEL, b"\n#key\n"))
    assert is_guarded_file(str(made)) and not is_guarded_file(str(QEMU))
    made.write_bytes(made.read_bytes()[:-200])  # cut in its stub: no longer one
    assert not is_guarded_file(str(made))
    os.mkfifo(trusted_dir / "fifo")
    assert not is_guarded_file(str(trusted_dir / "fifo"))


@settings(max_examples=examples(25))
@given(st.integers(0, 2**24))
def test_qemu_cut_anywhere_is_refused_as_broken(cut: int) -> None:
    whole = QEMU.read_bytes()
    cut = cut % len(whole)
    if cut < 4:
        return  # (no ELF magic: not an ELF, refused as such)
    with pytest.raises(Broken, match="cut short"):
        with_cpu_model(whole[:cut], MODEL)


def test_headers_past_the_end_and_an_oversized_file_are_refused() -> None:
    whole = bytearray(QEMU.read_bytes())
    struct.pack_into("<Q", whole, 32, len(whole) - 100)  # e_phoff: past the end, but for 100
    with pytest.raises(Broken, match="program headers end at byte"):
        with_cpu_model(bytes(whole), MODEL)
    with pytest.raises(CannotCarry, match="more than the 32 MiB"):
        with_cpu_model(QEMU.read_bytes().ljust(MAX_IMAGE + 1, b"\0"), MODEL)


# -- on the real kernel ---------------------------------------------------------------------------

def _bad(kind: str, path: Path) -> str:
    """Put a bad file of `kind` at `path`; what the aarch64 state says because of it."""
    whole = QEMU.read_bytes()
    if kind == "cut short":
        path.write_bytes(whole[:len(whole) // 3])
    elif kind == "headers past the end":
        path.write_bytes(whole[:64] + bytes(100))
    elif kind == "another ELF class":
        path.write_bytes(whole[:4] + b"\x01" + whole[5:])
    elif kind == "a script":
        path.write_text(f"#!/bin/sh\nexec {QEMU} \"$@\"\n")
    elif kind == "oversized":
        path.write_bytes(whole.ljust(MAX_IMAGE + 1, b"\0"))
    elif kind == "a FIFO":
        os.mkfifo(path)
    elif kind == "a device":
        os.mknod(path, 0o755 | 0o020000, os.makedev(1, 3))  # /dev/null's
    if kind not in ("a FIFO", "a device"):
        path.chmod(0o755)
    return {"cut short": "cannot run: cut short", "headers past the end": "cannot run: cut short",
            "another ELF class": "not a little-endian 64-bit ELF file",
            "a script": "not an ELF file", "oversized": "more than the 32 MiB",
            "a FIFO": "is not an executable file",
            "a device": "is not an executable file"}[kind]


EXIT = {"cut short": 1, "headers past the end": 1, "another ELF class": 0, "a script": 0,
        "oversized": 0, "a FIFO": 2, "a device": 2}
KINDS = ["cut short", "headers past the end", "another ELF class", "a script", "oversized",
         "a FIFO", "a device"]


@pytest.mark.parametrize("kind", KINDS)
def test_once_registers_every_other_architecture_and_says_why(
        binfmt: PrivateBinfmt, trusted_dir: Path, policy: PolicyWriter, kind: str) -> None:
    qemu = trusted_dir / "qemu-aarch64-static"
    says = _bad(kind, qemu)
    path = policy(f"arches:\n  aarch64: {{interpreter: {qemu}, cpu: '{MODEL}'}}\n"
                  "  s390x: {}\n  arm: {}\n")
    r = run("multiarchd", "--once", binfmt=binfmt, config=path)
    assert "Traceback" not in r.stdout + r.stderr, r.stderr
    # Not as the policy wants (1), a policy problem (2: the path names no executable file),
    # or as it wants, on QEMU's own model (0).
    assert r.returncode == EXIT[kind], r.stderr
    assert {"multiarch-s390x", "multiarch-arm"} <= set(binfmt.names())
    status = run("multiarchctl", "status", "--local", binfmt=binfmt, config=path)
    aarch64 = next(line for line in status.stdout.splitlines() if line.startswith("aarch64 "))
    assert says in status.stdout, status.stdout
    if kind in ("cut short", "headers past the end"):
        assert state_of(status.stdout, "aarch64") == "error"
        assert "multiarch-aarch64" not in binfmt.names()
    assert state_of(status.stdout, "s390x") == "active", aarch64


@pytest.mark.parametrize("cut", [500, 3_000_000])  # in its program headers; in a segment
def test_a_qemu_cut_under_the_daemon_spoils_only_its_architecture(
        binfmt: PrivateBinfmt, bus: PrivateBus, trusted_dir: Path, policy: PolicyWriter,
        start_daemon: DaemonStarter, state_dir: Path, cut: int) -> None:
    qemu = trusted_dir / "qemu-aarch64-static"
    shutil.copy(QEMU, qemu)
    path = policy(f"arches:\n  aarch64: {{interpreter: {qemu}, cpu: '{MODEL}'}}\n"
                  "  s390x: {}\n  arm: {}\n")
    d = start_daemon(path, binfmt, bus=bus)
    carried = state_dir / "cpu" / "aarch64"
    assert f"interpreter {carried}" in binfmt.read("multiarch-aarch64")
    since = d.mark()
    qemu.write_bytes(QEMU.read_bytes()[:cut])  # as cp does: the same file, cut
    d.wait_notify("STATUS=degraded", since)
    # It keeps repairing: an entry removed is back.
    since = d.mark()
    binfmt.write("multiarch-s390x", "-1")
    d.wait_until(lambda: "multiarch-s390x" in binfmt.names(), "s390x repaired")
    # A root Reconcile is answered, and says why.
    env = dict(os.environ, **bus.env)
    applied = run("multiarchctl", "apply", env=env)
    assert applied.returncode == 1 and "Traceback" not in applied.stderr, applied.stderr
    status = run("multiarchctl", "status", env=env)
    assert "degraded: 2 active, 1 error" in status.stdout, status.stdout
    assert state_of(status.stdout, "aarch64") == "error"
    assert f"{qemu} cannot run: cut short" in status.stdout
    # The entry the kernel holds stays: it runs the file made from the QEMU that was whole.
    assert f"interpreter {carried}" in binfmt.read("multiarch-aarch64")
    assert not any("Traceback" in line for line in d.lines)


def test_the_next_boot_does_the_same_with_the_qemu_still_cut(
        trusted_dir: Path, policy: PolicyWriter) -> None:
    """At boot, --once replays what the last run did (the boot record) or runs in full: either
    way, every other architecture registers and the cut QEMU's says why."""
    qemu = trusted_dir / "qemu-aarch64-static"
    qemu.write_bytes(QEMU.read_bytes()[:500])
    qemu.chmod(0o755)
    path = policy(f"arches:\n  aarch64: {{interpreter: {qemu}, cpu: '{MODEL}'}}\n"
                  "  s390x: {}\n  arm: {}\n")
    first = boot(path)
    assert first[0] == 1 and "Traceback" not in first[2], first
    assert set(first[3]) == {"multiarch-s390x", "multiarch-arm"}
    assert f"{qemu} cannot run: cut short" in first[1]
    again = boot(path)
    assert again[:4] == first[:4], (again, first)
