"""``vnas search|train --settings JSON``: the one record a pipeline rule hands its job
(workflow/scripts/rule_settings.py). It makes the same config, and so the same
``config.json`` and fingerprint, as the flags it stands for; it is checked against the
config fields; and with flags, the later of the two wins, as with a repeated flag."""

from __future__ import annotations

import json

import pytest

from vnas.cli import build_parser, main
from vnas.commands.run_flags import run_config
from vnas.engine.config import (
    OptimConfig,
    TrainConfig,
    identity_args,
    run_record,
    settings_values,
)
from vnas.search.config import SearchConfig

BASE = ["--preprocessed", "p", "--folds", "f", "--fold", "0", "--out", "o"]
#: A search job's record as the synthetic dataset's rule makes it: ints where the
#: fields are floats (params.yaml's `width: 1`, `weight_decay: 0`), as YAML gives them.
RECORD = {"iterations": 150, "warmup_iterations": 50, "width": 1, "patch": [32, 64, 64],
          "batch_size": 2, "lr": 0.05, "momentum": 0.9, "weight_decay": 0, "poly_power": 0.9,
          "seed": 0, "device": "auto", "loss": "dice_ce", "arch_lr": 0.0003,
          "arch_lr_rule": "matched_movement", "arch_weight_decay": 0.001,
          "pt_patches": 4}  # fmt: skip
#: The flags the rules passed before the record, for the same settings.
FLAGS = ["--iterations", "150", "--warmup-iterations", "50", "--width", "1", "--patch", "32",
         "64", "64", "--batch-size", "2", "--lr", "0.05", "--momentum", "0.9",
         "--weight-decay", "0", "--poly-power", "0.9", "--seed", "0", "--device", "auto",
         "--loss", "dice_ce", "--arch-lr", "0.0003", "--arch-lr-rule", "matched_movement",
         "--arch-weight-decay", "0.001", "--pt-patches", "4"]  # fmt: skip


def parse(*argv: str):
    return build_parser(("search", "train")).parse_args(list(argv))


def test_the_record_makes_the_config_json_of_the_flags_it_stands_for():
    by_flags = run_config(SearchConfig, parse("search", *BASE, *FLAGS))
    by_record = run_config(SearchConfig, parse("search", "--settings", json.dumps(RECORD), *BASE))
    assert by_record == by_flags
    # the same text: key order, 1.0 and not 1 (the fingerprint hashes the text)
    flags_json = json.dumps(run_record(by_flags, command="search"))
    assert json.dumps(run_record(by_record, command="search")) == flags_json
    assert identity_args(run_record(by_record, command="search"))["width"] == 1.0


def test_the_record_reaches_the_config_whole():
    """The record's values go from the command line to the typed config in one step
    (docs/ARCHITECTURE.md, "How a parameter flows"): kept whole, never copied into the
    namespace field by field, which holds only what the flags set."""
    args = parse("search", "--settings", json.dumps(RECORD), *BASE, "--seed", "3")
    assert args.settings == settings_values(SearchConfig, RECORD)
    assert set(vars(args)) & set(RECORD) == {"seed"} and args.seed == 3
    config = run_config(SearchConfig, args)
    assert (config.optim.lr, config.arch_optim.arch_lr, config.optim.seed) == (0.05, 3e-4, 3)


def test_a_training_record_makes_the_training_config_of_its_flags():
    record = {"iterations": 300, "width": 0.5, "test_patch": [32, 64, 64], "val_every": 7}
    flags = ["--iterations", "300", "--width", "0.5", "--test-patch", "32", "64", "64",
             "--val-every", "7"]  # fmt: skip
    by_flags = run_config(TrainConfig, parse("train", "--arch", "mix", *BASE, *flags))
    by_record = run_config(
        TrainConfig, parse("train", "--arch", "mix", "--settings", json.dumps(record), *BASE)
    )
    assert by_record == by_flags and isinstance(by_record, TrainConfig)


def test_the_later_of_a_flag_and_the_record_wins():
    record = json.dumps({"lr": 0.1, "batch_size": 3})
    after = run_config(SearchConfig, parse("search", *BASE, "--settings", record, "--lr", "0.2"))
    assert (after.optim.lr, after.optim.batch_size) == (0.2, 3)  # the flag after it
    before = run_config(SearchConfig, parse("search", *BASE, "--lr", "0.2", "--settings", record))
    assert (before.optim.lr, before.optim.batch_size) == (0.1, 3)  # the record after it
    alone = run_config(SearchConfig, parse("search", *BASE, "--lr", "0.2"))
    assert alone.optim.batch_size == SearchConfig(None).optim.batch_size  # defaults stay
    # the same value before and after: the one after still wins
    both = parse("search", *BASE, "--lr", "0.2", "--settings", record, "--lr", "0.2")
    assert run_config(SearchConfig, both).optim.lr == 0.2
    # of two records, the later wins field by field
    two = parse("search", *BASE, "--settings", record, "--settings", '{"lr": 0.3}')
    assert run_config(SearchConfig, two).optim == OptimConfig(lr=0.3, batch_size=3)


@pytest.mark.parametrize(
    ("record", "says"),
    [
        ('{"lrr": 0.1}', "'lrr' is not a setting of SearchConfig"),
        ('{"lr": 0}', "lr: must be > 0, got 0"),
        ('{"momentum": 1.5}', "momentum: must be <= 1, got 1.5"),
        ('{"seed": 1.5}', "seed: must be int, got 1.5"),
        ('{"lr": "0.1"}', "lr: must be float, got '0.1'"),
        ('{"patch": [32, 64]}', "patch: must be tuple[int, int, int] | None, got [32, 64]"),
        ('{"loss": "l1"}', "loss: 'l1' is not one of ce, dice_ce"),
        ('{"arch_lr_rule": "x"}', "arch_lr_rule: 'x' is not one of fixed, matched_movement"),
        ('["lr"]', "must be a JSON object of settings"),
        ("lr=0.1", "not JSON"),
    ],
)
def test_a_bad_record_is_one_line_naming_the_field(record, says, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["search", *BASE, "--settings", record])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("vnas search: error: argument --settings: ") and says in err[-1]


def test_settings_values_names_the_config_and_keeps_what_json_cannot_say():
    assert settings_values(SearchConfig, {"width": 1, "arch_batch_size": None}) == {
        "width": 1.0,
        "arch_batch_size": None,
    }
    with pytest.raises(ValueError, match="'arch' is not a setting of SearchConfig"):
        settings_values(SearchConfig, {"arch": "mix"})  # a training's, not a search's
    with pytest.raises(ValueError, match="iterations: must be int, got True"):
        settings_values(TrainConfig, {"iterations": True})
