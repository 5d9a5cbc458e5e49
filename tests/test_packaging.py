"""The other ways multiarchd reaches a machine: Python sdist and wheel, rpm spec, container image,
Kubernetes DaemonSet; and the docs a person expects: man pages, bash completion, JSON schema."""

from __future__ import annotations

import argparse
import xml.etree.ElementTree as ET
import json
import re
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from multiarchd import __version__
from multiarchd.catalog import load_catalog
from multiarchd.dbus import api

from tests.support.commands import run
from tests.support.paths import REPO

PY = Path(sys.executable)


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([str(PY), "-m", "build", "--no-isolation", "--outdir", str(out), str(REPO)],
                   check=True, capture_output=True, timeout=300)
    return out


def test_wheel_and_sdist_install_working_commands(dist: Path, tmp_path: Path) -> None:
    [wheel] = dist.glob("multiarchd-*.whl")
    [sdist] = dist.glob("multiarchd-*.tar.gz")
    names = zipfile.ZipFile(wheel).namelist()
    assert "multiarchd/catalog/catalog.toml" in names and "multiarchd/py.typed" in names
    inside = tarfile.open(sdist).getnames()
    for needed in ("units/multiarchd.service", "config/arches.yaml", "man/multiarchd.8",
                   "config/dbus/io.github.multiarchd1.conf", "LICENSE"):
        assert f"multiarchd-{__version__}/{needed}" in inside, needed
    for artifact in (wheel, sdist):
        venv = tmp_path / artifact.suffix.strip(".")
        # Debian's interpreter and libraries (PyGObject, systemd-python) as the dependencies.
        subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(venv)],
                       check=True)
        subprocess.run([str(venv / "bin/pip"), "install", "-q", "--no-build-isolation",
                        str(artifact)], check=True, capture_output=True, timeout=300)
        version = subprocess.run([str(venv / "bin/multiarchd"), "--version"],
                                 capture_output=True, text=True)
        assert version.stdout.strip() == f"multiarchd {__version__}"
        arches = subprocess.run([str(venv / "bin/multiarchctl"), "arches", "--json"],
                                capture_output=True, text=True)
        assert len(json.loads(arches.stdout)["architectures"]) == 35


def test_rpm_spec_parses_and_installs_files_that_exist() -> None:
    spec = REPO / "packaging" / "rpm" / "multiarchd.spec"
    unset = subprocess.run(["rpmspec", "-P", str(spec)], capture_output=True, text=True)
    assert unset.returncode != 0 and "define upstream_version" in unset.stderr
    parsed = subprocess.run(["rpmspec", "-P", "--define", f"upstream_version {__version__}",
                             str(spec)], capture_output=True, text=True)
    assert parsed.returncode == 0, parsed.stderr
    assert f"Version:        {__version__}" in parsed.stdout
    sources = re.findall(r"^install -Dpm \d+ (\S+) ", spec.read_text(), re.M)
    assert len(sources) == 13  # (the D-Bus API's man page is the 13th)
    for src in sources:
        assert (REPO / src).is_file(), src


