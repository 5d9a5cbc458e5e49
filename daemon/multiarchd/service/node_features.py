"""The node-feature-discovery file (`node_features:` in the policy): the labels of
core/node_labels.py, written after a run or a verdict only when they changed (NFD's worker
rereads the directory on its own timer: a rewrite of the same labels would tell it nothing),
whole and synced, by rename, so that NFD never reads half a file. A file that cannot be
written is said once; the table is kept all the same. A path the policy no longer names has
its file removed: labels nobody keeps true would go on promising."""

from __future__ import annotations

from collections.abc import Callable

from ..core.messages import Event
from ..core.node_labels import feature_file, labels
from ..core.result import Result
from .exporter import Unwritable
from .protocols import Log


class NodeFeatures:
    def __init__(self, write: Callable[[str, str], None], remove: Callable[[str], None],
                 log: Log) -> None:
        self.write = write  # (path, text): whole, by rename
        self.remove = remove
        self.unwritable = Unwritable(log, Event.LABELS_UNWRITABLE, "node feature file")
        self.path: str | None = None  # the file written last, and what it holds
        self.text = ""

    def publish(self, result: Result | None, host_table: bool) -> None:
        if result is None:
            return  # no run yet (or none could happen): what the file says stays
        policy = result.enforced or result.policy
        path = policy.node_features
        text = feature_file(labels(result.report, host_table)) if path else ""
        if path == self.path and text == self.text:
            return
        try:
            if self.path is not None and self.path != path:
                self.remove(self.path)
                self.path, self.text = None, ""
            if path:
                self.write(path, text)
                self.path, self.text = path, text
            self.unwritable.written()
        except OSError as e:
            self.unwritable.failed(e)
