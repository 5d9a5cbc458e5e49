"""`multiarchctl` without a daemon: plan, apply --local, status --local, check-config, arches,
cat-config; text for people, --json for scripts, exit codes 0/1/2."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.binfmt import PrivateBinfmt
from tests.support.commands import PolicyWriter, run, state_of
from tests.support.paths import DEFAULT_POLICY



def ctl(*args: str | Path, binfmt: PrivateBinfmt | None = None,
        config: Path = DEFAULT_POLICY) -> subprocess.CompletedProcess[str]:
    return run("multiarchctl", *args, binfmt=binfmt, config=config)


def test_plan_then_apply_then_nothing_to_do(binfmt: PrivateBinfmt) -> None:
    plan = ctl("plan", binfmt=binfmt)
    assert plan.returncode == 1
    assert len(plan.stdout.splitlines()) == 33
    data = json.loads(ctl("plan", "--json", binfmt=binfmt).stdout)
    first = data[0]
    assert first["action"] == "register" and first["entry"] == "multiarch-aarch64"
    assert first["register"].startswith(":multiarch-aarch64:M:0:\\x7fELF\\x02\\x01\\x01")
    applied = ctl("apply", "--local", binfmt=binfmt)
    assert applied.returncode == 0, applied.stderr
    assert "converged: 33 active" in applied.stdout
    again = ctl("plan", binfmt=binfmt)
    assert (again.returncode, again.stdout.strip()) == (0, "nothing to do")


def test_status_local_tells_pending_then_active(binfmt: PrivateBinfmt) -> None:
    before = ctl("status", "--local", binfmt=binfmt)
    assert before.returncode == 1 and state_of(before.stdout, "aarch64") == "pending"
    ctl("apply", "--local", binfmt=binfmt)
    after = ctl("status", "--local", "--json", binfmt=binfmt)
    assert after.returncode == 0
    data = json.loads(after.stdout)
    assert data["state"] == "converged"
    states = {a["name"]: a["state"] for a in data["architectures"]}
    assert states["s390x"] == "active" and states["x86_64"] == "native"
    s390x = next(a for a in data["architectures"] if a["name"] == "s390x")
    assert s390x["interpreter"] == "/usr/bin/qemu-s390x-static" and s390x["flags"] == "PF"


def test_status_and_apply_without_daemon_point_at_local(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path}/no-bus")
    for verb in ("status", "apply"):
        r = run("multiarchctl", verb)
        assert r.returncode == 1
        assert r.stderr.count("\n") == 1, r.stderr
        assert "multiarchd is not running" in r.stderr
        assert f"multiarchctl {verb} --local" in r.stderr
    r = run("multiarchctl", "reload")
    assert r.returncode == 1 and "multiarchd is not running" in r.stderr


def test_check_config(policy: PolicyWriter) -> None:
    main = policy("arches: {arm64: {}}\n")
    good = ctl("check-config", config=main)
    assert good.returncode == 0 and good.stdout.strip().endswith(": ok")
    policy("arches: {arm64: {flags: [Z]}}\n", "arches.d/10-bad.yaml")
    r = ctl("check-config", config=main)
    assert r.returncode == 2
    assert r.stdout.strip() == (f"{main.parent}/arches.d/10-bad.yaml:1:26: unknown flag 'Z'; "
                                "allowed: P (preserve-argv0), O (open-binary), C (credentials), "
                                "F (fix-binary)")
    alone = ctl("check-config", str(main), "--json")  # the main file by itself is fine
    assert json.loads(alone.stdout)["ok"] is True and alone.returncode == 0
    assert json.loads(alone.stdout)["role"] == "a main policy file"


@pytest.mark.parametrize("text", ["", "# only a comment\n", "defaults: {flags: [F]}\n"])
def test_check_config_judges_a_file_as_a_run_would(policy: PolicyWriter, text: str) -> None:
    """A file outside any arches.d is a main file: what --once --config FILE rejects, check-config
    FILE rejects too; the same text in arches.d is a drop-in, which may say nothing."""
    main = policy("arches: all\n")
    lone = main.with_name("other.yaml")
    lone.write_text(text)
    r = ctl("check-config", str(lone))
    assert r.returncode == 2 and f"{lone}:1:1: " in r.stdout, r.stdout
    dropin = policy(text, "arches.d/50-x.yaml").parent / "arches.d" / "50-x.yaml"
    r = ctl("check-config", str(dropin))
    assert r.returncode == 0 and r.stdout.strip().endswith(": ok (judged as a drop-in)")


def test_arches_lists_the_whole_catalog(binfmt: PrivateBinfmt) -> None:
    r = ctl("arches", binfmt=binfmt)
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0] == "host: x86_64"
    assert len(lines) == 2 + 35
    x86 = next(line for line in lines if line.startswith("x86_64 "))
    assert "amd64" in x86 and "native" in x86
    data = json.loads(ctl("arches", "--json", binfmt=binfmt).stdout)
    arm = next(a for a in data["architectures"] if a["name"] == "arm")
    assert arm["aliases"] == ["armhf", "armel"]
    assert arm["interpreter"] == "/usr/bin/qemu-arm-static"


def test_cat_config_prints_files_in_merge_order(policy: PolicyWriter) -> None:
    policy("arches: {s390x: {}}\n", "arches.d/20-b.yaml")
    policy("arches: {arm: {}}\n", "arches.d/10-a.yaml")
    main = policy("arches: all\n")
    r = ctl("cat-config", config=main)
    headers = [line for line in r.stdout.splitlines() if line.startswith("# /")]
    assert headers == [f"# {main}", f"# {main.parent}/arches.d/10-a.yaml",
                       f"# {main.parent}/arches.d/20-b.yaml"]


def test_version_bare_status_and_json_errors_as_admins_expect(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert run("multiarchctl", "--version").stdout.strip().startswith("multiarchctl ")
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path}/no-bus")
    bare, status = run("multiarchctl"), run("multiarchctl", "status")
    assert (bare.returncode, bare.stderr) == (status.returncode, status.stderr)
    missing = tmp_path / "none.yaml"
    for verb in (("status", "--json"), ("plan", "--json", "--config", str(missing)),
                 ("test", "--json", "arm65"), ("status", "--local", "--json", "--config",
                                               str(missing))):
        r = run("multiarchctl", *verb)
        data = json.loads(r.stdout)  # always a JSON document, errors too
        assert r.returncode in (1, 2) and r.returncode == data.get("exit_code", r.returncode)
    # Every verb that reads the policy says it is missing (--config means --local).
    for name in ("status", "plan", "apply", "test", "check-config", "arches", "cat-config"):
        r = run("multiarchctl", name, "--config", str(missing))
        assert r.returncode == 2, (name, r.stdout, r.stderr)
        assert "none.yaml" in r.stdout + r.stderr and "not found" in r.stdout + r.stderr, name
