"""Policy files: what they mean, and a clear error with file:line:column for every bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from multiarchd.catalog import load_catalog
from multiarchd.core.desired import Why, desired
from multiarchd.host.facts import candidate_paths, probe_host
from multiarchd.model.flags import Flags
from multiarchd.model.host import FileState, Host
from multiarchd.model.policy import ForeignMode, Policy
from multiarchd.policy.files import load_policy

from tests.support.commands import PolicyWriter

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
    ("arches:\n  arm65: {}\n", "2:3", "unknown architecture 'arm65' (did you mean 'arm64'?)",
     ("arch", "arm65")),
    ("arches:\n  arm64: {}\n  aarch64: {}\n", "3:3", "'aarch64' is given twice: as 'arm64' at "
     "line 2", ("arch", "aarch64")),
    ("arches:\n  riscv64: {flags: [F, X]}\n", "2:24", "unknown flag 'X'; allowed: P",
     ("arch", "riscv64")),
    ("arches:\n  arm: {interpreter: bin/qemu-arm}\n", "2:22", "relative path", ("arch", "arm")),
    ("arches:\n  arm: {interpreter: '/opt/a:b'}\n", "2:22", "contains ':' or a newline",
     ("arch", "arm")),
    ("arches:\n  arm: {interpreter: \"/opt/a\\nb\"}\n", "2:22", "contains ':' or a newline",
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
     "extension 'a/b' must be", ("custom", "e")),
    ("custom:\n  - name: e\n    interpreter: /bin/true\n", "2:5", "needs exactly one of",
     ("custom", "e")),
    ("custom:\n  - name: e\n    extension: exe\n", "2:5", "needs a 'interpreter'",
     ("custom", "e")),
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


def test_missing_main_file_is_a_problem_not_an_empty_policy(tmp_path: Path) -> None:
    p = load_policy(str(tmp_path / "arches.yaml"), CATALOG)
    assert p.rejected
    assert "policy file not found" in p.problems[0].message
    assert "arches: {}" in p.problems[0].message


@pytest.mark.parametrize("mode,state,words", [(0o755, None, ""),
                                               (0o644, "not-executable", "not an executable"),
                                               (None, "missing", "does not exist")])
def test_explicit_interpreter_must_exist_and_run(policy: PolicyWriter, tmp_path: Path, mode: int | None,
                                                 state: str | None, words: str) -> None:
    interp = tmp_path / "qemu-arm"
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
