"""Every other program multiarchd runs (a probe, a trial of a new interpreter file, a CPU-model
trial) is bounded in time, takes its whole process tree with it, runs off the service's loop,
and says what happened; an emulator that crashes now and then is held, not taken."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from multiarchd import identity
from multiarchd.core.probes import Verdict
from multiarchd.host.bounded import Ran, run_bounded
from multiarchd.host.probing import RUNS, judged
from multiarchd.host.trial import Trials
from tests.support.binfmt import PrivateBinfmt
from tests.support.commands import DaemonStarter, PolicyWriter
from tests.support.fakes import Deferred

QEMU = Path("/usr/bin/qemu-s390x-static")


def _alive(token: str) -> list[int]:
    """Processes whose command line holds `token` (a sleep's unusual length)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if token.encode() in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"):
                found.append(int(pid))
        except OSError:
            continue
    return found


@pytest.mark.fast
def test_a_file_that_fails_one_run_in_four_passes_under_once_in_a_hundred() -> None:
    """Runs fail apart from each other (brk randomisation strikes each run alike): a file
    that fails one run in four passes all RUNS with chance (3/4)^RUNS, and RUNS is the fewest
    runs that make it 1 % or less."""
    assert (3 / 4) ** RUNS <= 0.01 < (3 / 4) ** (RUNS - 1)


@pytest.mark.fast
def test_a_trial_is_kept_for_its_file_and_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    trials, asked = Trials(), []

    def work() -> Verdict:
        asked.append(1)
        return Verdict("s390x", "ok", "probe ran")
    assert trials.answer("multiarch-s390x", "file 1", work) == trials.answer(
        "multiarch-s390x", "file 1", work)
    assert len(asked) == 1
    trials.answer("multiarch-s390x", "file 2", work)  # another file: tried
    assert len(asked) == 2
    monkeypatch.setattr(identity, "kernel", lambda: "6.99.0 #1 SMP")  # a new kernel: again
    trials.answer("multiarch-s390x", "file 2", work)
    assert len(asked) == 3


@pytest.mark.fast
def test_off_the_loop_a_trial_answers_later_and_asks_for_a_run() -> None:
    background, runs = Deferred(), []
    trials = Trials()
    trials.off_loop(background.run, lambda: runs.append(1))
    ok = Verdict("s390x", "ok", "probe ran")
    assert trials.answer("multiarch-s390x", "file", lambda: ok) is None  # being tried
    assert trials.answer("multiarch-s390x", "file", lambda: ok) is None  # started once
    assert len(background.held) == 1 and not runs
    background.finish()
    assert runs == [1]
    assert trials.answer("multiarch-s390x", "file", lambda: ok) == ok
    assert trials.take_fresh("multiarch-s390x") and not trials.take_fresh("multiarch-s390x")


@pytest.mark.parametrize("shape", [
    "setsid sleep {t} &",  # a session of its own
    "(sleep {t} &)",  # a double fork
    "sh -c 'exec >&- 2>&-; exec sleep {t}' &",  # closes the pipes it was given
    "sleep {t} &",  # keeps them
])
def test_a_run_ends_with_its_whole_tree(shape: str) -> None:
    token = "119.31"
    started = time.monotonic()
    ran = run_bounded(["/bin/sh", "-c", shape.format(t=token) + "\necho done; exit 42"])
    assert time.monotonic() - started < 10  # nothing waited for the child's pipes
    assert (ran.status, ran.out, ran.killed) == (42, "done\n", 1), ran
    assert _alive(token) == []
    assert judged("s390x", ran).message == "probe ran; killed 1 process it left behind"


def test_a_run_that_hangs_is_stopped_with_its_tree_and_says_so() -> None:
    token = "119.32"
    ran = run_bounded(["/bin/sh", "-c", f"setsid sleep {token} &\nexec sleep 1000.32"], 17,
                      42, timeout=1)
    assert (ran.status, ran.runs, ran.killed, ran.survivors) == (None, 1, 2, 0), ran
    assert _alive(token) == [] and _alive("1000.32") == []
    assert judged("s390x", ran).message == \
        "the emulator hung for more than 20 s: stopped; killed 2 processes"


def test_runs_stop_at_the_first_that_fails(trusted_dir: Path) -> None:
    counter = trusted_dir / "count"
    counter.write_text("0")
    flaky = _flaky(trusted_dir, counter, "/bin/true")
    ran = run_bounded([str(flaky)], RUNS, 0)
    assert (ran.status, ran.runs, counter.read_text().strip()) == (-11, 4, "4"), ran
    assert judged("s390x", ran).message.startswith(
        f"emulator crashed with signal 11 (SIGSEGV) on run 4 of {RUNS}")


def _flaky(where: Path, counter: Path, then: str) -> Path:
    """A program that crashes (SIGSEGV) on every fourth run, counted in `counter` (so the
    pattern is the same every time), and else runs `then`."""
    path = where / "flaky"
    path.write_text(f"#!/bin/sh\nn=$(($(cat {counter}) + 1))\necho $n >{counter}\n"
                    f"[ $((n % 4)) -ne 0 ] || kill -SEGV $$\nexec {then} \"$@\"\n")
    path.chmod(0o755)
    return path


def _emulator(trusted_dir: Path) -> Path:
    emu = trusted_dir / "emu" / "qemu-s390x-static"
    emu.parent.mkdir(exist_ok=True)
    shutil.copy(QEMU, emu)
    return emu


def test_an_emulator_that_crashes_one_run_in_four_is_held(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter,
        trusted_dir: Path, busybox: dict[str, Path]) -> None:
    emu = _emulator(trusted_dir)
    d = start_daemon(policy(f"arches:\n  s390x: {{interpreter: {emu}}}\n"), binfmt)
    counter = trusted_dir / "count"
    counter.write_text("0")
    staged = _flaky(trusted_dir / "emu", counter, str(QEMU))
    since = d.mark()
    os.replace(staged, emu)  # as dpkg renames a new file over the old
    said = d.wait_log(r"multiarch-s390x held: the new .* failed its probe", since, timeout=60)
    assert f"crashed with signal 11 (SIGSEGV) on run 4 of {RUNS}" in said, said
    assert counter.read_text().strip() == "4"  # (it ran three times before: taken, before)
    # The kernel still runs the QEMU it opened at registration.
    assert binfmt.exec(str(busybox["s390x"]), "uname", "-m").stdout == "s390x\n"


def test_under_a_new_kernel_a_verified_emulator_is_tried_as_often_as_a_new_file(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter,
        trusted_dir: Path, tmp_path: Path) -> None:
    """A file proven at an earlier start on another kernel (its kept verdict says so) is not
    believed on this one after one run: a file that crashes one run in four is caught."""
    counter = trusted_dir / "count"
    counter.write_text("0")
    (trusted_dir / "emu").mkdir()
    emu = _flaky(trusted_dir / "emu", counter, str(QEMU))
    path = policy(f"arches:\n  s390x: {{interpreter: {emu}}}\n")
    d = start_daemon(path, binfmt, inside=True)
    d.wait_notify("STATUS=converged: 1 active (1 verified)")
    assert d.stop() == 0 and counter.read_text().strip() == "1"  # (its first run passes)
    verdicts = tmp_path / "cache" / "verdicts.json"
    kept = json.loads(verdicts.read_text())
    kept["s390x"][1] = kept["s390x"][1].replace(identity.kernel(), "6.1.0-99-amd64 #1 SMP")
    verdicts.write_text(json.dumps(kept))  # as if proven under the kernel booted before
    counter.write_text("0")
    d = start_daemon(path, binfmt, inside=True)
    said = d.wait_log(r"s390x: probe failed", timeout=60)
    assert f"crashed with signal 11 (SIGSEGV) on run 4 of {RUNS}" in said, said
    assert counter.read_text().strip() == "4"
    d.wait_notify("STATUS=degraded: 0 active, 1 error")
    assert not any("verified" in m for m in d.messages if m.startswith("STATUS=")), d.messages


@pytest.mark.parametrize("hangs", [False, True], ids=["leaves a setsid child", "hangs"])
def test_a_trial_holds_up_no_repair_and_leaves_no_process(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter,
        trusted_dir: Path, hangs: bool) -> None:
    """An interpreter that starts `setsid sleep &` (and, in the second case, never ends):
    while it is tried, another entry removed is repaired within 1 s; when its trial ends, no
    process it started is left."""
    emu = _emulator(trusted_dir)
    d = start_daemon(policy(f"arches:\n  s390x: {{interpreter: {emu}}}\n  arm: {{}}\n"), binfmt,
                     inside=True)  # (where its probes can run: verified)
    d.wait_notify("STATUS=converged: 2 active (2 verified)")
    token = "119.33"
    started = trusted_dir / "started"  # written at each run of the new file
    os.mkfifo(started)
    staged = trusted_dir / "emu" / "staged"
    then = "exec sleep 1000.33" if hangs else f"exec {QEMU} \"$@\""
    staged.write_text(f"#!/bin/sh\necho >{started}\nsetsid sleep {token} &\n{then}\n")
    staged.chmod(0o755)
    fifo = os.open(started, os.O_RDONLY | os.O_NONBLOCK)  # kept open: the script never blocks
    try:
        since = d.mark()
        os.replace(staged, emu)
        assert select.select([fifo], [], [], 60)[0], "the new file's trial did not start"
        removed = d.mark()
        begun = time.monotonic()
        binfmt.write("multiarch-arm", "-1")
        d.wait_log("repaired multiarch-arm", removed)
        took = time.monotonic() - begun
        print(f"repaired after {took * 1000:.0f} ms while the trial ran")
        assert took < 1.0
        assert any("multiarch-s390x held: the new" in x and "is being tried on its probe" in x
                   for x in d.lines[since[0]:])
        if hangs:
            said = d.wait_log(r"multiarch-s390x held: the new .* failed its probe", since,
                              timeout=60)
            assert "hung for more than 20 s: stopped; killed 3 processes" in said, said
        else:
            d.wait_log(r"replaced multiarch-s390x: .* was replaced on disk", since, timeout=60)
            d.wait_notify("STATUS=converged: 2 active (2 verified)", since, timeout=60)
    finally:
        os.close(fifo)
    assert _alive(token) == [] and _alive("1000.33") == []


def test_a_cpu_model_file_is_made_again_off_the_loop_and_replaced_once(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter,
        trusted_dir: Path, busybox: dict[str, Path], state_dir: Path) -> None:
    """An upgraded QEMU under an entry that carries a CPU model: its file is made again and
    tried on the workers while the entry stays on the one it opened, then registered once
    (the trial it had as it was made is its trial)."""
    qemu = trusted_dir / "qemu-aarch64-static"
    shutil.copy("/usr/bin/qemu-aarch64-static", qemu)
    d = start_daemon(policy(f"arches:\n  aarch64: {{interpreter: {qemu}, cpu: cortex-a72}}\n"),
                     binfmt, inside=True)
    carried = state_dir / "cpu" / "aarch64"
    before = carried.stat().st_ino
    since = d.mark()
    shutil.copy("/usr/bin/qemu-aarch64-static", trusted_dir / "new")
    os.replace(trusted_dir / "new", qemu)
    d.wait_log("multiarch-aarch64 held: the file that carries CPU model cortex-a72 is being "
               "made", since)
    d.wait_log(r"replaced multiarch-aarch64", since, timeout=60)
    d.wait_notify("STATUS=converged: 1 active (1 verified)", since, timeout=60)
    assert carried.stat().st_ino != before
    lines = d.lines[since[0]:]
    assert sum("multiarch-aarch64" in x and "replaced" in x for x in lines) == 1, lines
    assert not any("failed" in x for x in lines), lines
    assert binfmt.exec(str(busybox["arm64"]), "uname", "-m").stdout == "aarch64\n"



def test_a_run_stopped_from_outside_is_no_crash(tmp_path: Path) -> None:
    """systemd stops the unit: its SIGTERM reaches the supervisor and the program alike. The
    verdict says the probe was stopped (untested), not that the emulator failed."""
    said = tmp_path / "said"
    os.mkfifo(said)
    got: list[Ran] = []
    worker = threading.Thread(target=lambda: got.append(run_bounded(
        ["/bin/sh", "-c", f"echo $PPID >{said}; exec sleep 1000.34"])))
    worker.start()
    with open(said) as f:
        supervisor = int(f.read())
    os.killpg(supervisor, signal.SIGTERM)  # (its process group, as systemd's stop does)
    worker.join(60)
    [ran] = got
    assert ran.status == -signal.SIGTERM
    assert judged("s390x", ran) == Verdict(
        "s390x", "untested", "the probe was stopped by SIGTERM before it ended")
