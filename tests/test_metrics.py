"""The opt-in metrics file, read by what reads it in the field: node-exporter's textfile
collector, run here on loopback against the daemon's file."""

from __future__ import annotations

import re
import socket
import subprocess
import urllib.request
from pathlib import Path

from tests.support.binfmt import PrivateBinfmt
from tests.support.commands import DaemonStarter, PolicyWriter
from tests.support.inotify import wait_for_file
from tests.support.lines import Lines

VERIFIED = 'multiarchd_architecture_state{name="s390x",kind="arch",state="verified"} 1'


def scrape(textfiles: Path) -> str:
    """One scrape of a node-exporter that reads only the textfile collector."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exporter = subprocess.Popen(
        ["prometheus-node-exporter", "--collector.disable-defaults", "--collector.textfile",
         f"--collector.textfile.directory={textfiles}", f"--web.listen-address=127.0.0.1:{port}"],
        stderr=subprocess.PIPE)
    assert exporter.stderr is not None
    try:
        said, lines = "", Lines(exporter.stderr)
        while "Listening on" not in said:  # it says so once the port is open
            line = lines.next(30)
            assert line is not None, said
            said += line + "\n"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
            return str(r.read().decode())
    finally:
        exporter.terminate()
        exporter.wait()
        exporter.stderr.close()


def test_states_and_counters_reach_node_exporter(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter,
        tmp_path: Path) -> None:
    textfiles = tmp_path / "textfile"
    textfiles.mkdir()
    prom = textfiles / "multiarchd.prom"
    # In the table's namespace, where the probes really run (and prove "verified").
    d = start_daemon(policy("arches: {s390x: {}, aarch64: {}}\n"), binfmt,
                     "--metrics-textfile", prom, inside=True)
    text = wait_for_file(str(prom), lambda t: VERIFIED in t)
    assert 'multiarchd_state{state="converged"} 1' in text
    assert prom.stat().st_mode & 0o777 == 0o644  # the exporter's user reads it
    assert [p.name for p in textfiles.iterdir()] == ["multiarchd.prom"]  # no temporary left

    since = d.mark()
    binfmt.write("multiarch-s390x", "-1")  # someone removes an entry: it is put back
    d.wait_log("repaired multiarch-s390x", since)
    # Registered again, so proven again.
    wait_for_file(str(prom), lambda t: "multiarchd_repairs_total 1" in t and VERIFIED in t)

    exported = scrape(textfiles)
    assert "node_textfile_scrape_error 0" in exported, exported
    assert re.search(r"^multiarchd_repairs_total 1$", exported, re.M)
    for arch in ("s390x", "aarch64"):  # (the exporter sorts the labels)
        assert f'multiarchd_architecture_state{{kind="arch",name="{arch}",state="verified"}} 1' \
            in exported


def test_an_unwritable_metrics_file_is_said_and_the_table_kept(
        binfmt: PrivateBinfmt, policy: PolicyWriter, start_daemon: DaemonStarter,
        tmp_path: Path) -> None:
    d = start_daemon(policy("arches: {s390x: {}}\n"), binfmt, "--metrics-textfile",
                     tmp_path / "missing" / "multiarchd.prom")
    d.wait_log("cannot write the metrics file: .*No such file or directory")
    assert binfmt.names() == ["multiarch-s390x"]
