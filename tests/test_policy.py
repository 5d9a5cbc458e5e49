"""Policy files: what they mean, and a clear error with file:line:column for every bad input."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from multiarchd.catalog import load_catalog
from multiarchd.core.desired import Why, desired
from multiarchd.host.facts import candidate_paths, probe_host
from multiarchd.model.flags import Flags
from multiarchd.model.host import FileState, Host
from multiarchd.model.policy import ForeignMode, Policy
from multiarchd.policy.files import load_policy

from tests.support.commands import PolicyWriter, run

CATALOG = load_catalog()


def load(write: PolicyWriter, text: str) -> Policy:
    return load_policy(str(write(text)), CATALOG)


def test_design_example_parses(policy: PolicyWriter) -> None:
    p = load(policy, """
defaults:
  flags: [F, P]
  emulators: [fex, box64, rosetta, qemu]
arches:
  amd64: {}
  i386: {}
  riscv64: {flags: [F]}
  s390x: {enabled: false}
  arm:
    interpreter: /opt/qemu-user-static/bin/qemu-arm-static
foreign_entries: disable
custom:
  - name: dos
    extension: exe
    interpreter: /usr/bin/wine
  - name: myformat
    magic: '\\x7fMYF'
    mask:  '\\xff\\xff\\xff\\xff'
    offset: 0
    interpreter: /usr/local/bin/myformat-run
    flags: [F]
