"""Encoder and decoder cells, each fixed (one op) or mixed (all three ops), from one class.

A cell built with ``op=None`` holds all three candidate ops and takes the softmax
weights of its row of α or β in ``forward`` (Eq. 2 and Eq. 4). A cell built with an
``op`` digit holds only that op, so a fixed network has no unused weights.
"""

from __future__ import annotations

import torch
from torch import nn

from vnas.genotype import NUM_OPS
from vnas.operations import DENSE_LAYERS, DenseLayers, EncoderBranch, conv_bn

__all__ = ["DecoderCell", "EncoderCell"]


class EncoderCell(nn.Module):
    """ResNet bottleneck cell with a searchable X/Y (E0 2D, E1 3D, E2 P3D), stride 1.

    Computes ``relu(Σ_i w_i · branch_i(x) + shortcut(x))`` with one shared shortcut
    (identity, or ``1×1×1`` conv+BN where the channel count changes). Because the
    weights sum to 1, this equals Eq. 2's weighted sum of the three full residual
    cells ``Σ_i w_i (branch_i(x) + shortcut(x))`` with a shared shortcut, before the
    final ReLU.

    Args:
        in_channels: input channels.
        planes: bottleneck width; the cell outputs ``4 * planes`` channels.
        op: the op digit of a fixed cell, or ``None`` for a mixed cell.
    """

    def __init__(self, in_channels: int, planes: int, op: int | None) -> None:
        super().__init__()
        self.op = op
        ops = range(NUM_OPS) if op is None else (op,)
        self.branches = nn.ModuleList(EncoderBranch(in_channels, planes, i) for i in ops)
        out_channels = 4 * planes
        self.shortcut: nn.Module = (
            nn.Identity()
            if in_channels == out_channels
            else conv_bn(in_channels, out_channels, "1x1x1", relu=False)
        )
        self.relu = nn.ReLU(inplace=True)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        if self.op is not None:
            branch = self.branches[0](x)
        else:
            branch = sum(w * b(x) for w, b in zip(weights, self.branches, strict=True))
        return self.relu(branch + self.shortcut(x))


class DecoderCell(nn.Module):
    """Dense block with searchable X/Y (D0 2D, D1 3D, D2 P3D).

    Computes ``concat(x, Σ_j w_j · new_j(x))`` where ``new_j`` are the dense layers'
    new features of op ``j``. As the weights sum to 1 and ``x`` passes unchanged,
    this equals Eq. 4's weighted sum of the three full dense blocks.

    Args:
        in_channels: input channels.
        growth: growth rate; the block adds ``DENSE_LAYERS * growth`` channels.
        op: the op digit of a fixed cell, or ``None`` for a mixed cell.
    """

    def __init__(self, in_channels: int, growth: int, op: int | None) -> None:
        super().__init__()
        self.op = op
        ops = range(NUM_OPS) if op is None else (op,)
        self.blocks = nn.ModuleList(DenseLayers(in_channels, growth, i) for i in ops)
        self.out_channels = in_channels + DENSE_LAYERS * growth

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        if self.op is not None:
            new = self.blocks[0](x)
        else:
            new = sum(w * b(x) for w, b in zip(weights, self.blocks, strict=True))
        return torch.cat([x, new], dim=1)
