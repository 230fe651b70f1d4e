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
