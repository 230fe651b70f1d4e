"""Perturbation-based selection (DARTS-PT), the search hygiene options and the probe's null."""

import copy
import json
import math
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vnas.cli import main
from vnas.engine.losses import cross_entropy, get_loss
from vnas.errors import VNASError
from vnas.search.architect import Architect
from vnas.search.config import ArchOptimConfig, SearchConfig
from vnas.search.perturbation import (
    cell_logits,
    pool_scores,
    renormalised_without,
    score_cell,
    select_by_perturbation,
)
from vnas.search.probe import gradient_statistics
from vnas.space.genotype import Genotype, read_arch_json
from vnas.space.network import VNASNet

PATCH = (32, 32, 32)
KEY_CELL, KEY_OP = 5, 1  # the one cell and op that the hand-built supernet needs


class HandBuiltSupernet(nn.Module):
    """A supernet with V-NAS's α (16, 3) and β (5, 3) whose every cell mixes three
    "ops" ``gain · x`` into the foreground logit: only op KEY_OP of cell KEY_CELL has a
    gain (8), every other op is the same zero function. The label is ``x > 0``, so that
    op alone segments it and no other op can matter."""

    def __init__(self) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(16, 3))
        self.beta = nn.Parameter(torch.zeros(5, 3))
        gains = torch.zeros(21, 3)
        gains[KEY_CELL, KEY_OP] = 8.0
        self.register_buffer("gains", gains)

    def genotype(self) -> Genotype:
        return Genotype.from_weights(self.alpha.detach(), self.beta.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.cat([F.softmax(self.alpha, -1), F.softmax(self.beta, -1)])
        gain = (weights * self.gains).sum()
        return torch.cat([torch.zeros_like(x), gain * x], dim=1)


def patches(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 4, 4, 4, generator=g)
    return x, (x[:, 0] > 0).long()


def test_selection_recovers_the_op_built_to_matter_and_only_it():
    x, y = patches()
    record = select_by_perturbation(HandBuiltSupernet(), x, y, cross_entropy, chunk=4)
    assert record["answered"][KEY_CELL] and record["chosen"][KEY_CELL] == KEY_OP
    key = record["scores"][KEY_CELL]
    assert key["best"] == KEY_OP and key["t_best_vs_second"] >= 3
    assert key["removed"][KEY_OP] > 0 and key["alone"][KEY_OP] < 0  # both say it matters
    # every other cell's ops are one function: no answer, the fallback (argmax of uniform α: 2D)
    assert record["answered_cells"] == 1
    assert [c for i, c in enumerate(record["chosen"]) if i != KEY_CELL] == [0] * 20
    code = Genotype.parse(record["code"]["encoder"], record["code"]["decoder"])
    assert code.encoder[KEY_CELL] == KEY_OP


def test_a_cell_without_an_answer_keeps_its_fallback_op():
    x, y = patches()
    model = HandBuiltSupernet()
    model.alpha.data[3] = torch.tensor([0.0, 0.0, 1.0])  # the argmax code says P3D at E3
    record = select_by_perturbation(model, x, y, cross_entropy, chunk=4)
    assert not record["answered"][3] and record["chosen"][3] == 2


def test_removing_an_op_renormalises_the_cell_to_sum_to_one():
    weights = F.softmax(torch.tensor([0.3, -1.2, 0.8]), -1)
    for op in range(3):
        kept = renormalised_without(weights, op)
        assert kept[op] == 0 and float(kept.sum()) == pytest.approx(1.0, abs=1e-7)
        rest = [i for i in range(3) if i != op]
        torch.testing.assert_close(kept[rest], weights[rest] / weights[rest].sum())
    model = VNASNet(1, 2, 0.0625, "search")
    before = model.alpha.detach().clone()
    with cell_logits(model, 2, keep=[0, 2]):
        in_cell = F.softmax(model.alpha, -1)[2]
        assert float(in_cell.detach().sum()) == pytest.approx(1.0, abs=1e-6) and in_cell[1] == 0
        torch.testing.assert_close(in_cell, renormalised_without(F.softmax(before[2], -1), 1))
    torch.testing.assert_close(model.alpha.detach(), before)  # put back afterwards


def identical_ops_net() -> VNASNet:
    """A Mix supernet whose three ops in every cell are copies of its 2D op."""
    torch.manual_seed(0)
    model = VNASNet(1, 2, 0.0625, "mix")
    for cell in model.encoder_cells:
        cell.branches = nn.ModuleList(copy.deepcopy(cell.branches[0]) for _ in range(3))
    for block in model.decoder_cells:
        block.blocks = nn.ModuleList(copy.deepcopy(block.blocks[0]) for _ in range(3))
    return model.eval()


def test_no_answer_where_the_ops_are_made_identical():
    """On the real network: every op of E15 is a copy of its 2D op, so no op can be told
    apart."""
    model = identical_ops_net()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 1, *PATCH, generator=g)
    y = torch.randint(0, 2, (3, *PATCH), generator=g)
    record = score_cell(model, 15, x, y, cross_entropy, chunk=3)
    assert not record["answered"], record
    assert abs(record["mean_difference"]) < 1e-4
    assert max(abs(v) for v in record["removed"] + record["alone"]) < 1e-4


