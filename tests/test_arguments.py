"""multiarchd's two readings of its command line agree: light_arguments (the boot path's, before
argparse is imported) and argparse's parser(), on every line the light one takes; anything it
does not take is left to argparse."""

from __future__ import annotations

import argparse

from hypothesis import given, settings
from hypothesis import strategies as st

from multiarchd.cli.multiarchd import light_arguments, parser

from tests.support.fuzz import examples

FLAGS = ["--once", "--no-dbus", "--no-mount", "--private"]
VALUED = ["--config", "--binfmt-dir", "--log-target"]
VALUES = st.sampled_from(["/etc/multiarch/arches.yaml", "/tmp/a b.yaml", "x", "auto", "journal",
                          "stderr", "", "-x", "--once", "=", "a=b"])
WORDS = st.one_of(st.sampled_from(FLAGS),
                  st.tuples(st.sampled_from(VALUED), VALUES).map(lambda t: f"{t[0]}={t[1]}"),
                  st.tuples(st.sampled_from(VALUED), VALUES).map(list),
                  st.sampled_from(["--dry-run", "--version", "-h", "--onc", "extra", "--"]))


def flatten(words: list[str | list[str]]) -> list[str]:
    return [w for word in words for w in (word if isinstance(word, list) else [word])]


@settings(max_examples=examples(3000))
@given(st.lists(WORDS, max_size=6).map(flatten))
def test_the_light_reading_is_argparses_wherever_it_reads(argv: list[str]) -> None:
    light = light_arguments(argv)
    if light is None:
        return  # argparse decides, as before
    once, values = light
    try:
        args = parser().parse_args(argv)
    except SystemExit:
        raise AssertionError(f"light_arguments took {argv} that argparse refuses") from None
    assert once == args.once
    assert (values["--config"], values["--binfmt-dir"], values["--log-target"]) == \
        (args.config, args.binfmt_dir, args.log_target), argv
    assert ("--no-mount" in values) == args.no_mount and ("--private" in values) == args.private


def test_it_reads_the_units_own_lines() -> None:
    assert light_arguments(["--once", "--log-target=journal"]) == \
        (True, {"--config": "/etc/multiarch/arches.yaml",
                "--binfmt-dir": "/proc/sys/fs/binfmt_misc", "--log-target": "journal"})
    assert light_arguments(["--no-dbus"]) is not None
    assert light_arguments(["--once", "--dry-run"]) is None  # not the boot path's
    assert isinstance(parser(), argparse.ArgumentParser)
