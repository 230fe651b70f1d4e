"""Typed run configs: the defaults are written once, and runs keep their fingerprints.

``config.json`` must record the same ``args`` and the same fingerprint as before the
configs replaced the argparse namespace, or no earlier run folder would resume. The
expected records and fingerprints below were computed once with the code at commit
e4ba62f (``run_search``/``run_training`` taking the namespace): each command line was
parsed by ``vnas.cli.build_parser()`` and given to ``prepare_run`` (for the probe after
setting the warm-up as its ``run_probe`` did) in a folder like the one
:func:`_run_folder` makes, and ``config.json``'s ``args`` and ``fingerprint`` were copied
here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from vnas.cli import build_parser
from vnas.commands.run_flags import run_config
from vnas.engine.config import OptimConfig, TrainConfig, config_from_flat, run_record
from vnas.engine.context import prepare_run
from vnas.search.config import ArchOptimConfig, ProbeConfig, SearchConfig
from vnas.space.models import describe_arch

REPO = Path(__file__).resolve().parents[1]
BASE = ["--preprocessed", "pre", "--folds", "folds.json", "--fold", "0", "--out", "run"]

# The records of e4ba62f (see the module docstring), as overrides of the defaults' record.
SHARED = {
    "preprocessed": "pre", "folds": "folds.json", "fold": 0, "out": "run", "patch": None,
    "fg_ratio": 0.33, "iterations": 40000, "width": 1.0, "batch_size": 2, "lr": 0.05,
    "momentum": 0.9, "weight_decay": 0.0005, "poly_power": 0.9, "seed": 0, "loss": "ce",
    "device": "auto", "amp": None, "channels_last": None, "deterministic": False,
    "workers": 2, "checkpoint_every": 500, "log_every": 10, "force": False,
}  # fmt: skip
SEARCH = {
    "verbose": False, "command": "search", **SHARED, "arch_lr_rule": "fixed",
    "arch_lr": 0.0003, "arch_weight_decay": 0.001, "arch_betas": [0.5, 0.999],
    "warmup_fraction": 0.08, "warmup_epochs": None, "warmup_iterations": None,
    "sampling": "darts", "gdas_tau": [10.0, 0.1], "memory_lean": False,
}  # fmt: skip
TRAIN = {
    "verbose": False, "command": "train", "arch": "nih-paper", **SHARED,
    "test_patch": None, "val_every": 250, "val_patches": 16,
}  # fmt: skip
PROBE = {
    "verbose": False, "command": "experiment", "experiment_command": "probe",
    **SHARED, "iterations": 2, "at": [2, 0], "batches": 100, "arch_steps": 10,
    "compare_lr": 0.01, "arch_lr": 0.0, "arch_weight_decay": 0.0, "arch_betas": [0.5, 0.999],
    "sampling": "darts", "memory_lean": False, "warmup_iterations": 2, "warmup_epochs": None,
}  # fmt: skip

CASES = [
    (["search", *BASE], SEARCH, "1f67b711217816eb"),
    (
        ["search", *BASE, "--patch", "32", "64", "96", "--arch-lr-rule", "matched_movement"],
        {**SEARCH, "patch": [32, 64, 96], "arch_lr_rule": "matched_movement"},
        "9ea1c14dfc4944e1",
    ),
    (
        ["-v", "search", *BASE, "--sampling", "gdas", "--gdas-tau", "5", "1", "--memory-lean",
         "--warmup-epochs", "2"],
        {**SEARCH, "verbose": True, "warmup_epochs": 2.0, "sampling": "gdas",
         "gdas_tau": [5.0, 1.0], "memory_lean": True},
        "97ed00dcbc9e6466",
    ),
    (
        ["search", *BASE, "--arch-lr", "1", "--arch-betas", "0.9", "0.99", "--lr", "0.01",
         "--warmup-iterations", "3", "--seed", "4", "--device", "cpu", "--no-channels-last",
         "--deterministic", "--workers", "0", "--force"],
        {**SEARCH, "lr": 0.01, "seed": 4, "device": "cpu", "channels_last": False,
         "deterministic": True, "workers": 0, "force": True, "arch_lr": 1.0,
         "arch_betas": [0.9, 0.99], "warmup_iterations": 3},
        "0b8a9551f9bcbd81",
    ),
    (["train", "--arch", "nih-paper", *BASE], TRAIN, "1bf0f68b3302ffb2"),
    (
        ["train", "--arch", "mix", *BASE, "--val-every", "0", "--patch", "32", "32", "32",
         "--test-patch", "64", "64", "64", "--loss", "dice_ce", "--width", "0.5",
         "--iterations", "7", "--amp", "--checkpoint-every", "3", "--log-every", "2"],
        {**TRAIN, "arch": "mix", "patch": [32, 32, 32], "iterations": 7, "width": 0.5,
         "loss": "dice_ce", "amp": True, "checkpoint_every": 3, "log_every": 2,
         "test_patch": [64, 64, 64], "val_every": 0},
        "b0518b0a5cea9d68",
    ),
    (
        ["train", "--arch", "unet3d", *BASE, "--val-every", "5", "--val-patches", "3",
         "--fg-ratio", "0.5", "--batch-size", "4", "--momentum", "0", "--weight-decay", "0",
         "--poly-power", "1"],
        {**TRAIN, "arch": "unet3d", "fg_ratio": 0.5, "batch_size": 4, "momentum": 0.0,
         "weight_decay": 0.0, "poly_power": 1.0, "val_every": 5, "val_patches": 3},
        "f804420239a3f9b1",
    ),
    (
        ["experiment", "probe", *BASE, "--at", "2", "0", "--arch-steps", "10",
         "--compare-lr", "0.01", "--iterations", "2"],
        PROBE,
        "30d8200879ffe5cd",
    ),
]  # fmt: skip


def _run_folder(folder: Path) -> None:
    """A 4-case ``synthetic-nih`` dataset.json (no volumes: nothing is trained) and one
    fold: train a, b; val c; test d."""
    (folder / "pre").mkdir()
    dataset = {"cases": ["a", "b", "c", "d"], "preset": "synthetic-nih",
               "classes": {"0": "background", "1": "pancreas"}}  # fmt: skip
    (folder / "pre" / "dataset.json").write_text(json.dumps(dataset))
    fold = {"train": ["a", "b"], "val": ["c"], "test": ["d"]}
    (folder / "folds.json").write_text(json.dumps({"folds": [fold]}))


def _prepare(argv: list[str]):
    """``prepare_run`` as ``vnas search|train|experiment probe`` call it for ``argv``."""
    args = build_parser().parse_args(argv)
    search = describe_arch("search")
    if args.command == "experiment":
        probe = config_from_flat(ProbeConfig, vars(args))
        return prepare_run(probe.search(), command="probe", arch=search, record=probe.record(),
                           require=("train", "val"))  # fmt: skip
    if args.command == "search":
        return prepare_run(run_config(SearchConfig, args), command="search", arch=search,
                           require=("train", "val"))  # fmt: skip
    config = run_config(TrainConfig, args)
    return prepare_run(config, command="train", arch=describe_arch(config.arch))


@pytest.mark.parametrize(("argv", "record", "fingerprint"), CASES, ids=range(len(CASES)))
def test_config_json_records_the_settings_and_fingerprint_of_the_argparse_era(
    argv, record, fingerprint, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    _run_folder(tmp_path)
    with _prepare(argv):
        pass
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    # byte for byte: the same keys, in the same order, with the same types (1.0, not 1),
    # except the two settings recorded only when set since issue 26
    assert json.dumps(config["args"]) == json.dumps(_recorded_when_set(record))
    assert config["fingerprint"] == fingerprint


#: The argparse era's settings that config.json records only when set since issue 26
#: (vnas.engine.config.RECORDED_WHEN_SET): their fingerprint always left them out there.
LATER = {"sampling": "darts", "arch_lr_rule": "fixed"}


def _recorded_when_set(record: dict) -> dict:
    return {k: v for k, v in record.items() if not (k in LATER and v == LATER[k])}


def test_the_synthetic_nih_preset_patch_is_used_when_none_is_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _run_folder(tmp_path)
    with _prepare(["train", "--arch", "nih-paper", *BASE]) as ctx:
        assert ctx.patch == (64, 96, 96) and ctx.test_patch == (64, 64, 64)


def test_a_config_rebuilt_from_its_record_is_the_same_config():
    """What a report does with a search's config.json (vnas.report.html)."""
    for argv in (CASES[2][0], CASES[3][0]):
        config = run_config(SearchConfig, build_parser().parse_args(argv))
        assert config_from_flat(SearchConfig, run_record(config, command="search")) == config
    config = run_config(TrainConfig, build_parser().parse_args(CASES[5][0]))
    assert config.test_patch == (64, 64, 64) and config.optim.width == 0.5
    assert config_from_flat(TrainConfig, run_record(config, command="train")) == config


def test_a_record_without_later_settings_takes_their_defaults():
    older = {k: v for k, v in SEARCH.items() if k not in ("sampling", "arch_lr_rule")}
    config = config_from_flat(SearchConfig, older)
    assert config.sampling == SearchConfig.sampling
    assert config.arch_optim == ArchOptimConfig()


def test_params_yaml_optimisation_values_are_the_code_defaults():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    optim, arch = OptimConfig(), ArchOptimConfig()
    assert params["lr"] == optim.lr
    assert params["momentum"] == optim.momentum
    assert params["weight_decay"] == optim.weight_decay
    assert params["poly_power"] == optim.poly_power
    assert params["arch_lr"] == arch.arch_lr
    assert params["arch_weight_decay"] == arch.arch_weight_decay