def test_folds_pool_their_patches_and_fall_back_to_the_argmax_code():
    x, _ = patches(seed=0)
    folds = [
        select_by_perturbation(HandBuiltSupernet(), *patches(seed=s), cross_entropy, chunk=4)
        for s in (0, 1)
    ]
    fallback = [2] * 21
    pooled = pool_scores(folds, fallback)
    assert pooled["chosen"][KEY_CELL] == KEY_OP and pooled["answered_cells"] == 1
    assert pooled["chosen"][0] == 2 and pooled["folds"] == 2
    assert len(folds[0]["scores"][KEY_CELL]["patch_scores"][0]) == len(x)
    assert pooled["patches"] == 2 * len(x)


# --- search hygiene -----------------------------------------------------------------


def arch_batch(seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 1, *PATCH, generator=g), torch.randint(0, 2, (2, *PATCH), generator=g)


def hand_gradient(model, batches):
    grads = []
    for x, y in batches:
        grads.append(torch.autograd.grad(cross_entropy(model(x), y), [model.alpha, model.beta]))
    return [sum(g[i] for g in grads) / len(grads) for i in range(2)]


def test_k_val_batches_step_on_their_mean_gradient():
    torch.manual_seed(0)
    model = VNASNet(1, 2, 0.0625, "search").train()
    b1, b2 = arch_batch(1), arch_batch(2)
    # BatchNorm in train mode: the hand-made gradients see the same running-stat updates
    # as the step's; only the α/β gradient is compared
    expected = torch.cat(hand_gradient(model, [b1, b2]))
    before = torch.cat([model.alpha, model.beta]).detach().clone()
    optim = ArchOptimConfig(arch_lr=1e-3, arch_weight_decay=0.0)
    architect = Architect(model, cross_entropy, optim, lr=optim.arch_lr)
    architect.step(*b1, *b2)
    stats = architect.gradient_statistics()
    rms = expected.pow(2).mean(dim=1).sqrt()
    np.testing.assert_allclose(stats["rms_grad"], rms.tolist(), rtol=1e-4)
    assert stats["decay_share"] == [0.0] * 21  # no weight decay, no share
    # Adam's first step moves each logit by lr against the sign of its (mean) gradient
    moved = torch.cat([model.alpha, model.beta]).detach() - before
    big = expected.abs() > 1e-6
    assert torch.equal(torch.sign(moved[big]), -torch.sign(expected[big]))


def test_weight_decay_share_is_what_the_decay_adds():
    torch.manual_seed(0)
    model = VNASNet(1, 2, 0.0625, "search").train()
    model.alpha.data.fill_(0.5)
    model.beta.data.fill_(0.5)
    architect = Architect(model, cross_entropy, ArchOptimConfig(arch_weight_decay=1e-3), lr=3e-4)
    architect.step(*arch_batch(1))
    stats = architect.gradient_statistics()
    np.testing.assert_allclose(stats["rms_decay"], [5e-4] * 21, rtol=1e-6)
    share = np.asarray(stats["rms_decay"]) / (
        np.asarray(stats["rms_decay"]) + np.asarray(stats["rms_grad"])
    )
    np.testing.assert_allclose(stats["decay_share"], share, rtol=1e-5)


def test_dice_pooled_over_the_batch_changes_only_the_batch_dice():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 2, 8, 8, 8, generator=g)
    label = torch.zeros(2, 8, 8, 8, dtype=torch.long)
    label[0, 2:5, 2:5, 2:5] = 1  # the second patch has no foreground
    per_patch, pooled = get_loss("dice_ce"), get_loss("dice_ce", dice_pooled=True)
    assert float(pooled(logits, label)) != pytest.approx(float(per_patch(logits, label)))
    one = logits[:1], label[:1]  # one patch: pooling over the batch changes nothing
    assert float(pooled(*one)) == pytest.approx(float(per_patch(*one)), rel=1e-6)
    with pytest.raises(VNASError, match="dice_ce"):
        get_loss("ce", dice_pooled=True)


# --- the probe's null -----------------------------------------------------------------


