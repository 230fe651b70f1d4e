"""Search speed options: memory-lean (checkpointed) cells and GDAS single-path sampling."""

import json

import pytest
import torch
import torch.nn.functional as F

from vnas.cli import main
from vnas.engine.config import identity_args
from vnas.errors import VNASError
from vnas.search.task import gdas_tau
from vnas.space.genotype import ARCH_PRESETS, read_arch_json
from vnas.space.network import VNASNet

PATCH = (32, 32, 32)


def search_net(seed=0, **options) -> VNASNet:
    torch.manual_seed(seed)
    model = VNASNet(1, 2, 0.0625, "search")
    if options:
        model.set_search_options(**options)
    return model


def batch(seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 1, *PATCH, generator=g), torch.randint(0, 2, (2, *PATCH), generator=g)


def gradients(model: VNASNet) -> tuple[float, dict[str, torch.Tensor]]:
    x, y = batch()
    model.train()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return float(loss.detach()), grads


def test_memory_lean_cells_give_the_same_loss_and_gradients():
    plain_loss, plain = gradients(search_net())
    lean_model = search_net(memory_lean=True)
    assert all(c.checkpoint for c in [*lean_model.encoder_cells, *lean_model.decoder_cells])
    lean_loss, lean = gradients(lean_model)
    assert lean_loss == pytest.approx(plain_loss, rel=1e-6)
    assert plain.keys() == lean.keys()
    for name in plain:
        torch.testing.assert_close(lean[name], plain[name], rtol=1e-4, atol=1e-6, msg=name)


def count_branch_calls(model: VNASNet) -> list[list[int]]:
    """Forward hooks counting calls of every op of every encoder cell."""
    counts = [[0] * len(c.branches) for c in model.encoder_cells]
    for i, cell in enumerate(model.encoder_cells):
        for j, branch in enumerate(cell.branches):

            def hook(*_, i=i, j=j):
                counts[i][j] += 1

            branch.register_forward_hook(hook)
    return counts


def test_gdas_runs_one_op_per_cell_and_trains_every_alpha():
    model = search_net(sampling="gdas", tau=1.0)
    counts = count_branch_calls(model)
    _, grads = gradients(model)
    assert all(sum(row) == 1 for row in counts)  # one op per cell, picked by sampling
    # the ops that did not run get no gradient
    chosen = [row.index(1) for row in counts]
    for i, op in enumerate(chosen):
        for j in range(3):
            ran = f"encoder_cells.{i}.branches.{j}.0.0.weight" in grads
            assert ran == (j == op)
    # the relaxed softmax reaches every entry of α and β (straight-through estimator)
    assert (grads["alpha"].abs() > 0).all() and (grads["beta"].abs() > 0).all()


def test_gdas_samples_follow_alpha():
    model = search_net(sampling="gdas", tau=1.0)
    with torch.no_grad():
        model.alpha.zero_()
        model.alpha[:, 2] = 20.0  # op 2 nearly certain everywhere
    counts = count_branch_calls(model)
    model.train()
    with torch.no_grad():
        model(batch()[0])
    assert [row.index(1) for row in counts] == [2] * 16


def test_gdas_eval_mode_is_the_plain_softmax_mixture():
    darts, gdas = search_net(), search_net(sampling="gdas")
    x, _ = batch()
    with torch.no_grad():
        torch.testing.assert_close(gdas.eval()(x), darts.eval()(x))
    assert gdas.genotype() == darts.genotype()


def test_search_options_reject_bad_values():
    with pytest.raises(VNASError, match="sampling must be one of darts, gdas"):
        search_net(sampling="enas")
    with pytest.raises(VNASError, match="needs the search network"):
        VNASNet(1, 2, 0.0625, ARCH_PRESETS["nih-paper"]).set_search_options(sampling="gdas")
    with pytest.raises(VNASError, match="temperature must be positive"):
        search_net(sampling="gdas", tau=0.0)


