"""The inotify adapter against the real kernel: what an editor's save by rename, an in-place
write and a new directory look like to the service (so that it waits for a writer only while
one has a file open)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from multiarchd import identity
from multiarchd.service.inotify import InotifyWatcher
from multiarchd.service.watches import Watch


def test_what_saves_look_like(tmp_path: Path) -> None:
    seen: list[tuple[str, str]] = []
    arrived = threading.Event()

    def on_event(path: str, kind: str) -> None:
        seen.append((os.path.basename(path), kind))
        arrived.set()

    watcher = InotifyWatcher(on_event)
    watcher.start()
    try:
        watcher.update({Watch(str(tmp_path), None, True, identity.of_path(str(tmp_path)))})
        (tmp_path / "arches.yaml.new").write_text("arches: all\n")  # a save by rename ...
        os.replace(tmp_path / "arches.yaml.new", tmp_path / "arches.yaml")
        (tmp_path / "arches.yaml").write_text("arches: {}\n")  # ... and an in-place write
        (tmp_path / "marker").mkdir()
        deadline = time.monotonic() + 10
        while ("marker", "created") not in seen and time.monotonic() < deadline:
            arrived.wait(1)
            arrived.clear()
    finally:
        watcher.stop()
    writes = [s for s in seen if s[1] == "modified"]
    assert writes and all(name in ("arches.yaml", "arches.yaml.new") for name, _ in writes)
    assert ("arches.yaml", "closed") in seen and ("arches.yaml.new", "moved") in seen
    assert (tmp_path.name, "modified") not in seen  # the directory itself is only "changed"


def test_renames_leave_nothing_behind_in_the_watcher(tmp_path: Path) -> None:
    """watchdog before 7 keeps every move it paired (its issue #1041), about 1 KiB a rename:
    a daemon watching /usr/bin through a year of upgrades, or a policy saved by an editor
    every day, would grow without end. Renames of names the watch does not want count too."""
    moves = threading.Event()
    watcher = InotifyWatcher(lambda path, kind: moves.set() if path.endswith("/last") else None)
    watcher.start()
    try:
        watcher.update({Watch(str(tmp_path), frozenset({"arches.yaml", "last"}), False,
                              identity.of_path(str(tmp_path)))})
        for i in range(200):
            (tmp_path / f"other.{i}").write_text("x")
            os.replace(tmp_path / f"other.{i}", tmp_path / f"unwanted.{i}")
        (tmp_path / "x").write_text("x")
        os.replace(tmp_path / "x", tmp_path / "last")
        assert moves.wait(10)
        kept = [getattr(getattr(getattr(e, "_inotify", None), "_inotify", None),
                        "_moved_from_events", {}) for e in watcher.observer.emitters]
    finally:
        watcher.stop()
    assert sum(len(k) for k in kept) <= 1  # (watchdog 7 keeps none of its own)
