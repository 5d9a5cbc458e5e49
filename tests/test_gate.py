"""The upgrade gate's rules (core/gate.py), pure: which new interpreter files are tried, and
what a failed trial or a pin makes of the entry in the plan, the report and the metrics."""

from __future__ import annotations

from multiarchd.core.gate import changes, gated, nothing_to_release, pinned
from multiarchd.core.metrics import Counters, textfile
from multiarchd.core.plan import plan
from multiarchd.core.probes import Verdict
from multiarchd.core.report import DaemonState, State, build_report
from multiarchd.core.desired import Desired, desired
from multiarchd.model.flags import Flags
from multiarchd.model.host import Host
from multiarchd.model.policy import ArchRule, Policy
from multiarchd.model.problems import Place
from multiarchd.model.observed import Observed

from tests.test_plan import CATALOG, HOST, QEMU, entry, reg

# The file at the path now and the one registered, as identity.py notes them.
NEW, OLD = "200:100755:0:0:4096:2:2:0:/q", "100:100755:0:0:4096:1:1:0:/q"
OPENED = {"multiarch-s390x": OLD}
FAILED = Verdict("s390x", "failed", "it crashed with signal 11 (SIGSEGV)")


def _desired(flags: str = "FP", hold: bool = False, path: str | None = None) -> Desired:
    rules = {"s390x": ArchRule(arch="s390x", place=Place("t"), flags=Flags.parse(flags),
                               hold=hold, interpreter=path)}
    files = dict(HOST.files)
    if path:
        files[path] = files[QEMU.format("s390x")]
    host = Host("x86_64", files, {QEMU.format("s390x"): NEW, **({path: NEW} if path else {})})
    return desired(Policy(files=("t",), arches=rules), CATALOG, host)


def test_only_another_file_under_a_registered_entry_is_tried() -> None:
    d = _desired()
    registered = Observed((entry(reg("s390x")),))
    assert [c.entry for c in changes(d, registered, OPENED)] == ["multiarch-s390x"]
    assert changes(d, registered, {"multiarch-s390x": NEW}) == []  # the same file
    assert changes(d, registered, {}) == []  # not known (a one-shot run): nothing to hold
    assert changes(d, Observed(()), OPENED) == []  # nothing works yet: the verifier probes it
    moved = _desired(path="/opt/qemu/qemu-s390x-static")
    [c] = changes(moved, registered, {})  # the policy names another path
    assert not c.same_path and not pinned(c, ())


def test_a_failed_trial_with_f_holds_the_entry_as_it_is() -> None:
    d = _desired()
    observed = Observed((entry(reg("s390x")),))
    held = gated(d, changes(d, observed, OPENED), {"multiarch-s390x": FAILED}, ())
    assert plan(held, observed, OPENED).actions == ()  # the kernel keeps the file it opened
    [s] = [s for s in build_report(held, observed).statuses if s.name == "s390x"]
    assert s.state is State.HELD and "failed its probe (it crashed with signal 11" in s.message
    assert "inode 200" in s.message and "the kernel still runs the one it opened" in s.message
    assert build_report(held, observed).exit_code() == 1
    metrics = textfile(DaemonState.DEGRADED, build_report(held, observed), Counters(), 0.0)
    assert 'multiarchd_architecture_state{name="s390x",kind="arch",state="held"} 1' in metrics
    # and one that passed is replaced, as before
    ok = gated(d, changes(d, observed, OPENED), {"multiarch-s390x": Verdict("s390x", "ok")}, ())
    assert [a.kind.value for a in plan(ok, observed, OPENED).actions] == ["replace"]


def test_a_failed_trial_without_f_disables_the_entry() -> None:
    d = _desired(flags="P")
    observed = Observed((entry(reg("s390x", flags=Flags.parse("P"))),))
    held = gated(d, changes(d, observed, OPENED), {"multiarch-s390x": FAILED}, ())
    assert [a.kind.value for a in plan(held, observed, OPENED).actions] == ["disable"]
    disabled = Observed((entry(reg("s390x", flags=Flags.parse("P")), enabled=False),))
    held = gated(d, changes(d, disabled, OPENED), {"multiarch-s390x": FAILED}, ())
    assert plan(held, disabled, OPENED).actions == ()  # not enabled again
    [s] = [s for s in build_report(held, disabled).statuses if s.name == "s390x"]
    assert s.state is State.HELD and "disabled, since without F" in s.message


