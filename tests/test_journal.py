"""Structured messages in a real (private) systemd-journald, read back with journalctl -o json."""

from __future__ import annotations


import signal
import subprocess


from multiarchd.catalog import load_catalog
from multiarchd.core.messages import Event
from multiarchd.model.flags import Flags
from multiarchd.model.registration import Registration

from tests.support.binfmt import PrivateBinfmt
from tests.support.commands import DaemonStarter, PolicyWriter
from tests.support.journal import PrivateJournal
from tests.support.paths import BIN, DEFAULT_POLICY
from tests.test_foreign_bytes import ODD, OURS, write



def ours(journal: PrivateJournal) -> list[dict[str, str]]:
    """multiarchd's messages, but the debug ones (whether the boot record was replayed)."""
    return [r for r in journal.messages("SYSLOG_IDENTIFIER=multiarchd")
            if r.get("PRIORITY") != "7"]


def test_once_writes_one_structured_message_per_change(
        journal: PrivateJournal, binfmt: PrivateBinfmt) -> None:
    subprocess.run(journal.enter(str(BIN / "multiarchd"), "--once", "--config",
                                 str(DEFAULT_POLICY), "--binfmt-dir", binfmt.path,
                                 "--log-target", "journal"),
                   check=True, capture_output=True, timeout=60)
    messages = ours(journal)
    registered = [r for r in messages if r["MESSAGE_ID"] == Event.REGISTERED.message_id]
    assert len(registered) == 33 == len(messages)
    s390x = next(r for r in registered if r["MULTIARCH_ARCH"] == "s390x")
    assert s390x["MULTIARCH_ENTRY"] == "multiarch-s390x"
    assert s390x["MULTIARCH_ACTION"] == "register"
    assert s390x["PRIORITY"] == "6"
    assert s390x["MESSAGE"].startswith("registered multiarch-s390x: s390x via /usr/bin/qemu-s390x")


def test_daemon_tells_drift_policy_errors_and_conflicts_and_no_noise(
        journal: PrivateJournal, binfmt: PrivateBinfmt, policy: PolicyWriter,
        start_daemon: DaemonStarter) -> None:
    path = policy("arches: {s390x: {}, arm: {}}\n")
    d = start_daemon(path, binfmt, "--repair-limit", "1", "--repair-window", "600",
                     journal=journal)
    before = len(ours(journal))
    d.reload()  # a converged run: nothing at info level
    assert len(ours(journal)) == before

    since = d.mark()
    binfmt.write("multiarch-arm", "0")
    d.wait_notify("STATUS=", since)
    d.wait_until(lambda: any(r["MESSAGE_ID"] == Event.DRIFT_REPAIRED.message_id
                             for r in ours(journal)), "drift message")
    drift = next(r for r in ours(journal) if r["MESSAGE_ID"] == Event.DRIFT_REPAIRED.message_id)
    assert (drift["MULTIARCH_ENTRY"], drift["MULTIARCH_ACTION"]) == ("multiarch-arm", "enable")

    binfmt.write("multiarch-arm", "0")  # again: over the limit of 1, so a conflict
    d.wait_until(lambda: any(r["MESSAGE_ID"] == Event.CONFLICT.message_id
                             for r in ours(journal)), "conflict message")

    path.write_text("arches: {s390x: {flags: [Q]}}\n")
    d.wait_until(lambda: any(r["MESSAGE_ID"] == Event.POLICY_REJECTED.message_id
                             for r in ours(journal)), "policy message")
    rejected = next(r for r in ours(journal)
                    if r["MESSAGE_ID"] == Event.POLICY_REJECTED.message_id)
    assert rejected["MESSAGE"].startswith(f"{path}:1:26: unknown flag 'Q'")
    assert rejected["MULTIARCH_ARCH"] == "s390x" and rejected["PRIORITY"] == "3"


def test_auto_target_follows_journal_stream(journal: PrivateJournal, binfmt: PrivateBinfmt,
                                            policy: PolicyWriter) -> None:
    config = policy("arches: {s390x: {}}\n")
    # systemd-cat connects stderr to journald's stream; JOURNAL_STREAM names it, as systemd does.
    script = ('JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec "$@"')
    subprocess.run(journal.enter("systemd-cat", "-t", "multiarchd-stream", "sh", "-c", script,
                                 "sh", str(BIN / "multiarchd"), "--once", "--config", str(config),
                                 "--binfmt-dir", binfmt.path),
                   check=True, capture_output=True, timeout=60)
    [message] = ours(journal)
    assert message["MESSAGE_ID"] == Event.REGISTERED.message_id
    assert message["MULTIARCH_ARCH"] == "s390x"
    plain = subprocess.run([str(BIN / "multiarchd"), "--once", "--config", str(config),
                            "--binfmt-dir", binfmt.path], capture_output=True, text=True)
    assert plain.returncode == 0 and len(ours(journal)) == 1  # a pipe: plain text, not journal


def test_an_audit_finding_is_one_structured_message_while_it_lasts(
        journal: PrivateJournal, binfmt: PrivateBinfmt, policy: PolicyWriter,
        start_daemon: DaemonStarter) -> None:
    x86 = load_catalog().arches["x86_64"]
    # An entry that would take this host's own programs, left disabled (it is a finding all
    # the same: it takes them once enabled).
    line = Registration("takeover", "/usr/bin/qemu-arm-static", Flags.parse(""), x86.magic,
                        x86.mask).register_line()
    binfmt.write("register", line)
    binfmt.write("takeover", "0")
    d = start_daemon(policy("arches: {s390x: {}}\n"), binfmt, journal=journal)
    d.wait_until(lambda: any(r["MESSAGE_ID"] == Event.AUDIT_FINDING.message_id
                             for r in ours(journal)), "audit message")
    d.reload()
    found = [r for r in ours(journal) if r["MESSAGE_ID"] == Event.AUDIT_FINDING.message_id]
    assert len(found) == 1, found
    assert (found[0]["MULTIARCH_ENTRY"], found[0]["MULTIARCH_FINDING"],
            found[0]["MULTIARCH_SEVERITY"], found[0]["PRIORITY"]) == \
        ("takeover", "native-magic", "medium", "4")
    assert "matches this host's own programs" in found[0]["MESSAGE"]


def test_other_tools_bytes_reach_the_journal_escaped(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter,
        journal: PrivateJournal) -> None:
    """An entry put in place of ours and another whose interpreter path is not UTF-8: their
    bytes said as \\xHH, in the repair's message and the audit's."""
    d = start_daemon(policy("arches: {s390x: {}}\n"), binfmt, journal=journal)
    d.signal(signal.SIGSTOP)  # the kernel keeps the events meanwhile
    try:
        write(binfmt, OURS, b"-1")
        write(binfmt, b"register", b":multiarch-s390x:E::x\xff::/nowhere/\xff\x01x:P")
        write(binfmt, b"register", ODD)
    finally:
        d.signal(signal.SIGCONT)
    d.wait_until(lambda: any("repaired multiarch-s390x" in r["MESSAGE"] and
                             "interpreter /nowhere/\\xff\\x01x" in r["MESSAGE"]
                             for r in ours(journal)), "the repair, said readably")
    d.wait_until(lambda: any(r.get("MULTIARCH_ENTRY") == "odd" and
                             "/nowhere/\\xff\\x01x" in r["MESSAGE"]
                             for r in ours(journal)), "the audit's finding, said readably")
    assert d.proc.poll() is None