""")
    assert p.problems == ()
    assert p.flags == Flags.parse("FP")
    assert p.emulators == ("fex", "box64", "rosetta", "qemu")
    assert sorted(p.arches) == ["arm", "i386", "riscv64", "s390x", "x86_64"]
    assert p.arches["riscv64"].flags == Flags.parse("F")
    assert not p.arches["s390x"].enabled
    assert p.arches["arm"].interpreter == "/opt/qemu-user-static/bin/qemu-arm-static"
    assert p.foreign is ForeignMode.DISABLE
    dos, myformat = p.custom
    assert dos.extension == "exe" and dos.interpreter == "/usr/bin/wine"
    assert myformat.magic == b"\x7fMYF" and myformat.mask == b"\xff" * 4


def test_dropins_merge_after_the_main_file_in_name_order(policy: PolicyWriter) -> None:
    policy("arches: {s390x: {}, riscv64: {flags: [F]}}\n")
    policy("arches: {s390x: {enabled: false}}\n", "arches.d/50-no-s390x.yaml")
    policy("arches: {riscv64: {flags: [P]}}\nforeign_entries: remove\n", "arches.d/90-late.yaml")
    main = policy("arches: {s390x: {}, riscv64: {flags: [F]}}\n")
    p = load_policy(str(main), CATALOG)
    assert [Path(f).name for f in p.files] == ["arches.yaml", "50-no-s390x.yaml", "90-late.yaml"]
    assert not p.arches["s390x"].enabled
    assert p.arches["riscv64"].flags == Flags.parse("P")
    assert p.foreign is ForeignMode.REMOVE


def test_all_with_exceptions(policy: PolicyWriter) -> None:
    p = load(policy, "arches:\n  all: {}\n  s390x: false\n")
    assert p.all_arches is not None
    assert p.rule_for("ppc64le") is p.all_arches
    s390x = p.rule_for("s390x")
    assert s390x is not None and not s390x.enabled


def test_empty_arches_asks_for_nothing(policy: PolicyWriter) -> None:
    p = load(policy, "arches: {}\n")
    assert p.problems == () and p.all_arches is None and not p.arches


# (policy text, "line:column", words the message must contain, spoils only this entry or all)
BAD = [
    ("arches: [aarch64,\n", "2:1", "malformed YAML", None),
    ("arches: {aarch64: {}}\nflgas: [F]\n", "2:1", "unknown key 'flgas' in the policy file", None),
    ("arches:\n  aarch64: {flgs: [F]}\n", "2:13", "unknown key 'flgs' in arches.aarch64 "
     "(did you mean 'flags'?)", ("arch", "aarch64")),
    ("defaults: {flags: 7}\n", "1:19", "flags must be a list", None),
    ("arches:\n  aarch64: {enabled: maybe}\n", "2:22", "must be true or false",
     ("arch", "aarch64")),
    ("arches: 12\n", "1:9", "arches (`all` or a map of architectures) must be a map", None),
    ("arches:\n  arm65: {}\n  s390x: {}\n", "2:3", "unknown architecture 'arm65' (did you "
     "mean 'arm64'?)", ("arch", "aarch64")),  # the one meant keeps its entry
    ("arches:\n  arm64: {}\n  aarch64: {}\n", "3:3", "'aarch64' is given twice: as 'arm64' at "
     "line 2", ("arch", "aarch64")),
    ("arches:\n  riscv64: {flags: [F, X]}\n", "2:24", "unknown flag 'X'; allowed: P",
     ("arch", "riscv64")),
    ("arches:\n  arm: {interpreter: bin/qemu-arm}\n", "2:22", "relative path", ("arch", "arm")),
    ("arches:\n  arm: {interpreter: '/opt/a:b'}\n", "2:22", "contains ':'", ("arch", "arm")),
    ("arches:\n  arm: {interpreter: \"/opt/a\\nb\"}\n", "2:22", "control character '\\n'",
     ("arch", "arm")),
    ("foreign_entries: kep\n", "1:18", "did you mean 'keep'", None),
    ("defaults: {emulators: [qemu, fexx]}\n", "1:30", "unknown emulator 'fexx' (did you mean "
     "'fex'?)", None),
]
for name in ("''", ".", "..", "register", "status", "a/b", "x" * 250, "aarch64"):
    BAD.append((f"custom:\n  - name: {name}\n    extension: exe\n    interpreter: /bin/true\n",
                "2:11", "custom name", ("custom", name.strip("'"))))
BAD += [
    ("custom:\n  - name: m\n    magic: 'ABCD'\n    mask: '\\xff\\xff'\n    interpreter: /bin/true\n",
     "4:11", "mask is 2 bytes but magic is 4", ("custom", "m")),
    ("custom:\n  - name: m\n    magic: 'ABCD'\n    offset: 253\n    interpreter: /bin/true\n",
     "3:12", "reaches past byte 256", ("custom", "m")),
    ("custom:\n  - name: e\n    extension: 'a/b'\n    interpreter: /bin/true\n", "3:16",
     "extension 'a/b': it holds white space, '/'", ("custom", "e")),
    ("custom:\n  - name: e\n    interpreter: /bin/true\n", "2:5", "needs exactly one of",
     ("custom", "e")),
    ("custom:\n  - name: e\n    extension: exe\n", "2:5", "needs a 'interpreter'",
     ("custom", "e")),
    # What a hostile tester tried: each gets its place and what to do, never a traceback.
    ("", "1:1", "the policy file is empty (or only comments); nothing is changed", None),
    ("  \n\n", "1:1", "the policy file is empty", None),
    ("# only a comment\n", "1:1", "the policy file is empty", None),
    ("arches: null\n", "1:9", "arches is empty (null); nothing is changed", None),
    ("arches:\n", "1:8", "arches is empty (null)", None),
    ("defaults: {flags: [F]}\n", "1:1", "no policy file says which architectures", None),
    ("custom:\n  - name: m\n    magic: 0x7f454c46\n    interpreter: /bin/true\n", "3:12",
     "magic 0x7f454c46 is read by YAML as int 2135247942; quote it", ("custom", "m")),
    ("custom:\n  - name: e\n    extension: 010\n    interpreter: /bin/true\n", "3:16",
     "extension 010 is read by YAML as int 8; quote it to keep the text: '010'",
     ("custom", "e")),
    ("custom:\n  - name: m\n    magic: '\\x4 A'\n    interpreter: /bin/true\n", "3:12",
     "bad escape '\\\\x4 ' at character 1", ("custom", "m")),
    ("arches:\n  arm: {interpreter: \"/opt/a\\0b\"}\n", "2:22", "control character '\\x00'",
     ("arch", "arm")),
    ("arches:\n  arm: {interpreter: \"/opt/\\ud800\"}\n", "2:30", "malformed YAML: found "
     "invalid Unicode character escape code", None),
    ("arches:\n  arm: {interpreter: '/usr/bin/qemu-arm-static '}\n", "2:22",
     "starts or ends with white space", ("arch", "arm")),
    ("arches:\n  arm: {interpreter: \"/opt/q\\r\"}\n", "2:22", "control character '\\r'",
     ("arch", "arm")),
    ("arches:\n  arm: {interpreter: \"/opt/q\\u2028\"}\n", "2:22", "control character",
     ("arch", "arm")),
    (f"arches:\n  arm: {{interpreter: /{'q' * 1900}}}\n", "2:22",
     "the register line would be 2075 bytes; the kernel takes at most 1920", ("arch", "arm")),
    ("custom:\n  - name: 'a b'\n    extension: exe\n    interpreter: /bin/true\n", "2:11",
     "may hold only letters, digits", ("custom", "a b")),
    ("custom:\n  - name: \"a\\0b\"\n    extension: exe\n    interpreter: /bin/true\n", "2:11",
     "may hold only letters, digits", ("custom", "a\0b")),
    (f"custom:\n  - name: {'é' * 245}\n    extension: exe\n    interpreter: /bin/true\n",
     "2:11", "may hold only letters, digits", ("custom", "é" * 245)),
    ("custom:\n  - name: e\n    extension: \"e\\0x\"\n    interpreter: /bin/true\n", "3:16",
     "control character '\\x00'", ("custom", "e")),
    ("custom:\n  - {name: d, extension: exe, interpreter: /bin/true}\n"
     "  - {name: d, extension: com, interpreter: /bin/true}\n", "3:5",
     "custom entry 'd' is given twice (first at line 2)", ("custom", "d")),
    ("arches: all\nx: \x00\n", "2:4", "character U+0000 is not allowed in YAML", None),
    ("arches: all\n\x0c\n", "2:1", "character U+000C is not allowed in YAML", None),
    ("arches: all\nx: \x7f\n", "2:4", "character U+007F is not allowed in YAML", None),
    ("arches: &a {s390x: *a}\n", "1:20", "alias *a refers to the list or map it is in", None),
    ("arches: *nope\n", "1:9", "alias *nope has no anchor before it", None),
    ("arches: !!python/object:os.system {}\n", "1:9", "unknown tag", None),
    ("arches: !foo all\n", "1:9", "unknown tag '!foo'", None),
    ("arches: all\n---\narches: {}\n", "2:1", "a second YAML document", None),
    ("arches: " + "[" * 10000 + "\n", "1:40", "nested more than 32 levels deep", None),
    # YAML values that used to raise out of the reader (a traceback, a daemon that stopped
    # healing): each is a problem with its place.
    ("arches: all\nx: " + "9" * 4301 + "\n", "2:4", "is too long to read", None),
    ("arches: all\nupdated: 2023-02-30\n", "2:1", "unknown key 'updated'", None),
    ("arches: {s390x: {enabled: !!int x}}\n", "1:27", "'x' is not a valid !!int", None),
    ("arches: all\nupdated: !!float x\n", "2:10", "'x' is not a valid !!float", None),
    ("arches: all\nupdated: !!bool maybe\n", "2:10", "'maybe' is not a valid !!bool", None),
    ("arches: {all: {interpreter: /bin/true}}\n", "1:15", "arches.all cannot name an "
     "interpreter", None),
    # Typos that used to wipe every entry: rejected whole, nothing changed.
    ("arches: {al: {}}\n", "1:9", "no name in arches is an architecture", None),
    ("arches: {5: true}\n", "1:9", "no name in arches is an architecture", None),
    ("defaults: {emulators: []}\narches: all\n", "1:23", "emulators is empty", None),
    ("arches: {s390x: {emulators: []}}\n", "1:29", "emulators is empty", ("arch", "s390x")),
    ("a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n"
        for i in range(8)), "5:12", "more than 20000 values", None),
]


@pytest.mark.parametrize("text,where,words,scope", BAD, ids=[b[2][:40] for b in BAD])
def test_bad_input_is_named_by_file_line_column(
        policy: PolicyWriter, text: str, where: str, words: str, scope: tuple[str, str] | None) -> None:
    p = load(policy, text)
    assert p.problems, "no problem reported"
    first = p.problems[0]
    assert str(first).startswith(f"{first.place.file}:{where}: "), str(first)
    assert first.place.file.endswith("arches.yaml")
    assert words in first.message
    assert first.scope == scope
    assert p.rejected is (scope is None)


def test_a_spoiled_entry_names_its_problem_s_place_not_a_direction(
        policy: PolicyWriter) -> None:
    """status prints its table before the problems, the journal elsewhere: "(see above)"
    pointed the wrong way; the entry's note names where the problem is instead."""
    p = load(policy, "arches:\n  riscv64: {flags: [F, X]}\n"
                     "custom:\n  - name: e\n    interpreter: /bin/true\n")
    notes = {w.label: w.message for w in desired(p, CATALOG, Host("x86_64", {})).wants
             if w.verdict is Why.ERROR}
    main = p.problems[0].place.file
    assert notes == {
        "riscv64": f"its entry is left as it is until the policy error at {main}:2:24 is fixed",
        "e": f"its entry is left as it is until the policy error at {main}:4:5 is fixed"}


