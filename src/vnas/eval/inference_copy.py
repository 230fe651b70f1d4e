"""The network as inference runs it: an eval-mode copy with BatchNorm folded into the
convolutions, the form both sliding-window inference (:mod:`vnas.eval.inference`) and the
exports (:mod:`vnas.eval.export`) take.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ["fold_batchnorm", "prepare_for_inference"]


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold each eval-mode ``Conv3d -> BatchNorm3d`` pair of an ``nn.Sequential`` into one conv.

    Works in place on ``model`` (pass a copy) and returns it. Every V-NAS Conv+BN unit is
    such a pair (:func:`vnas.space.operations.conv_bn`); other layouts are left as they are:
    MONAI's blocks, the pre-activation BatchNorms (BN → ReLU → conv) of the decoder's Up
    and final layers, and the BatchNorm after the "Conv-Max Pool Down" shortcut's
    max-pool (it could be folded only where its scale is positive). Uses
    :func:`torch.nn.utils.fusion.fuse_conv_bn_eval`: in eval mode a BatchNorm is a
    per-channel affine map, which the conv's weights and bias absorb.
    """
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        for i in range(len(module) - 1):
            conv, bn = module[i], module[i + 1]
            if isinstance(conv, nn.Conv3d) and isinstance(bn, nn.BatchNorm3d):
                module[i] = fuse_conv_bn_eval(conv, bn)
                module[i + 1] = nn.Identity()
    return model


def prepare_for_inference(
    model: nn.Module, channels_last: bool = True, fold_bn: bool = True
) -> nn.Module:
    """An eval-mode copy of ``model`` for fast inference (``model`` itself is unchanged).

    Args:
        model: the trained network, on its device.
        channels_last: weights in ``torch.channels_last_3d`` memory format.
        fold_bn: fold BatchNorm into the convolutions (:func:`fold_batchnorm`).
    """
    net = copy.deepcopy(model).eval()
    if fold_bn:
        net = fold_batchnorm(net)
    if channels_last:
        net = net.to(memory_format=torch.channels_last_3d)
    return net
