"""Every kind of journal message has its own MESSAGE_ID, explained in the message catalog that
journalctl reads, and listed in multiarchd(8)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from multiarchd.core.messages import Event

from tests.support.paths import REPO

CATALOG = REPO / "config" / "journal" / "multiarchd.catalog"


def test_every_message_id_is_unique_explained_and_listed() -> None:
    ids = [e.message_id for e in Event]
    assert len(set(ids)) == len(ids)
    entries = dict(re.findall(r"^-- ([0-9a-f]{32})\n(.*?)(?=^-- |\Z)", CATALOG.read_text(),
                              re.M | re.S))
    assert set(entries) == set(ids)
    for text in entries.values():
        head, _, body = text.partition("\n\n")
        assert "Subject: " in head and "Defined-By: multiarchd" in head and body.strip()
    page = (REPO / "man" / "multiarchd.8").read_text()
    assert [i for i in ids if f".B {i}\n" not in page] == []


def test_journalctl_reads_the_catalog(tmp_path: Path) -> None:
    target = tmp_path / "usr/lib/systemd/catalog"
    target.mkdir(parents=True)
    shutil.copy(CATALOG, target)
    (tmp_path / "var/lib/systemd/catalog").mkdir(parents=True)
    subprocess.run(["journalctl", "--root", str(tmp_path), "--update-catalog"], check=True,
                   capture_output=True)
    listed = subprocess.run(["journalctl", "--root", str(tmp_path), "--list-catalog"],
                            check=True, capture_output=True, text=True).stdout
    assert len([line for line in listed.splitlines() if line.strip()]) == len(Event)
    assert f"{Event.WAITING.message_id} multiarchd: multiarchd waits for binfmt_misc to be " \
        "mounted" in listed