def test_missing_main_file_is_a_problem_not_an_empty_policy(tmp_path: Path) -> None:
    p = load_policy(str(tmp_path / "arches.yaml"), CATALOG)
    assert p.rejected
    assert "policy file not found" in p.problems[0].message
    assert "arches: {}" in p.problems[0].message


@pytest.mark.parametrize("mode,state,words", [(0o755, None, ""),
                                               (0o644, "not-executable", "not an executable"),
                                               (None, "missing", "does not exist")])
def test_explicit_interpreter_must_exist_and_run(policy: PolicyWriter, trusted_dir: Path,
                                                 mode: int | None, state: str | None,
                                                 words: str) -> None:
    interp = trusted_dir / "qemu-arm"
    if mode is not None:
        interp.write_text("#!/bin/sh\n")
        interp.chmod(mode)
    p = load(policy, f"arches:\n  arm:\n    interpreter: {interp}\n  s390x: {{}}\n")
    host = probe_host(CATALOG, candidate_paths(p, CATALOG), machine="x86_64")
    d = desired(p, CATALOG, host)
    arm = next(w for w in d.wants if w.label == "arm")
    s390x = next(w for w in d.wants if w.label == "s390x")
    if state is None:
        assert d.problems == () and arm.registration is not None
    else:
        assert host.file(str(interp)) == FileState(state)
        assert str(d.problems[0]).startswith(f"{p.files[0]}:3:18: interpreter {interp}")
        assert words in d.problems[0].message
        assert arm.frozen and arm.verdict is Why.ERROR
    assert s390x.registration is not None, "one bad arch must not stop the others"