def test_hold_true_pins_a_new_file_at_the_same_path_until_released() -> None:
    d = _desired(hold=True)
    observed = Observed((entry(reg("s390x")),))
    [c] = changes(d, observed, OPENED)
    assert pinned(c, ()) and not pinned(c, {"multiarch-s390x"})
    held = gated(d, [c], {}, {"multiarch-s390x"})
    [s] = [s for s in build_report(held, observed).statuses if s.name == "s390x"]
    assert s.state is State.HELD and "multiarchctl release s390x" in s.message


def test_while_a_file_is_tried_off_the_loop_the_entry_stays_as_it_is() -> None:
    """The service tries a new file on a worker and runs again when the answer comes: until
    then an F entry keeps the file it opened, and one without F (which runs the new file at
    its next exec already) is left enabled, not disabled and enabled again."""
    d = _desired()
    observed = Observed((entry(reg("s390x")),))
    trying = gated(d, changes(d, observed, OPENED), {}, (), {"multiarch-s390x"})
    assert plan(trying, observed, OPENED).actions == ()
    [s] = [s for s in build_report(trying, observed).statuses if s.name == "s390x"]
    assert s.state is State.HELD and "is being tried on its probe" in s.message
    d = _desired(flags="P")
    observed = Observed((entry(reg("s390x", flags=Flags.parse("P"))),))
    trying = gated(d, changes(d, observed, OPENED), {}, (), {"multiarch-s390x"})
    assert plan(trying, observed, OPENED).actions == ()
    [s] = [s for s in build_report(trying, observed).statuses if s.name == "s390x"]
    assert s.state is State.ACTIVE


def test_hold_true_shows_in_status_before_anything_is_held() -> None:
    """An admin reading status learns that a new file of this interpreter will wait for them,
    before the day it does (the policy's own words)."""
    observed = Observed((entry(reg("s390x")),))
    [s] = [s for s in build_report(_desired(hold=True), observed).statuses if s.name == "s390x"]
    assert s.state is State.ACTIVE, s
    assert s.message.startswith("hold: true: ") and "multiarchctl release s390x" in s.message
    [s] = [s for s in build_report(_desired(), observed).statuses if s.name == "s390x"]
    assert "hold" not in s.message


def test_release_says_hold_true_as_the_policy_does() -> None:
    """The words of `release` where nothing waits: never "not held by hold: true" for an
    architecture whose policy says `hold: true`."""
    observed = Observed((entry(reg("s390x")),))
    [want] = [w for w in _desired(hold=True).wants if w.label == "s390x"]
    said = nothing_to_release("s390x", want, "active")
    assert said == ("s390x: nothing to release: hold: true holds no new file of its "
                    "interpreter yet (its state is active)")
    [plain] = [w for w in _desired().wants if w.label == "s390x"]
    assert "the policy does not say hold: true for it (its state is active)" in \
        str(nothing_to_release("s390x", plain, "active"))
    assert nothing_to_release("s390x", None, None) == \
        "s390x: nothing to release: it is not in the policy"
    [c] = changes(_desired(hold=True), observed, OPENED)
    [held] = [w for w in gated(_desired(hold=True), [c], {}, {"multiarch-s390x"}).wants
              if w.label == "s390x"]
    assert nothing_to_release("s390x", held, "held") is None  # release takes it
    failed = gated(_desired(), changes(_desired(), observed, OPENED),
                   {"multiarch-s390x": FAILED}, ())
    [w] = [w for w in failed.wants if w.label == "s390x"]
    assert "held, but not by hold: true: the new" in str(nothing_to_release("s390x", w, "held"))
