"""The README stays short and true, and the guides it points to stay in step with the tree: the
fault table names tests that exist, and the benchmarks page is what `bench.summary` wrote (no
figure typed by hand)."""

from __future__ import annotations

import re

from bench import page

from tests.support.paths import REPO

GUIDES = ("README.md", "HACKING.md", "docs/admin.md", "docs/faults.md", "docs/benchmarks.md",
          "docs/kubernetes.md")


def test_the_readme_is_short_and_starts_with_the_two_commands() -> None:
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    first = re.search(r"```sh\n(.*?)```", readme, re.S)
    assert first is not None
    assert [line.split()[0] for line in first.group(1).splitlines()] == ["dev/demo", "dev/test"]
    assert readme.index("dev/demo") < readme.index("```console")  # before the transcript


def test_every_link_in_the_guides_leads_somewhere() -> None:
    for guide in GUIDES:
        path = REPO / guide
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
            if "://" not in target:
                assert (path.parent / target).exists(), f"{guide}: {target}"


def test_every_fault_in_the_guide_names_a_test_that_exists() -> None:
    section = (REPO / "docs" / "faults.md").read_text()
    named = set(re.findall(r"`(test_\w+)`", section))
    defined = {m for path in (REPO / "tests").glob("test_*.py")
               for m in re.findall(r"^def (test_\w+)", path.read_text(), re.M)}
    assert len(named) > 30 and named <= defined, sorted(named - defined)


def _written(text: str) -> str:
    """The page bench/page.py would write for the rows, command, settings, date and machine
    this page says it came from."""
    head = re.search(r"Written by `(.*?)`;.*?Measured (\S+) on (\S+): (\d+) CPUs \(load average "
                     r"(\S+) when it began\), Linux (\S+),\s+Python (\S+); settings: (.*?)\.\n",
                     text, re.S)
    assert head is not None, "docs/benchmarks.md: no header as bench/page.py writes it"
    command, when, arch, cpus, load, kernel, python, settings = head.groups()
    table = text.split("|---|---|---|---|---|\n", 1)[1].split("\n\n", 1)[0]
    # Each cell as page.table wrote it: one space either side, a | in it escaped.
    rows = [tuple(cell[1:-1].replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line)[1:-1])
            for line in table.splitlines()]
    assert rows and all(len(row) == 5 for row in rows)
    return page.page([(r[0], r[1], r[2], r[3], r[4]) for r in rows], command,
                     settings.replace("\n", " "), when, (arch, int(cpus), load, kernel, python))


def test_the_benchmarks_page_is_what_bench_summary_wrote() -> None:
    text = (REPO / "docs" / "benchmarks.md").read_text()
    assert "-m bench.summary" in text
    assert _written(text) == text


def test_guides_keep_lines_lintian_takes() -> None:
    """Lintian refuses a source line of 512 bytes or more (very-long-line-length-in-source-file)."""
    for guide in GUIDES:
        long = [n for n, line in enumerate((REPO / guide).read_bytes().splitlines(), 1)
                if len(line) >= 512]
        assert long == [], f"{guide}: lines {long}"
