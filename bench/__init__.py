"""Benchmarks of multiarchd, each against a yardstick run in the same process.

Every benchmark keeps what multiarchd keeps (the files that carry a CPU model, the boot record,
verdicts, which file the kernel opened) in scratch directories of its own run, never the host's
/var/lib, /var/cache or /run: set here, before any benchmark starts, and inherited by every
daemon and `--once` it runs (a benchmark that needs another sets its own). The state directory
is root's, under /var/lib, as a file multiarchd registers must be (one under /tmp never is)."""

import atexit
import os
import shutil
import sys
import tempfile


def _scratch() -> None:
    top = tempfile.mkdtemp(prefix="multiarchd-bench-", dir="/var/lib" if os.geteuid() == 0
                           else None)
    os.chmod(top, 0o755)
    atexit.register(shutil.rmtree, top, True)
    for variable, name in (("STATE_DIRECTORY", "state"), ("CACHE_DIRECTORY", "cache"),
                           ("RUNTIME_DIRECTORY", "run")):
        if variable not in os.environ:
            os.mkdir(os.path.join(top, name), 0o755)
            os.environ[variable] = os.path.join(top, name)


if sys.argv[:1] == ["-m"]:  # run as `python -m bench.NAME`, not a test importing a helper
    _scratch()
