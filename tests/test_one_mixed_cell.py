"""The one-mixed-cell search (EXPERIMENTS.md, Known answer 2): every cell fixed but one."""

import pytest
import torch

from vnas.engine.config import DataConfig
from vnas.engine.losses import cross_entropy
from vnas.errors import VNASError
from vnas.search.architect import Architect
from vnas.search.config import ArchOptimConfig, PerturbationConfig, SearchConfig
from vnas.search.perturbation import select_by_perturbation
from vnas.search.task import fixed_cells_of
from vnas.space.network import FIXED_LOGIT, VNASNet

MIXED = 20  # D5
ALL_2D = {c: 0 for c in range(21) if c != MIXED}


def one_mixed_cell_net() -> VNASNet:
    torch.manual_seed(0)
    return VNASNet(1, 2, 0.0625, "search", fixed_cells=ALL_2D)


def test_only_the_mixed_cell_mixes_and_the_code_names_the_fixed_ops():
    model = one_mixed_cell_net()
    assert model.mixed_cells == [MIXED]
    assert all(len(cell.branches) == 1 for cell in model.encoder_cells)
    assert [len(b.blocks) for b in model.decoder_cells] == [1, 1, 1, 1, 3]
    assert model.genotype().digits[:MIXED] == (0,) * MIXED
    probs, _ = model.arch_probs()
    assert torch.all(probs[:, 0] > 0.999)


def test_an_architecture_step_moves_the_mixed_row_and_holds_the_fixed_ones():
    model = one_mixed_cell_net()
    before = model.beta.detach().clone()
    fixed_alpha = model.alpha.detach().clone()
    optim = ArchOptimConfig(arch_lr=0.1, arch_weight_decay=1e-1)  # decay would move them
    architect = Architect(model, cross_entropy, optim, lr=optim.arch_lr)
    x = torch.randn(2, 1, 32, 32, 32)
    y = (x[:, 0] > 0).long()
    for _ in range(2):
        architect.step(x, y)
    torch.testing.assert_close(model.alpha.detach(), fixed_alpha)
    torch.testing.assert_close(model.beta.detach()[:4], before[:4])
    assert not torch.equal(model.beta.detach()[4], before[4])
    assert float(model.alpha.detach()[0, 0]) == FIXED_LOGIT


def test_perturbation_scores_only_the_mixed_cell():
    model = one_mixed_cell_net()
    x = torch.randn(4, 1, 32, 32, 32)
    y = (x[:, 0] > 0).long()
    record = select_by_perturbation(model, x, y, cross_entropy, chunk=2, cells=model.mixed_cells)
    assert record["chosen"][:MIXED] == [0] * MIXED
    assert not any(record["answered"][:MIXED])
    assert all(r.get("scored") is False for r in record["scores"][:MIXED])
    assert "scored" not in record["scores"][MIXED]
    assert any(v != 0 for v in record["scores"][MIXED]["removed"])


def config(**kw):
    return SearchConfig(DataConfig(preprocessed="p", folds="f", fold=0, out="o"), **kw)


def test_fixed_cells_of_a_search_config():
    assert fixed_cells_of(config()) == {}
    fixed = fixed_cells_of(config(fixed_code="manual:3d/2d", mixed_cells=("E2.1", "D5")))
    assert sorted(set(range(21)) - fixed.keys()) == [3, 20]
    assert fixed[0] == 1 and fixed[16] == 0
    with pytest.raises(VNASError, match="go together"):
        fixed_cells_of(config(mixed_cells=("D5",)))
    with pytest.raises(VNASError, match="unknown --mixed-cells"):
        fixed_cells_of(config(fixed_code="manual:2d/2d", mixed_cells=("E5.1",)))
    with pytest.raises(VNASError, match="not a fixed architecture"):
        fixed_cells_of(config(fixed_code="mix", mixed_cells=("D5",)))
    with pytest.raises(VNASError, match="--blank"):
        fixed_cells_of(config(fixed_code="manual:2d/2d", mixed_cells=("D5",),
                              selection=PerturbationConfig(blank=True)))  # fmt: skip


def test_fixed_cells_need_the_search_network():
    with pytest.raises(VNASError, match="search network"):
        VNASNet(1, 2, 0.0625, "mix", fixed_cells={0: 0})
    with pytest.raises(VNASError, match="nothing is left"):
        VNASNet(1, 2, 0.0625, "search", fixed_cells={c: 0 for c in range(21)})