def test_rpm_builds_with_rpmbuild_here_and_rpmlint_finds_no_error(dist: Path,
                                                                  tmp_path: Path) -> None:
    [sdist] = dist.glob("multiarchd-*.tar.gz")
    (tmp_path / "SOURCES").mkdir()
    shutil.copy(sdist, tmp_path / "SOURCES")
    spec = REPO / "packaging" / "rpm" / "multiarchd.spec"
    version = ["--define", f"upstream_version {__version__}"]
    debian = dict(os.environ, PATH="/usr/sbin:/usr/bin:/sbin:/bin")  # Debian's python3
    # --nodeps: rpm's database knows none of Debian's packages.
    built = subprocess.run(["rpmbuild", "-bb", "--nodeps", "--define", f"_topdir {tmp_path}",
                            *version, str(spec)], capture_output=True, text=True, env=debian,
                           timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    [rpm] = (tmp_path / "RPMS").glob("noarch/multiarchd-*.noarch.rpm")
    files = subprocess.run(["rpm", "-qlp", str(rpm)], capture_output=True, text=True).stdout
    for path in ("/usr/bin/multiarchd", "/usr/lib/systemd/system/multiarchd-early.service",
                 "/usr/share/polkit-1/actions/io.github.multiarchd1.policy",
                 "/usr/lib/systemd/catalog/multiarchd.catalog"):
        assert path in files.splitlines(), path
    assert "/multiarchd/core/plan.py" in files
    # rpmlint reads the spec as rpmbuild does, with the version given.
    expanded = tmp_path / "multiarchd.spec"
    expanded.write_text(subprocess.run(["rpmspec", "-P", *version, str(spec)], check=True,
                                       capture_output=True, text=True).stdout)
    lint = subprocess.run(["rpmlint", "-r", str(spec.with_name("multiarchd.rpmlintrc")),
                           str(expanded), str(rpm)], capture_output=True, text=True)
    assert lint.returncode == 0 and " 0 errors" in lint.stdout, lint.stdout


def test_containerfile_copies_what_exists_and_starts_a_valid_command() -> None:
    text = (REPO / "packaging" / "container" / "Containerfile").read_text()
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        *sources, _dest = line.split()
        for src in sources:
            assert (REPO / src).exists(), src
    found = re.search(r"^ENTRYPOINT (.+)$", text, re.M)
    assert found, text
    entry = json.loads(found.group(1))
    assert entry[0] == "multiarchd"
    r = run("multiarchd", *entry[1:], "--version")
    assert r.returncode == 0, r.stderr


def test_kubernetes_manifests_validate_against_the_schemas(tmp_path: Path) -> None:
    path = REPO / "packaging" / "kubernetes" / "multiarchd.yaml"
    docs = list(yaml.safe_load_all(path.read_text()))
    version = kubernetes_validate.utils.latest_version()
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"Namespace", "ConfigMap", "DaemonSet"}
    pod = kinds["DaemonSet"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["securityContext"]["privileged"] is True
    # Ready: the table converged, and every registered architecture runs its probe (so each
    # one labelled true for the scheduler still does).
    probe = container["readinessProbe"]["exec"]["command"]
    assert probe[:2] == ["sh", "-c"] and "multiarchctl status --local" in probe[2] and \
        "multiarchctl test --local" in probe[2]
    assert pod["volumes"][0]["configMap"]["name"] == kinds["ConfigMap"]["metadata"]["name"]
    # node-feature-discovery's local source: the host's features.d, where the policy writes.
    features = "/etc/kubernetes/node-feature-discovery/features.d"
    [nfd] = [v for v in pod["volumes"] if v.get("hostPath", {}).get("path") == features]
    assert {"name": nfd["name"], "mountPath": features} in container["volumeMounts"]
    assert yaml.safe_load(kinds["ConfigMap"]["data"]["arches.yaml"])["node_features"] \
        .startswith(features + "/")
    # The ConfigMap's policy is a good policy.
    policy = tmp_path / "arches.yaml"
    policy.write_text(kinds["ConfigMap"]["data"]["arches.yaml"])
    check = run("multiarchctl", "check-config", config=policy)
    assert check.returncode == 0, check.stdout


@pytest.mark.parametrize("page", ["multiarchd.8", "multiarchctl.1", "arches.yaml.5",
                                  "io.github.multiarchd1.5"])
def test_man_pages_render_without_warnings(page: str) -> None:
    r = subprocess.run(["groff", "-man", "-ww", "-z", str(REPO / "man" / page)],
                       capture_output=True, text=True)
    assert (r.returncode, r.stderr) == (0, "")


def test_man_pages_name_every_option() -> None:
    from multiarchd.cli import multiarchctl as ctl
    from multiarchd.cli import multiarchd as daemon
    pages = {"multiarchd": (REPO / "man/multiarchd.8").read_text().replace("\\-", "-"),
             "multiarchctl": (REPO / "man/multiarchctl.1").read_text().replace("\\-", "-")}
    for action in daemon.parser()._actions:
        for flag in action.option_strings:
            if flag.startswith("--") and flag not in ("--help", "--version"):
                assert flag in pages["multiarchd"], flag
    [verbs] = [a.choices for a in ctl.parser()._actions
               if isinstance(a, argparse._SubParsersAction)]
    for verb in verbs:
        assert f".B {verb}" in pages["multiarchctl"], verb


def complete(line: str) -> list[str]:
    script = f"""
source /usr/share/bash-completion/bash_completion
source {REPO}/config/bash-completion/multiarchctl
COMP_LINE={shlex.quote(line)}
read -ra COMP_WORDS <<< "$COMP_LINE"
[[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_POINT=${{#COMP_LINE}}
_multiarchctl
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    env = {"PATH": f"{PY.parent}:/usr/bin:/bin"}
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env)
    return sorted(filter(None, out.stdout.splitlines()))


def test_bash_completion() -> None:
    assert complete("multiarchctl st") == ["status"]
    assert complete("multiarchctl c") == ["cat-config", "check-config"]
    assert complete("multiarchctl status --") == ["--all", "--binfmt-dir", "--config", "--help",
                                                  "--json", "--local"]
    assert complete("multiarchctl test s39") == ["s390x"]
    assert "arm64" in complete("multiarchctl test ar")
    assert complete("multiarchctl explain --r") == ["--root"]


SCHEMA = json.loads((REPO / "config" / "arches.schema.json").read_text())


def yaml_blocks(markdown: str) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", markdown, re.S)


def test_schema_accepts_the_shipped_default_and_the_readme_examples() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    docs = [yaml.safe_load((REPO / "config" / "arches.yaml").read_text())]
    for guide in ("README.md", "docs/admin.md"):
        docs += [yaml.safe_load(b) for b in yaml_blocks((REPO / guide).read_text())]
    assert len(docs) >= 2
    for doc in docs:
        jsonschema.validate(doc, SCHEMA)


def test_schema_knows_every_architecture_and_refuses_unknown_keys() -> None:
    catalog = load_catalog()
    names = set(SCHEMA["properties"]["arches"]["oneOf"][2]["properties"])
    assert names == set(catalog.aliases) | {"all"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"arches": {"aarch64": {"flgs": ["F"]}}}, SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"custom": [{"name": "x", "interpreter": "/bin/true"}]}, SCHEMA)


def test_deb_declares_what_debian_provides(deb: Path) -> None:
    fields = subprocess.run(["dpkg-deb", "-f", str(deb), "Depends", "Recommends"],
                            capture_output=True, text=True, check=True).stdout
    for dep in ("python3-gi", "python3-pydbus", "python3-yaml", "python3-watchdog",
                "python3-systemd"):
        assert dep in fields
    # Any system bus (dbus-broker too); trixie's qemu-user is static, bookworm's is not.
    assert "default-dbus-system-bus | dbus-system-bus" in fields
    assert "Recommends: qemu-user (>= 1:9) | qemu-user-static" in fields
    files = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True).stdout
    for path in ("./lib/systemd/system/multiarchd.service",
                 "./lib/systemd/system/multiarchd-early.service",
                 "./usr/share/dbus-1/interfaces/io.github.multiarchd1.Manager.xml",
                 "./usr/share/polkit-1/actions/io.github.multiarchd1.policy",
                 "./usr/share/man/man8/multiarchd.8.gz",
                 "./usr/share/man/man5/io.github.multiarchd1.5.gz",
                 "./usr/share/dbus-1/system.d/io.github.multiarchd1.conf",
                 "./usr/share/bash-completion/completions/multiarchctl", "./usr/bin/multiarchctl"):
        assert path in files, path
    conffiles = subprocess.run(["dpkg-deb", "-I", str(deb), "conffiles"], capture_output=True,
                               text=True).stdout
    assert conffiles.split() == ["/etc/multiarch/arches.yaml"]


def test_every_copy_of_the_version_is_the_package_version() -> None:
    """The version is written once (multiarchd/__init__.py); what must repeat it is checked."""
    changelog = (REPO / "packaging/debian/changelog").read_text().splitlines()[0]
    assert changelog.startswith(f"multiarchd ({__version__}) ")  # 3.0 (native): no revision
    manifest = (REPO / "packaging/kubernetes/multiarchd.yaml").read_text()
    assert re.findall(r"image: \S+:(\S+)", manifest) == [__version__]
    assert not re.search(r'^version = "', (REPO / "pyproject.toml").read_text(), re.M)
    literal = re.compile(re.escape(__version__))
    for path in REPO.rglob("*"):
        if path.is_file() and ".git" not in path.parts and ".venv" not in path.parts \
                and path.suffix in (".py", ".toml", ".spec", ".service", ".1", ".5", ".8", ".md") \
                and path.name not in ("__init__.py",) and "tests" not in path.parts:
            text = path.read_text(errors="replace")
            assert not literal.search(text.replace(f"- {__version__}-1", "")), path


def test_the_image_and_the_daemonset_say_what_they_need() -> None:
    text = (REPO / "packaging/container/Containerfile").read_text()
    assert 'HEALTHCHECK --interval=60s --timeout=10s CMD ["multiarchctl", "status", "--local"]' \
        in text
    assert "org.opencontainers.image.licenses" in text
    docs = list(yaml.safe_load_all((REPO / "packaging/kubernetes/multiarchd.yaml").read_text()))
    [namespace] = [d for d in docs if d["kind"] == "Namespace"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    [daemonset] = [d for d in docs if d["kind"] == "DaemonSet"]
    assert daemonset["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


def test_the_installed_interface_xml_is_what_the_daemon_introspects() -> None:
    shipped = (REPO / "config" / "dbus" / "io.github.multiarchd1.Manager.xml").read_text()
    assert ET.canonicalize(shipped, strip_text=True) == ET.canonicalize(api.XML, strip_text=True)