def test_gdas_tau_anneals_linearly_from_start_to_end():
    assert gdas_tau(0, 101, 10.0, 0.1) == 10.0
    assert gdas_tau(50, 101, 10.0, 0.1) == pytest.approx(5.05)
    assert gdas_tau(100, 101, 10.0, 0.1) == pytest.approx(0.1)


def test_default_sampling_keeps_the_fingerprint_of_earlier_runs():
    base = {"lr": 0.05, "seed": 0, "out": "x", "memory_lean": True}
    # The record leaves sampling out at its default (RECORDED_WHEN_SET, checked in
    # test_run_config); GDAS's temperature alone then adds no key either.
    darts = identity_args({**base, "gdas_tau": [10.0, 0.1]})
    assert darts == {"lr": 0.05, "seed": 0}  # no new keys: same fingerprint as before
    gdas = identity_args({**base, "sampling": "gdas", "gdas_tau": [10.0, 0.1]})
    assert gdas == {"lr": 0.05, "seed": 0, "sampling": "gdas", "gdas_tau": [10.0, 0.1]}


def test_search_cli_with_gdas_and_memory_lean(synthetic_dataset, tmp_path):
    out = tmp_path / "gdas"
    argv = [
        "search",
        "--preprocessed", str(synthetic_dataset["preprocessed"]),
        "--folds", str(synthetic_dataset["folds"]),
        "--fold", "0",
        "--out", str(out),
        "--iterations", "4",
        "--warmup-iterations", "1",
        "--width", "0.0625",
        "--patch", "32", "32", "32",
        "--arch-lr", "0.05",
        "--workers", "0",
        "--sampling", "gdas",
        "--gdas-tau", "5", "1",
        "--memory-lean",
    ]  # fmt: skip
    assert main(argv) == 0
    record = read_arch_json(out / "arch.json")
    assert len(record["code"]["encoder"].replace(",", " ").split()) == 16
    config = json.loads((out / "config.json").read_text())
    assert config["args"]["sampling"] == "gdas" and config["args"]["memory_lean"] is True
    assert config["identity"]["args"]["gdas_tau"] == [5.0, 1.0]
    assert "memory_lean" not in config["identity"]["args"]  # same result: not fingerprinted


def test_cpu_autocast_is_bfloat16_and_channels_last_is_the_cpu_default():
    from vnas.engine.device import autocast, resolve_amp, resolve_channels_last

    cpu = torch.device("cpu")
    assert resolve_amp(True, cpu) is False  # the commands keep float32 on the CPU
    with autocast(cpu, True):  # the benchmark's bf16 lever
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
        y = torch.nn.Conv3d(1, 2, 1)(torch.randn(1, 1, 2, 2, 2))
    assert y.dtype == torch.bfloat16
    assert resolve_channels_last(None, cpu) and not resolve_channels_last(False, cpu)
    assert not resolve_channels_last(None, torch.device("cuda"))


def test_training_batches_and_model_in_channels_last(synthetic_dataset, tmp_path):
    from vnas.data.batches import to_device
    from vnas.engine.config import DataConfig, RunOptions, TrainConfig
    from vnas.engine.context import RunContext

    batch = {"image": torch.randn(2, 1, 32, 32, 32), "label": torch.zeros(2, 32, 32, 32)}
    image, _ = to_device(batch, torch.device("cpu"), channels_last=True)
    assert image.is_contiguous(memory_format=torch.channels_last_3d)
    for flag, expected in ((None, True), (False, False)):
        config = TrainConfig("mix", DataConfig("pre", "folds.json", 0, "out"),
                             run=RunOptions(channels_last=flag))  # fmt: skip
        ctx = RunContext(config, *[None] * 6, torch.device("cpu"), *[None] * 3)
        model = ctx.place(VNASNet(1, 2, 0.0625, ARCH_PRESETS["nih-paper"]))
        weight = model.stem[1][0].weight  # 4 in-channels: the two layouts differ
        assert weight.is_contiguous(memory_format=torch.channels_last_3d) == expected
