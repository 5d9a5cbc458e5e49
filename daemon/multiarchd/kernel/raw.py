"""The binfmt_misc files as bytes: every entry's file and `status`, read; one file, written.
table.py builds the table on these; the boot record's replay (reconciler/record.py) writes its
register lines through write() too, and imports nothing more."""

from __future__ import annotations

import os

from ..names import CONTROL_FILES

DEFAULT_PATH = "/proc/sys/fs/binfmt_misc"
ENTRY_MAX = 1 << 16  # an entry file is at most a page; read no more whatever it claims


def read_all(path: str) -> tuple[tuple[tuple[str, bytes], ...], str]:
    """Every entry's name and bytes, newest first (as the directory lists them), and the text
    of `status`."""
    entries = []
    for name in os.listdir(path):
        if name in CONTROL_FILES:
            continue
        try:
            with open(os.path.join(path, name), "rb") as f:
                entries.append((name, f.read(ENTRY_MAX)))
        except FileNotFoundError:
            continue  # removed between listing and reading
    with open(os.path.join(path, "status")) as f:
        status = f.read()
    return tuple(entries), status


class NotOpened(OSError):
    """The control file itself could not be opened for writing (not root, say)."""


def write(path: str, file: str, text: str) -> None:
    """One write of `text` to `file` in the table at `path`: a register line to `register`, or
    1/0/-1 to an entry. Never to `status` (-1 there removes every entry). OSError as the kernel
    gives it."""
    if file == "status" or file in (".", "..") or "/" in file or \
            (file == "register") != text.startswith(":"):
        raise ValueError(f"refusing to write {text!r} to {file!r}")
    try:
        fd = os.open(os.path.join(path, file), os.O_WRONLY | os.O_CLOEXEC)
    except OSError as e:  # the file's own mode (root's), not what the kernel made of the text
        raise NotOpened(e.errno, e.strerror, e.filename) from e
    try:
        os.write(fd, os.fsencode(text))
    finally:
        os.close(fd)
