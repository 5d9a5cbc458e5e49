"""The boot record: what `multiarchd --once` did into a table holding only other tools' entries,
and everything that decided it, so that the next boot's --once can do the same again without
parsing, planning or importing the rest of multiarchd (the early unit is on every boot's path);
the service, starting, does the same and is ready before the rest of it is imported.

Every converged run writes it (boot.py makes it), with the file each F entry's interpreter path
names (the replay keeps it for whoever comes next: host/opened.py). It is replayed only when all
of it still holds: the same code (version and every module's size and time), the same kernel,
command line and CPU (what decides the native architectures), the same policy path and user, the
same policy texts, drop-in directories, interpreters and their directories as the run decided
from (as identity.py notes them), and a table holding exactly the same other entries, byte for
byte, and none of ours. Anything else, or anything unreadable, and the run is a full one. The
record is believed only if root wrote it (host/keep.py). The service's first full run, moments
later, checks everything again.

One line per fact, fields separated by tabs, each escaped (backslash, tab, newline).
"""

from __future__ import annotations

import os
import sys

from .. import __version__, identity
from ..host import keep, opened
from ..kernel import raw

TYPE_CHECKING = False  # typing's, without importing typing or collections.abc: mypy knows it
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

MAGIC = "multiarchd boot record 2"
LIMIT = 1 << 20  # bytes: a larger record is not kept (that policy runs in full at boot)
DEBUG = "7"  # syslog's: in the journal for whoever asks (journalctl -p debug), not on stderr
_VOLATILE_CPU = ("cpu mhz", "bogomips")  # /proc/cpuinfo lines that change while it runs


def path() -> str:
    return os.path.join(keep.cache_dir(), "boot-record")


def escape(text: str) -> str:
    text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
    if text.isascii():
        return text
    # A path's bytes that are not UTF-8 (os.fsdecode keeps them as lone surrogates: another
    # tool's interpreter, say) as \xHH, so that the record is text and the path comes back
    # whole.
    try:
        data = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate no path holds: kept as \uXXXX, that field then
        data = text.encode("utf-8", "backslashreplace")  # differs, and the run is a full one
    return data.decode("utf-8", "backslashreplace")


def unescape(text: str) -> str:
    return "\\".join(_unescape(part) for part in text.split("\\\\"))


def _unescape(part: str) -> str:
    part = part.replace("\\t", "\t").replace("\\n", "\n")
    if "\\x" not in part:
        return part
    first, *rest = part.split("\\x")
    return first + "".join(os.fsdecode(bytes.fromhex(r[:2])) + r[2:] for r in rest)


def line(kind: str, *fields: str) -> str:
    return "\t".join([kind, *map(escape, fields)])


def fields_line(kind: str, fields: dict[str, str], *first: str) -> str:
    return line(kind, *first, *(f"{k}={v}" for k, v in fields.items()))


def _read(path: str, limit: int = 1 << 16) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode(errors="replace")
    except OSError:
        return identity.UNKNOWN


def _tree_key(top: str) -> list[str]:
    """Each Python file under `top` by inode, size and change time: a file edited or replaced
    changes its ctime, which no one can set back (unlike the modification time)."""
    parts, stack = [top], [top]
    while stack:
        directory = stack.pop()
        with os.scandir(directory) as it:
            for e in sorted(it, key=lambda e: e.name):
                if e.is_dir(follow_symlinks=False):
                    if e.name != "__pycache__":
                        stack.append(e.path)
                elif e.name.endswith((".py", ".toml", ".so")):
                    st = e.stat(follow_symlinks=False)
                    parts.append(f"{e.path[len(top):]}:{st.st_ino}:{st.st_size}:"
                                 f"{st.st_ctime_ns}")
    return parts


def _package_dir(name: str) -> str | None:
    """Where `import name` would find the package, looked up as the path finder does for a
    plain package (importlib.util costs the boot path 3.5 ms to import)."""
    for entry in sys.path:
        directory = os.path.join(entry or os.curdir, name)
        if os.path.isfile(os.path.join(directory, "__init__.py")):
            return directory
    return None


def code_key() -> str:
    """What decides what a full run would do besides its inputs: this version of multiarchd
    and each of its files, the Python that runs it, and the YAML library that reads the
    policy (found, not imported)."""
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parts = [__version__, sys.version, sys.executable, *_tree_key(top)]
    yaml = _package_dir("yaml")
    if yaml is not None:
        parts += _tree_key(yaml)
    return " ".join(parts)


def machine_key() -> str:
    """What decides which architectures run natively: the kernel, its command line (e.g.
    ia32_emulation=, syscall.x32=) and the CPU (the first one's description)."""
    cpu = _read("/proc/cpuinfo", 1 << 14).split("\n\n")[0].splitlines()
    cpu = [c for c in cpu if not c.lower().startswith(_VOLATILE_CPU)]
    return "\n".join([identity.kernel(), os.uname().machine, _read("/proc/cmdline"), *cpu])


def config_key(policy_path: str) -> tuple[str, str]:
    """The policy named and who runs (trust is judged against the user). Not the table's path:
    the table itself is compared."""
    return policy_path, str(os.geteuid())


def native_text(arches: Iterable[str] | None) -> str:
    return "-" if arches is None else " ".join(sorted(arches))


_SEEN = {"file": "files", "text": "texts", "list": "listings"}  # record kind -> Seen's


def seen_lines(seen: identity.Seen) -> list[str]:
    return [line(kind, p, i) for kind, noted in _SEEN.items()
            for p, i in sorted(getattr(seen, noted).items())]


