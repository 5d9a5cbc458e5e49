"""A `Test` of N names costs O(N) and probes each architecture once, however often it is named:
the verifier the daemon's Test goes to, the service in front of it, and `multiarchctl test`'s
local path. Counted, not timed: probes started, work held, answers given. No root, no kernel."""

from __future__ import annotations

from pathlib import Path

import pytest

from multiarchd.catalog import load_catalog
from multiarchd.core.probes import Verdict
from multiarchd.host import probing
from multiarchd.service.verifier import Verifier

from tests.support.fakes import Answers, Deferred, FakeLog, Script, result
from tests.test_service_parts import Rig

COPIES = 200_000


def test_the_verifier_probes_a_name_given_200000_times_once_and_answers_once() -> None:
    """Before: a probe started (and a closure held) per copy, and each completion after the
    last name's sorted the whole list again with list.index: quadratic, 330 MB, minutes."""
    probed: list[list[str]] = []

    def probe(arches: list[str], runs: int) -> list[Verdict]:
        probed.append(arches)
        return [Verdict(a, "ok", "probe ran") for a in arches]
    background = Deferred()
    verifier = Verifier(probe, FakeLog(), background)
    answers: list[list[Verdict]] = []
    names = ["s390x"] * (COPIES // 2) + ["aarch64"] + ["s390x"] * (COPIES // 2)
    verifier.test(names, None, answers.append)
    assert len(background.held) == 2  # the work held while probes run: one per architecture
    background.finish()
    assert probed == [["s390x"], ["aarch64"]]
    assert [[v.arch for v in a] for a in answers] == [["s390x", "aarch64"]]  # once, in order


def test_the_daemons_test_of_200000_copies_is_one_probe_and_one_answer(tmp_path: Path) -> None:
    rig = Rig(tmp_path, Script(result()))
    answers = Answers()
    rig.service.test(["arm64", "s390x"] * (COPIES // 2), answers)  # an alias counts as its arch
    assert rig.probed == [["aarch64"], ["s390x"]]
    assert answers.got == [[Verdict("aarch64", "ok", "probe ran"),
                              Verdict("s390x", "ok", "probe ran")]]


def test_multiarchctl_test_run_locally_probes_a_repeated_name_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The local path (no daemon) ran a probe per copy. The probe is counted, not run: no exec
    goes through this host's table here."""
    ran: list[str] = []

    def run_probe(arch: str, argv: list[str], runs: int = probing.RUNS) -> Verdict:
        ran.append(arch)
        return Verdict(arch, "ok", "probe ran")
    monkeypatch.setattr(probing, "run_probe", run_probe)
    monkeypatch.setattr(probing, "same_table", lambda binfmt_dir: True)
    verdicts = probing.verify(["s390x"] * COPIES + ["aarch64"], load_catalog())
    assert ran == ["s390x", "aarch64"]
    assert [v.arch for v in verdicts] == ["s390x", "aarch64"]
