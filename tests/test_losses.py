"""Loss selection: the paper's cross-entropy by default, MONAI's Dice+CE on request."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss

from vnas.engine.losses import get_loss
from vnas.errors import VNASError


def _batch():
    torch.manual_seed(0)
    return torch.randn(2, 3, 4, 8, 8), torch.randint(0, 3, (2, 4, 8, 8))


def test_ce_is_cross_entropy():
    logits, label = _batch()
    assert torch.allclose(get_loss("ce")(logits, label), F.cross_entropy(logits, label))


def test_dice_ce_is_monais():
    logits, label = _batch()
    expected = DiceCELoss(to_onehot_y=True, softmax=True)(logits, label.unsqueeze(1))
    assert torch.allclose(get_loss("dice_ce")(logits, label), expected)
    # and differs from plain cross-entropy, so the flag changes training
    assert not torch.allclose(expected, F.cross_entropy(logits, label))


def test_unknown_loss_is_a_clear_error():
    with pytest.raises(VNASError, match=r"unknown loss 'dice'.*ce, dice_ce"):
        get_loss("dice")


def _background_only():
    """Four voxels, the last one target, and a network sure of background everywhere."""
    logits = torch.zeros(1, 2, 1, 1, 4)
    logits[:, 0] = 10.0
    return logits, torch.tensor([[[[0, 0, 0, 1]]]])


def _dice_loss(p: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - soft Dice with MONAI's smoothing terms (1e-5), written out by hand."""
    return 1 - (2 * (p * target).sum() + 1e-5) / (p.sum() + target.sum() + 1e-5)


def test_dice_without_background_scores_a_background_only_network_worst():
    logits, label = _background_only()
    p = torch.softmax(logits, dim=1)[0, :, 0, 0]
    ce = F.cross_entropy(logits, label)
    fg, bg = _dice_loss(p[1], label[0, 0, 0] == 1), _dice_loss(p[0], label[0, 0, 0] == 0)
    with_bg = get_loss("dice_ce")(logits, label)
    without_bg = get_loss("dice_ce", dice_background=False)(logits, label)
    assert torch.isclose(with_bg, ce + (fg + bg) / 2, atol=1e-5)
    assert torch.isclose(without_bg, ce + fg, atol=1e-5)
    # the background Dice (1 - 6/7) halves the Dice term the old loss gives this network
    assert fg > 0.999 and torch.isclose(bg, torch.tensor(1 / 7), atol=1e-4)
    assert without_bg - with_bg > 0.4


def test_ce_has_no_dice_to_leave_the_background_out_of():
    logits, label = _batch()
    assert torch.allclose(get_loss("ce", dice_background=False)(logits, label),
                          F.cross_entropy(logits, label))  # fmt: skip
