"""The kernel table module against a real (private) binfmt_misc instance."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from multiarchd.kernel.refusals import KernelError
from multiarchd.kernel.table import BinfmtTable
from multiarchd.model.flags import Flags
from multiarchd.model.registration import Registration

from tests.support.binfmt import PrivateBinfmt


def test_instance_is_private_and_starts_empty(binfmt: PrivateBinfmt) -> None:
    assert binfmt.names() == []
    assert BinfmtTable(binfmt.path).read().entries == ()


@pytest.mark.parametrize("reg", [
    Registration("multiarch-a", "/bin/true", Flags.parse("FP"), b"\x7fELF\x02\x01:\\\n ",
                 b"\xff\xff\xff\xff\xff\xfe\xff\xff\x00\xff", 0),
    Registration("multiarch-b", "/bin/true", Flags.parse("C"), b"MZ", None, 200),
    Registration("multiarch-c", "/bin/true", Flags(), extension="exe"),
    Registration("multiarch-d", "/bin/true", Flags.parse("POCF"), bytes(range(256))[:128]),
])
def test_what_is_registered_reads_back_equal(binfmt: PrivateBinfmt, reg: Registration) -> None:
    table = BinfmtTable(binfmt.path)
    table.register(reg)
    [back] = table.read().entries
    assert back.registration == reg and back.enabled


def test_enable_disable_remove(binfmt: PrivateBinfmt) -> None:
    table = BinfmtTable(binfmt.path)
    table.register(Registration("multiarch-x", "/bin/true", Flags(), b"XYZ"))
    table.set_enabled("multiarch-x", False)
    assert binfmt.read("multiarch-x").startswith("disabled\n")
    table.set_enabled("multiarch-x", True)
    assert binfmt.read("multiarch-x").startswith("enabled\n")
    table.remove("multiarch-x")
    assert binfmt.names() == []


def test_registration_order_is_visible(binfmt: PrivateBinfmt) -> None:
    table = BinfmtTable(binfmt.path)
    for name in ("zz", "aa", "mm"):
        table.register(Registration(name, "/bin/true", Flags(), name.encode()))
    assert [e.name for e in table.read().entries] == ["zz", "aa", "mm"]


def test_refusals_are_explained(binfmt: PrivateBinfmt, tmp_path: Path) -> None:
    table = BinfmtTable(binfmt.path)
    ok = Registration("multiarch-x", "/bin/true", Flags(), b"XYZ")
    table.register(ok)
    cases = [
        (ok, errno.EEXIST, "already exists"),
        (Registration("multiarch-y", str(tmp_path / "nope"), Flags.parse("F"), b"Y"),
         errno.ENOENT, "does not exist"),
        (Registration("multiarch-z", "/bin/true", Flags(), b"AB", b"\xff"), errno.EINVAL,
         "malformed"),
    ]
    plain = tmp_path / "plain"
    plain.write_text("")
    cases.append((Registration("multiarch-w", str(plain), Flags.parse("F"), b"W"), errno.EACCES,
                  "not executable"))
    for reg, err, words in cases:
        with pytest.raises(KernelError) as caught:
            table.register(reg)
        assert caught.value.errno == err, reg
        assert words in str(caught.value) and reg.name in str(caught.value)
    with pytest.raises(KernelError, match="no such entry"):
        table.remove("multiarch-gone")
    assert binfmt.names() == ["multiarch-x"]


def test_never_writes_to_status_or_register_as_an_entry(binfmt: PrivateBinfmt) -> None:
    table = BinfmtTable(binfmt.path)
    for name in ("status", "register", "../status"):
        with pytest.raises(ValueError):
            table.remove(name)
    assert open(os.path.join(binfmt.path, "status")).read() == "enabled\n"