def test_probe_null_on_gradients_without_signal():
    rng = np.random.default_rng(3)
    grads = rng.standard_t(3, size=(64, 21, 3))  # heavy tails, zero mean: no signal
    grads -= grads.mean(axis=2, keepdims=True)
    stats = gradient_statistics(grads, steps=600, lr=0.0184)
    low, high = stats["null_median_abs_t_5_95"]
    assert low <= stats["median_abs_t"] <= high  # what it sees is its own null
    assert 0.7 < stats["null_median_abs_t"] < 1.3  # the favoured op is picked: near 1
    assert stats["detectable_snr"] == pytest.approx(3 / math.sqrt(64))
    assert stats["needed_snr"] == pytest.approx(1 / math.sqrt(600))
    assert not stats["can_see_needed_snr"]
    signal = grads.copy()
    signal[:, :, 1] -= 1.0  # every cell favours 3D strongly
    strong = gradient_statistics(signal, steps=600, lr=0.0184)
    assert strong["median_abs_t"] > strong["null_median_abs_t_5_95"][1]


# --- the search and aggregate commands --------------------------------------------------


def test_search_with_hygiene_and_perturbation_then_aggregate(synthetic_dataset, tmp_path):
    from tests.test_search import search_argv

    out = tmp_path / "fold0"
    argv = search_argv(synthetic_dataset, out, "--arch-grad-batches", "2",
                       "--arch-batch-size", "3", "--pt-patches", "1")  # fmt: skip
    for flag, value in (("--iterations", 3), ("--warmup-iterations", 1)):
        argv[argv.index(flag) + 1] = str(value)
    assert main(argv) == 0
    # a second "fold": the same search under another name (aggregation pools them)
    outs = [out, tmp_path / "fold1"]
    shutil.copytree(out, outs[1])
    diagnostics = json.loads((outs[0] / "diagnostics.json").read_text())
    assert diagnostics["arch_gradient"]["steps"] > 0
    assert len(diagnostics["arch_gradient"]["rms_grad"]) == 21
    cells = diagnostics["perturbation"]["cells"]
    assert len(cells) == 21 and {"chosen", "answered", "t_best_vs_second"} <= set(cells[0])
    selection = json.loads((outs[0] / "perturbation.json").read_text())
    assert selection["patches"] == 1 and len(selection["scores"][0]["patch_scores"][0]) == 1
    assert selection["answered_cells"] == 0  # one patch is no evidence: every cell falls back
    assert selection["code"] == json.loads((outs[0] / "arch.json").read_text())["code"]
    pt = tmp_path / "arch-pt.json"
    args = ["aggregate", *map(str, outs), "--out", str(pt), "--selection", "perturbation"]
    assert main(args) == 0
    record = read_arch_json(pt)
    assert record["selection"] == "perturbation"
    assert len(record["perturbation"]["cells"]) == 21
    assert record["code"] == record["perturbation"]["code"]
    # a search without perturbation scores cannot be read by perturbation
    plain = tmp_path / "plain"
    shutil.copytree(outs[0], plain)
    (plain / "perturbation.json").unlink()
    assert main(["aggregate", str(plain), "--out", str(tmp_path / "x.json"),
                 "--selection", "perturbation"]) == 2  # fmt: skip


def test_new_search_settings_are_recorded_only_when_set():
    """Earlier search folders keep their fingerprint: the settings this issue added are
    left out of config.json at their defaults and recorded when given."""
    from vnas.cli import build_parser
    from vnas.commands.run_flags import run_config
    from vnas.engine.config import run_record

    base = ["search", "--preprocessed", "p", "--folds", "f.json", "--fold", "0", "--out", "o"]
    plain = run_record(run_config(SearchConfig, build_parser().parse_args(base)), command="search")
    assert not {"pt_patches", "arch_grad_batches", "arch_dice_pooled", "blank"} & set(plain)
    flags = ["--pt-patches", "8", "--arch-grad-batches", "4", "--arch-dice-pooled"]
    config = run_config(SearchConfig, build_parser().parse_args([*base, *flags]))
    assert config.selection.pt_patches == 8 and config.arch_optim.arch_grad_batches == 4
    record = run_record(config, command="search")
    assert record["pt_patches"] == 8 and record["arch_grad_batches"] == 4
    assert record["arch_dice_pooled"] is True


def test_report_shows_the_per_cell_perturbation_scores(tmp_path):
    from vnas.report.html import perturbation_scores
    from vnas.search.perturbation import perturbation_summary

    folds = [
        select_by_perturbation(HandBuiltSupernet(), *patches(seed=s), cross_entropy, chunk=4)
        for s in (0, 1)
    ]
    path = tmp_path / "arch-pt.json"
    pooled = pool_scores(folds, [0] * 21)
    path.write_text(json.dumps({"perturbation": perturbation_summary(pooled)}))
    text = perturbation_scores(path)
    lines = [line for line in text.splitlines() if line.startswith("| E") or line.startswith("| D")]
    assert len(lines) == 21
    key = next(line for line in lines if line.startswith("| E2.3 "))  # cell 5
    assert "| 3D " in key and "| yes " in key
    assert "1 of 21 cells have an answer" in text
