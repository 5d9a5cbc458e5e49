"""A write the kernel refused, and why, in words an admin can act on."""

from __future__ import annotations

import errno
import os

from ..model.registration import printable


class KernelError(Exception):
    """A write the kernel refused, explained in words."""

    def __init__(self, name: str, action: str, err: int, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.action = action
        self.errno = err


def explain(action: str, reg_name: str, err: int, interpreter: str | None = None) -> str:
    """What the kernel refused and why."""
    what = f"{action} of {printable(reg_name)}"
    if err == errno.EEXIST:
        return f"{what} refused: an entry with that name already exists (EEXIST)"
    if err == errno.EINVAL:
        return f"{what} refused: the kernel found the register line malformed (EINVAL)"
    if err == errno.ENOENT:
        if action == "register":
            return (f"{what} refused: interpreter {interpreter} does not exist, and the F flag "
                    "opens it now (ENOENT); install the emulator or fix the path")
        return f"{what} failed: no such entry (ENOENT); someone removed it meanwhile"
    if err == errno.EACCES:
        return (f"{what} refused: interpreter {interpreter} is not executable (EACCES); "
                "check its mode and the mount's noexec")
    if err == errno.EPERM:
        return (f"{what} refused: not permitted (EPERM); multiarchd needs CAP_SYS_ADMIN "
                "over this binfmt_misc instance (run as root)")
    if err == errno.ELOOP:
        return f"{what} refused: the interpreter would run itself (ELOOP)"
    return f"{what} failed: {os.strerror(err)} ({errno.errorcode.get(err, err)})"


def explain_unopened(action: str, reg_name: str, err: int, path: str,
                     interpreter: str | None = None) -> str:
    """A control file that could not even be opened: refused for its mode, that is the
    writer's rights, not the entry; anything else as explain() says it."""
    if err not in (errno.EACCES, errno.EPERM):
        return explain(action, reg_name, err, interpreter)
    return (f"{action} of {printable(reg_name)} refused: {path} cannot be opened for writing "
            f"({errno.errorcode[err]}); only root (CAP_SYS_ADMIN over this binfmt_misc "
            "instance) may change the table: run as root")
