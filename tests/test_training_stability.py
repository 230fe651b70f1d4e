"""Amendment A9's training settings: the poly schedule's floor, and run folders made
before ``lr_floor`` and ``dice_background`` existed resolving to their old behaviour."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.optim.lr_scheduler import PolynomialLR

from vnas.engine.config import (
    DataConfig,
    OptimConfig,
    TrainConfig,
    config_from_flat,
    identity_args,
    run_record,
)
from vnas.engine.schedule import poly_schedule


def _lrs(iterations: int, floor: float, base: float = 0.05) -> list[float]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base)
    schedule = poly_schedule(optimizer, iterations, 0.9, floor)
    lrs = [optimizer.param_groups[0]["lr"]]
    for _ in range(iterations):
        optimizer.step()
        schedule.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    return lrs


def test_the_floor_is_reached_at_the_last_iteration():
    lrs = _lrs(20, floor=0.1)
    assert lrs[0] == pytest.approx(0.05)
    assert lrs[-1] == pytest.approx(0.005)  # 10 % of lr at t = T
    assert lrs[-2] > 0.005  # and not before
    assert all(a > b for a, b in itertools.pairwise(lrs))
    # the formula: lr (0.1 + 0.9 (1 - t/T)^0.9)
    assert lrs[10] == pytest.approx(0.05 * (0.1 + 0.9 * 0.5**0.9))


def test_no_floor_is_the_papers_schedule_to_zero():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.05)
    assert isinstance(poly_schedule(optimizer, 20, 0.9), PolynomialLR)  # old checkpoints load
    assert _lrs(20, floor=0.0)[-1] == pytest.approx(0.0)


#: A ``vnas train`` config.json "args" as written before the two settings existed.
OLD_ARGS = {
    "verbose": False, "command": "train", "arch": "codes/2d.json", "preprocessed": "p",
    "folds": "f.json", "fold": 0, "out": "o", "patch": [64, 32, 32], "fg_ratio": 0.33,
    "iterations": 1200, "width": 0.0625, "batch_size": 2, "lr": 0.05, "momentum": 0.9,
    "weight_decay": 0.0005, "poly_power": 0.9, "seed": 1, "loss": "dice_ce",
    "device": "auto", "amp": None, "channels_last": None, "deterministic": False,
    "workers": 0, "checkpoint_every": 500, "log_every": 10, "force": True,
    "test_patch": [64, 64, 64], "val_every": 250, "val_patches": 16,
}  # fmt: skip


def test_an_old_record_resolves_to_the_old_loss_and_schedule_and_keeps_its_identity():
    config = config_from_flat(TrainConfig, OLD_ARGS)
    assert config.optim.dice_background is True and config.optim.lr_floor == 0.0
    # recorded again, it is the same record: same fingerprint, the folder resumes
    assert run_record(config, command="train") == OLD_ARGS
    assert identity_args(run_record(config, command="train")) == identity_args(OLD_ARGS)


def test_the_new_settings_are_recorded_and_fingerprinted_when_set():
    data = DataConfig(preprocessed="p", folds="f.json", fold=0, out="o")
    base = TrainConfig(arch="a", data=data, optim=OptimConfig(loss="dice_ce"))
    for optim in (
        OptimConfig(loss="dice_ce", dice_background=False),
        OptimConfig(loss="dice_ce", lr_floor=0.1),
    ):
        record = run_record(TrainConfig(arch="a", data=data, optim=optim), command="train")
        assert identity_args(record) != identity_args(run_record(base, command="train"))
    # ce has no Dice: the background setting does not change its fingerprint
    ce = [TrainConfig(arch="a", data=data, optim=OptimConfig(dice_background=b)) for b in (1, 0)]
    assert len({str(identity_args(run_record(c, command="train"))) for c in ce}) == 1
