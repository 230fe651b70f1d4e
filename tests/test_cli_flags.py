"""One spelling per concept across commands, deprecated spellings that still work, and
help defaults that come from the code."""

from __future__ import annotations

import argparse
import json
import re

import pytest

from vnas.cli import build_parser, main


def _parsers(parser: argparse.ArgumentParser, name: str = "vnas"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


def test_no_default_is_typed_into_a_help_text() -> None:
    """A flag with a real default gets it printed by the formatter; a help text that also
    types it would drift (as --nsd-tolerance's "1.0" did)."""
    typed = []
    for name, parser in _parsers(build_parser()):
        for action in parser._actions:
            has_default = action.default not in (None, False, argparse.SUPPRESS)
            if has_default and re.search(r"default\W+(-?[\d.]|on\b|off\b)", action.help or ""):
                typed.append(f"{name} {action.option_strings}: {action.help}")
    assert not typed, typed


def test_every_command_with_a_progress_bar_takes_no_progress() -> None:
    commands = dict(_parsers(build_parser()))
    with_bar = ["search", "train", "evaluate", "predict", "preprocess", "plan", "synth"]
    with_bar += ["export-nnunet"]
    for name in with_bar:
        flags = {f for a in commands[f"vnas {name}"]._actions for f in a.option_strings}
        assert "--no-progress" in flags, name
    args = build_parser().parse_args(["evaluate", "--model", "m", "--preprocessed", "p",
                                      "--folds", "f", "--fold", "0", "--out", "o",
                                      "--no-progress"])  # fmt: skip
    assert args.no_case_progress


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["search", "--help"], ["channel multiplier (default: 1.0)", "(default: 0.9)"]),
        (["evaluate", "--help"], ["per foreground class (default: 2.0)"]),
        (["split", "--help"], ["number of folds", "(default: 4)"]),
    ],
)
def test_help_shows_the_real_defaults(argv, shown, capsys) -> None:
    with pytest.raises(SystemExit):
        main(argv)
    text = " ".join(capsys.readouterr().out.split())
    for fragment in shown:
        assert fragment in text


def test_every_output_flag_is_out() -> None:
    for name, parser in _parsers(build_parser()):
        flags = {s for a in parser._actions for s in a.option_strings}
        assert "--output" not in flags or "--out" in flags, name


def test_folds_counts_are_n_folds_with_the_old_spelling_deprecated(
    synthetic_dataset, tmp_path, capsys
) -> None:
    pre = str(synthetic_dataset["preprocessed"])
    assert (
        main(["split", "--preprocessed", pre, "--n-folds", "2", "--out", f"{tmp_path}/a.json"]) == 0
    )
    assert "deprecated" not in capsys.readouterr().err
    assert (
        main(["split", "--preprocessed", pre, "--folds", "2", "--out", f"{tmp_path}/b.json"]) == 0
    )
    assert "vnas: warning: --folds is deprecated, use --n-folds" in capsys.readouterr().err
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in "ab")
    assert a["folds"] == b["folds"] and len(a["folds"]) == 2
    table = build_parser().parse_args(
        ["table", "--dataset", "d", "--eval-root", "e", "--folds", "3", "--method", "a", "A",
         "Search", "--out", "t.csv"]
    )  # fmt: skip
    assert table.n_folds == 3