def table_lines(binfmt_dir: str) -> list[str]:
    """The table's other entries (newest first) and status, as the record holds them; [] and
    an unknown status when it cannot be read."""
    try:
        files, status = raw.read_all(binfmt_dir)
    except OSError:
        return [line("status", identity.UNKNOWN)]
    return table_lines_of(files, status)


def table_lines_of(files: Iterable[tuple[str, bytes]], status: str, kind: str = "entry"
                   ) -> list[str]:
    # Names as bytes too: another tool's entry may be named with any bytes.
    return [*(line(kind, os.fsencode(name).hex(), data.hex()) for name, data in files),
            line("status", status)]


class _Record:
    def __init__(self, text: str) -> None:
        self.lines = text.split("\n")
        self.kinds: dict[str, list[list[str]]] = {}
        for ln in self.lines:
            kind, *fields = ln.split("\t")
            self.kinds.setdefault(kind, []).append(fields)

    def fields(self, kind: str) -> list[list[str]]:
        return [[unescape(f) for f in fields] for fields in self.kinds.get(kind, [])]

    def one(self, kind: str) -> list[str]:
        found = self.fields(kind)
        return found[0] if len(found) == 1 else []


def _pairs(fields: list[str]) -> dict[str, str]:
    return dict(f.split("=", 1) for f in fields)


class Replayed:
    """What a replay says: the text --once prints, its exit status, and the one-line summary
    (as the service's STATUS=)."""

    def __init__(self, printed: str, code: int, summary: str) -> None:
        self.printed, self.code, self.summary = printed, code, summary


def seal(text: str) -> str:
    """The record with its last line: how long it is before it, so that a record cut short (or
    anything appended) is never replayed."""
    return f"{text}{line('end', str(len(text.encode())))}\n"


def unsealed(text: str) -> str | None:
    """The record without its last line, when that line says it is whole; else None."""
    body, sep, last = text.rstrip("\n").rpartition("\n")
    body += sep
    if not last.startswith("end\t") or last[4:] != str(len(body.encode())):
        return None
    return body


class Miss(Exception):
    """Why the record does not hold (said at debug level: a full run follows)."""


def replay(policy_path: str, binfmt_dir: str, send: Callable[[dict[str, str]], None],
           settled: bool = False) -> Replayed | None:
    """Do what the record says, if all of it still holds: its register lines, and `send` for
    each of its log records (one after each line registered, the rest at the end), then read
    the table back. None when the record does not hold, is not whole, or the table is not then
    as the record says (what was registered has been told, and a full run must take over);
    why is sent at debug level. With `settled`, a table already as the record leaves it holds
    too (nothing written or told): the service starting after the early unit."""
    try:
        text = keep.read_kept(path(), LIMIT)
        if text is None or not text.startswith(MAGIC + "\n"):
            raise Miss("none kept (or not one of root's, or of another version)")
        body = unsealed(text)
        if body is None:
            raise Miss("it is not whole (cut short, or something added)")
        done = _replay(_Record(body), policy_path, binfmt_dir, send, settled)
    except Miss as e:
        if not settled:
            send({"MESSAGE": f"boot record not replayed: {e}; a full run", "PRIORITY": DEBUG})
        return None
    except (ValueError, IndexError, KeyError, UnicodeError):
        return None  # a record of another shape: a full run makes it anew
    if not settled:
        send({"MESSAGE": "boot record replayed: the entries are as the last converged run "
                         "left them, and everything they came from is unchanged",
              "PRIORITY": DEBUG})
    return done


def _replay(r: _Record, policy_path: str, binfmt_dir: str,
            send: Callable[[dict[str, str]], None], settled: bool) -> Replayed:
    if r.one("code") != [code_key()]:
        raise Miss("multiarchd, Python or PyYAML changed")
    if r.one("machine") != [machine_key()]:
        raise Miss("the kernel, its command line or the CPU changed")
    if r.one("config") != list(config_key(policy_path)):
        raise Miss("another policy path or user")
    kept = keep.kept_native()
    if kept is not None and r.one("native") != [native_text(kept[0])]:
        raise Miss("the native architectures changed")
    seen = identity.Seen()
    for kind, noted in _SEEN.items():
        getattr(seen, noted).update((p, i) for p, i in r.fields(kind))
    changed = seen.changed()
    if changed is not None:
        raise Miss(f"{changed} changed")
    table = table_lines(binfmt_dir)
    before = [ln for ln in r.lines if ln.startswith(("entry\t", "status\t"))]
    after = [ln.replace("after", "entry", 1) for ln in r.lines if ln.startswith("after\t")] + \
        [ln for ln in r.lines if ln.startswith("status\t")]
    printed, code, summary = r.one("print"), r.one("exit"), r.one("summary")
    if len(printed) != 1 or len(code) != 1 or len(summary) != 1:
        raise Miss("it is not whole")
    done = Replayed(printed[0], int(code[0]), summary[0])
    if settled and after == table:
        return done
    if table != before:
        raise Miss("the table holds other entries than it did"
                   if table[-1:] == before[-1:] else "the table's status differs (or it "
                   "could not be read)")
    registers = r.fields("register")
    logs = [_pairs(fields) for fields in r.fields("log")]
    told = [_pairs(fields) for _, *fields in registers]  # (every field checked before a write)
    for (register, *_), fields in zip(registers, told):
        try:
            raw.write(binfmt_dir, "register", register)
        except OSError as e:
            raise Miss(f"the kernel refused a line ({e.strerror})") from None
        send(fields)
    if table_lines(binfmt_dir) != after:  # read back: anything else, and a full run decides
        raise Miss("the table read back is not as recorded")
    # Which file the kernel opened for each F entry: the daemon follows its next upgrade.
    opened.keep_opened(binfmt_dir, {name: file or None for name, file in r.fields("opened")})
    for fields in logs:
        send(fields)
    return done
