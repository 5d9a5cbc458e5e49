"""Which file a path is, as one string that changes whenever the file does: device, inode, mode,
owner, group, size, modification and change times, and the path it resolves to.

A run notes the identity of each file and directory it decided from, taken from the very
descriptor it decided on (no window between looking and noting); the boot record
(reconciler/record.py) is replayed only while every one of them is still the same. The change
time moves with any write, chmod, chown or rename of the file, and cannot be set back.
"""

from __future__ import annotations

import os

MISSING = "-"  # nothing at the path
UNKNOWN = "?"  # could not be looked at: never equal to a noted identity


def of_fd(fd: int) -> str:
    st = os.fstat(fd)
    real = os.readlink(f"/proc/self/fd/{fd}")
    return (f"{st.st_dev}:{st.st_ino}:{st.st_mode:o}:{st.st_uid}:{st.st_gid}:{st.st_size}:"
            f"{st.st_mtime_ns}:{st.st_ctime_ns}:{real}")


def of_path(path: str) -> str:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return MISSING
    except OSError:
        return UNKNOWN
    try:
        return of_fd(fd)
    except OSError:
        return UNKNOWN
    finally:
        os.close(fd)