def test_host_family_is_native_even_when_asked_for(policy: PolicyWriter) -> None:
    p = load(policy, "arches: {x86_64: {}, i386: {}, aarch64: {}}\n")
    d = desired(p, CATALOG, Host("x86_64", {"/usr/bin/qemu-aarch64-static": FileState.OK,
                                            "/usr/bin/qemu-i386-static": FileState.OK}))
    states = {w.label: w.verdict for w in d.wants if w.explicit}
    assert states == {"x86_64": Why.NATIVE, "i386": Why.NATIVE, "aarch64": None}


def test_a_cpu_without_aarch32_is_not_native_where_the_catalog_decides(
        policy: PolicyWriter) -> None:
    """Before Linux 6.7 (no probe in a table of our own), an arm64 CPU without AArch32 at EL0
    (personality(2) says so) gets 32-bit arm registered; one with it runs arm itself."""
    p = load(policy, "arches: {aarch64: {}, arm: {}}\n")
    files = {"/usr/bin/qemu-arm-static": FileState.OK}
    for gaps, arm in ((frozenset(), Why.NATIVE), (frozenset({"arm"}), None)):
        d = desired(p, CATALOG, Host("aarch64", files, cannot_run=gaps))
        states = {w.label: w.verdict for w in d.wants if w.explicit}
        assert states == {"aarch64": Why.NATIVE, "arm": arm}


@pytest.mark.parametrize("host,native,foreign", [
    # what Debian's kernels did when booted (tests/test_family.py)
    ("x86_64", {"i386"}, set()),
    ("i386", set(), {"x86_64"}),  # a 32-bit kernel runs no 64-bit programs
    ("aarch64", {"arm"}, set()),
    ("arm", set(), {"aarch64"}),
    ("mips64el", {"mipsel", "mipsn32el"}, {"mips", "mips64", "mipsn32"}),  # nor the other order
    ("ppc64le", set(), {"ppc", "ppc64"}),
    ("riscv64", set(), {"riscv32"}),
    ("sh4", set(), {"sh4eb"}),
])
def test_where_the_catalog_decides_a_kernel_runs_only_what_it_was_seen_to(
        policy: PolicyWriter, host: str, native: set[str], foreign: set[str]) -> None:
    names = sorted({host} | native | foreign)
    p = load(policy, "arches: {" + ", ".join(f"{n}: {{}}" for n in names) + "}\n")
    files = {f"/usr/bin/qemu-{n}-static": FileState.OK for n in names}
    d = desired(p, CATALOG, Host(host, files))
    states = {w.label: w.verdict for w in d.wants if w.explicit}
    assert {n for n, v in states.items() if v is Why.NATIVE} == {host} | native
    assert all(states[n] is None for n in foreign), states


