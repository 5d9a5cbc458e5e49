"""A daemon keeps what it found of each interpreter file from one run to the next while nothing
on the file's way changed (host/filecache.py): after every change that could make root run
someone else's file, the kept answer must be the one a fresh walk gives."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from multiarchd.catalog import load_catalog
from multiarchd.host.audit_facts import _head
from multiarchd.host.facts import probe_host
from multiarchd.host.filecache import FileCache
from multiarchd.identity import Seen

CATALOG = load_catalog()
NOBODY = 65534


def _answers(path: str, cache: FileCache | None) -> tuple[object, ...]:
    seen = Seen()
    host = probe_host(CATALOG, [path], seen=seen, cache=cache)
    return host.file(path), host.ids.get(path), host.why.get(path), seen.key()


def _ways(trusted_dir: Path) -> tuple[Path, Path]:
    """An interpreter reached through a symlink: trusted_dir/q -> a/b/emu."""
    (trusted_dir / "a" / "b").mkdir(parents=True)
    emu = trusted_dir / "a" / "b" / "emu"
    shutil.copy("/bin/true", emu)
    (trusted_dir / "q").symlink_to("a/b/emu")
    return trusted_dir / "q", emu


def test_a_kept_answer_is_always_the_one_a_fresh_look_gives(trusted_dir: Path) -> None:
    path, emu = _ways(trusted_dir)
    theirs = trusted_dir / "theirs"
    theirs.mkdir()
    os.chown(theirs, NOBODY, NOBODY)
    shutil.copy("/bin/true", theirs / "emu")

    def link_to(target: str) -> None:
        (trusted_dir / "q").unlink()
        (trusted_dir / "q").symlink_to(target)

    def rename_over() -> None:
        shutil.copy("/bin/false", trusted_dir / "new")
        os.replace(trusted_dir / "new", emu)

    def replace_directory() -> None:
        shutil.copytree(trusted_dir / "a", trusted_dir / "a2", symlinks=True)
        os.rename(trusted_dir / "a", trusted_dir / "old")
        os.rename(trusted_dir / "a2", trusted_dir / "a")

    changes: list[tuple[str, Callable[[], object]]] = [
        ("nothing", lambda: None),
        ("a directory on the way made group-writable", lambda: (trusted_dir / "a").chmod(0o775)),
        ("and back", lambda: (trusted_dir / "a").chmod(0o755)),
        ("the file given to nobody", lambda: os.chown(emu, NOBODY, 0)),
        ("and back", lambda: os.chown(emu, 0, 0)),
        ("the file not executable", lambda: emu.chmod(0o644)),
        ("and back", lambda: emu.chmod(0o755)),
        ("the link pointed through nobody's directory", lambda: link_to(str(theirs / "emu"))),
        ("and back", lambda: link_to("a/b/emu")),
        ("another file renamed over it", rename_over),
        ("a copy into the same inode", lambda: shutil.copyfile("/bin/sh", emu)),
        ("a directory on the way replaced by another", replace_directory),
        ("a directory on the way given to nobody", lambda: os.chown(trusted_dir / "a", NOBODY, 0)),
        ("the file removed", emu.unlink),
    ]
    cache = FileCache()
    _answers(str(path), cache)
    for what, change in changes:
        change()
        fresh = _answers(str(path), None)
        assert _answers(str(path), cache) == fresh, what
        assert _answers(str(path), cache) == fresh, what  # (and from the cache, again)


def test_an_unchanged_file_is_not_walked_again(trusted_dir: Path) -> None:
    path, _ = _ways(trusted_dir)
    cache = FileCache()
    first = _answers(str(path), cache)
    kept = cache.files[str(path)]
    assert _answers(str(path), cache) == first and cache.files[str(path)] is kept


def test_a_mount_made_noexec_is_seen(trusted_dir: Path) -> None:
    """Remounting noexec changes no stat of a file or directory: their mounts' flags are kept
    too, a directory's as well (noted: a boot record keyed by the old flags would be
    replayed where it no longer holds)."""
    path, emu = _ways(trusted_dir)
    (trusted_dir / "links").mkdir()
    (trusted_dir / "links" / "q").symlink_to("../a/b/emu")
    script = f"""
import subprocess, sys
sys.path[:0] = {sys.path!r}
from tests.test_file_cache import _answers
from multiarchd.host.filecache import FileCache
cache, link = FileCache(), {str(trusted_dir / "links" / "q")!r}

def noexec(where):
    subprocess.run(["mount", "--bind", where, where], check=True)
    subprocess.run(["mount", "-o", "remount,bind,noexec", where], check=True)

for where in ({str(trusted_dir / "links")!r}, {str(emu.parent)!r}):
    _answers(link, cache)
    noexec(where)
    print(_answers(link, cache)[0].value, _answers(link, cache) == _answers(link, None))
"""
    r = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, "-c", script],
                       capture_output=True, text=True, timeout=60, cwd=Path(__file__).parent.parent)
    # the link's directory: the file still runs; the file's own: it does not
    assert r.stdout.split() == ["ok", "True", "not-executable", "True"], r.stderr


def test_a_kept_head_of_a_program_is_the_one_a_fresh_read_gives(trusted_dir: Path) -> None:
    """The audit's first bytes of this host's own programs (host/audit_facts.py), kept the
    same way: by the file as it is, through its link."""
    program = trusted_dir / "prog"
    program.write_bytes(b"\x7fELF one")
    (trusted_dir / "link").symlink_to("prog")
    link = str(trusted_dir / "link")

    def read(cache: FileCache | None) -> tuple[bytes | None, str]:
        seen = Seen()
        return _head(link, seen, cache), seen.files[link]

    def rename_over() -> None:
        (trusted_dir / "new").write_bytes(b"#!/bin/sh three")
        os.replace(trusted_dir / "new", program)

    def relink() -> None:
        (trusted_dir / "other").write_bytes(b"\x7fELF four")
        (trusted_dir / "link").unlink()
        (trusted_dir / "link").symlink_to("other")

    changes: list[tuple[str, Callable[[], object]]] = [
        ("nothing", lambda: None),
        ("rewritten in place", lambda: program.write_bytes(b"\x7fELF two!")),
        ("renamed over", rename_over), ("the link pointed elsewhere", relink),
        ("removed", (trusted_dir / "other").unlink)]
    cache = FileCache()
    read(cache)
    for what, change in changes:
        change()
        assert read(cache) == read(None), what
