"""Segmentation losses, chosen by name with ``--loss``.

``ce`` (the default) is the paper's voxel-wise cross-entropy. ``dice_ce`` is MONAI's
``DiceCELoss`` (soft Dice over the classes plus cross-entropy, nnU-Net's loss): a
departure from the paper, offered because cross-entropy alone needs many iterations
before a network predicts any voxel of a target that covers well under 1 % of a
patch. The synthetic demo uses it to learn its thin phantom pancreas within a CPU
budget; the real datasets keep ``ce``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from vnas.errors import VNASError

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
LOSSES = ("ce", "dice_ce")


def cross_entropy(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Voxel-wise cross-entropy of logits ``(N, C, D, H, W)`` against labels ``(N, D, H, W)``."""
    return F.cross_entropy(logits.float(), label)


def get_loss(name: str, dice_pooled: bool = False, dice_background: bool = True) -> LossFn:
    """The loss ``name`` (one of ``LOSSES``) as ``loss(logits, label) -> scalar``.

    ``dice_pooled``: the Dice of ``dice_ce`` is computed over all voxels of the batch at
    once (MONAI's ``batch=True``, DiNTS's choice) rather than per patch and averaged; a
    patch without foreground then no longer contributes a Dice of its own.
    ``dice_background``: the Dice of ``dice_ce`` counts the background channel (MONAI's
    ``include_background``, the first runs' loss). A network that predicts background
    only then keeps a near-perfect background Dice, a local minimum trainings were seen
    to stall in; without it that network scores the worst Dice (nnU-Net leaves the
    background out too). The cross-entropy term keeps every class either way; ``ce``
    has no Dice and ignores it, so that one pipeline setting serves both losses.
    """
    if name == "ce":
        if dice_pooled:
            raise VNASError("a Dice pooled over the batch needs the dice_ce loss, not ce")
        return cross_entropy
    if name == "dice_ce":
        from monai.losses import DiceCELoss

        dice_ce = DiceCELoss(
            to_onehot_y=True,
            softmax=True,
            batch=dice_pooled,
            include_background=dice_background,
        )
        return lambda logits, label: dice_ce(logits.float(), label.unsqueeze(1))
    raise VNASError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