def test_emulator_preference_and_missing_emulator(policy: PolicyWriter) -> None:
    p = load(policy, "defaults: {emulators: [box64, qemu]}\narches: {x86_64: {}, s390x: {}}\n")
    files = {"/usr/local/bin/box64": FileState.OK, "/usr/bin/qemu-x86_64-static": FileState.OK}
    d = desired(p, CATALOG, Host("aarch64", files))
    want = {w.label: w for w in d.wants}
    assert (want["x86_64"].emulator, want["x86_64"].interpreter) == ("box64",
                                                                     "/usr/local/bin/box64")
    x86_64 = want["x86_64"].registration
    assert x86_64 is not None and x86_64.flags == Flags()
    assert want["s390x"].verdict is Why.MISSING_EMULATOR
    assert "install one" in want["s390x"].message


def test_only_regular_files_are_read_and_never_waited_on(policy: PolicyWriter,
                                                         tmp_path: Path) -> None:
    main = policy("arches: all\n")
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.yaml"
    zero.symlink_to("/dev/zero")
    big = tmp_path / "big.yaml"
    big.write_text("arches: all\n" + "#" * (1 << 20))
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(b"arches:\n  s390x: {}\n# caf\xe9\n")
    cases = {fifo: "the policy is a FIFO, not a regular file",
             zero: "the policy is a character device, not a regular file",
             tmp_path: "the policy is a directory, not a regular file",
             big: "larger than 1048576 bytes (1 MiB)",
             latin1: "3:6: byte 0xe9 is not UTF-8; save the file as UTF-8"}
    for path, words in cases.items():
        # In a thread, so that a read that blocked (the FIFO) fails the test instead of hanging
        # it; how fast refusals are is measured by bench/bad_input.py, not asserted here.
        with ThreadPoolExecutor(1) as pool:
            p = pool.submit(load_policy, str(main), CATALOG, str(path)).result(timeout=30)
        assert p.rejected and words in str(p.problems[0]), (path, p.problems)
        assert str(p.problems[0]).startswith(str(path))


@pytest.mark.parametrize("text,words", [
    ("# " + "x" * 1_000_000 + "\n", "1:1: the policy file is empty"),
    ("".join(f"k{i}: v\n" for i in range(100_000)), "10000:8: more than 20000 values"),
    ("arches: {" + ", ".join(f"arm{i}: {{}}" for i in range(5000)) + "}\n",
     "more than 30 problems; fix these first"),
], ids=["a megabyte of comments", "100k keys", "5000 unknown architectures"])
def test_bulk_is_refused_with_a_place(policy: PolicyWriter, text: str, words: str) -> None:
    p = load_policy(str(policy(text)), CATALOG)
    assert p.rejected and any(words in str(q) for q in p.problems), p.problems[-1]


def _nobody(p: Path) -> None:
    os.chown(p, 65534, 65534)


@pytest.mark.parametrize("make,words", [
    (lambda d: _nobody(d / "q"), "interpreter {d}/q is owned by uid 65534, not root"),
    (lambda d: (d / "q").chmod(0o777), "interpreter {d}/q is writable by group and others "
                                       "(mode 0777)"),
    (lambda d: (d / "q").chmod(0o775), "is writable by its group (mode 0775)"),
    (lambda d: d.chmod(0o757), "directory {d} is writable by others (mode 0757)"),
    (lambda d: _nobody(d), "directory {d} is owned by uid 65534"),
], ids=["owned by nobody", "world-writable", "group-writable", "in a world-writable directory",
        "in a directory owned by nobody"])
