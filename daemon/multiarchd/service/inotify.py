"""Filesystem watches through watchdog (inotify): the Watcher protocol for real. The only module
importing watchdog.

watchdog delivers events on its own threads; `on_event(path, kind)` must be safe to call from
any thread. `kind` is watchdog's word: created, deleted, moved, modified (a file being written),
closed (after a write), or changed (something in a directory).
Its inotify observer blocks on the kernel and wakes only for events: nothing here polls.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable

from watchdog import events
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers.inotify import InotifyObserver

from .watches import Watch


class _Handler(FileSystemEventHandler):  # type: ignore[misc]
    def __init__(self, watch: Watch, on_event: Callable[[str, str], None],
                 moved: Callable[[], None]) -> None:
        self.watch = watch
        self.on_event = on_event
        self.moved = moved

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type == "moved":  # any, wanted or not (dpkg renames in /usr/bin)
            self.moved()
        if event.event_type in ("opened", "closed_no_write"):
            return
        # A directory "modified" only says something in it changed; a file is "modified" while
        # it is being written.
        kind = "changed" if event.is_directory and event.event_type == "modified" \
            else event.event_type
        # Both ends of a move: a file renamed over the policy is told by the policy's name.
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            if raw and self.watch.wants(os.fsdecode(raw)):
                self.on_event(os.fsdecode(raw), kind)


# Only what can matter: created, deleted, moved, written (and closed after writing), attributes
# changed. Not opens, reads and closes-without-writing: every program started from a watched
# directory (/usr/bin holds interpreters) would wake the daemon. watchdog 4 and later subscribe
# the kernel to what the filter names (without one, to everything); 2.x never asks for opens.
_WANTED = [getattr(events, name) for name in (
    "FileCreatedEvent", "DirCreatedEvent", "FileDeletedEvent", "DirDeletedEvent",
    "FileMovedEvent", "DirMovedEvent", "FileModifiedEvent", "DirModifiedEvent",
    "FileClosedEvent") if hasattr(events, name)]
_FILTERS = "event_filter" in inspect.signature(InotifyObserver.schedule).parameters


class InotifyWatcher:
    """Keeps a set of watches; `update` adds and drops watches to match a new set."""

    def __init__(self, on_event: Callable[[str, str], None]) -> None:
        self.on_event = on_event
        self.observer = InotifyObserver()
        self.current: dict[Watch, object] = {}
        self.failed: dict[Watch, str] = {}

    def start(self) -> None:
        self.observer.start()

    def _forget_moves(self) -> None:
        """watchdog before 7 keeps every IN_MOVED_FROM it pairs, for ever (its issue #1041:
        about 1 KiB a rename, and every editor saves by rename). Once a move has been told,
        its record is let go; a move whose two halves straddle this is then told as a
        creation, which is the same news to us: look again."""
        for emitter in list(self.observer.emitters):
            buffer = getattr(emitter, "_inotify", None)
            forget = getattr(getattr(buffer, "_inotify", None), "clear_move_records", None)
            if forget is not None:
                forget()

    def update(self, watches: set[Watch]) -> bool:
        for gone in set(self.current) - watches:
            self.observer.unschedule(self.current.pop(gone))
        self.failed = {}
        before = set(self.current)
        for new in watches - set(self.current):
            try:
                how = {"event_filter": _WANTED} if _FILTERS else {}
                self.current[new] = self.observer.schedule(
                    _Handler(new, self.on_event, self._forget_moves), new.directory,
                    recursive=new.recursive, **how)
            except OSError as e:
                self.failed[new] = e.strerror or str(e)
        return bool(watches - self.failed.keys() - before)

    def stop(self) -> None:
        self.observer.stop()
        self.observer.join(timeout=5)