def test_an_interpreter_others_could_change_is_refused_and_never_left_registered(
        policy: PolicyWriter, trusted_dir: Path, make: Callable[[Path], None],
        words: str) -> None:
    shutil.copy("/usr/bin/qemu-arm-static", trusted_dir / "q")
    make(trusted_dir)
    p = load(policy, f"arches:\n  arm: {{interpreter: {trusted_dir}/q}}\n  s390x: {{}}\n")
    d = desired(p, CATALOG, probe_host(CATALOG, candidate_paths(p, CATALOG)))
    assert str(d.problems[0]).startswith(f"{p.files[0]}:2:22: interpreter {trusted_dir}/q is "
                                         "not trusted: ")
    assert words.format(d=trusted_dir) in d.problems[0].message
    arm = d.want("multiarch-arm")
    assert arm is not None and arm.registration is None and not arm.frozen  # removed if there


def test_a_symlink_is_judged_by_what_it_points_at(policy: PolicyWriter, trusted_dir: Path,
                                                  tmp_path: Path) -> None:
    shutil.copy("/usr/bin/qemu-arm-static", tmp_path / "q")  # under /tmp: anyone could swap it
    (trusted_dir / "q").symlink_to(tmp_path / "q")
    p = load(policy, f"arches:\n  arm: {{interpreter: {trusted_dir}/q}}\n")
    d = desired(p, CATALOG, probe_host(CATALOG, candidate_paths(p, CATALOG)))
    assert d.problems[0].message.endswith(
        "directory /tmp is writable by group and others (mode 1777): they can change what runs "
        "for every foreign program (chmod go-w /tmp)")


def test_drop_ins_are_layered_as_binfmt_d_is(tmp_path: Path) -> None:
    """ROOT/usr/lib (packages), ROOT/run (made at run time), ROOT/etc (the admin): a file of the
    same name in a later one wins; `.yml` is read too; all merge in name order."""
    main = tmp_path / "etc/multiarch/arches.yaml"
    dirs = {d: tmp_path / d / "multiarch/arches.d" for d in ("usr/lib", "run", "etc")}
    for d in dirs.values():
        d.mkdir(parents=True)
    main.write_text("arches: {s390x: {}, arm: {}}\n")
    (dirs["usr/lib"] / "50-rosetta.yaml").write_text("arches: {riscv64: {}}\n")
    (dirs["run"] / "50-rosetta.yaml").write_text("arches: {ppc64le: {}}\n")  # beats usr/lib
    (dirs["usr/lib"] / "60-vendor.yml").write_text("arches: {s390x: false}\n")
    (dirs["etc"] / "60-vendor.yml").write_text("arches: {mips64el: {}}\n")  # beats both
    p = load_policy(str(main), CATALOG)
    assert p.files == (str(main), str(dirs["run"] / "50-rosetta.yaml"),
                       str(dirs["etc"] / "60-vendor.yml"))
    assert sorted(p.arches) == ["arm", "mips64el", "ppc64le", "s390x"]
    assert p.arches["s390x"].enabled
    cat = run("multiarchctl", "cat-config", config=main)
    assert f"# {dirs['usr/lib']}/50-rosetta.yaml: overridden by {dirs['run']}/50-rosetta.yaml" \
        in cat.stdout


def test_a_daemon_parses_again_only_the_file_whose_text_changed(
        policy: PolicyWriter, monkeypatch: pytest.MonkeyPatch) -> None:
    import multiarchd.policy.files as files
    from multiarchd.policy.yamlnodes import parse as real
    parsed: list[str] = []

    def counted(text: str) -> files.Parsed:
        parsed.append(text)
        return real(text)
    monkeypatch.setattr(files, "parse", counted)
    main = policy("arches: {s390x: {}}\n")
    policy("arches: {arm64: {}}\n", "arches.d/10-arm.yaml")
    policy("arches: {riscv64: {}}\n", "arches.d/20-riscv.yaml")
    cache, catalog = files.PolicyCache(), load_catalog()
    first = cache.load(str(main), catalog)
    assert len(parsed) == 3 and not first.problems
    assert cache.load(str(main), catalog) is first and len(parsed) == 3  # nothing changed
    policy("arches: {riscv64: false}\n", "arches.d/20-riscv.yaml")
    second = cache.load(str(main), catalog)
    assert parsed[3:] == ["arches: {riscv64: false}\n"]  # that file only
    assert set(second.arches) == set(first.arches) and second != first
