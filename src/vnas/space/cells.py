"""Encoder and decoder cells, each fixed (one op) or mixed (all three ops), from one class.

A cell built with ``op=None`` holds all three candidate ops and takes the softmax
weights of its row of α or β in ``forward`` (Eq. 2 and Eq. 4). A cell built with an
``op`` digit holds only that op, so a fixed network has no unused weights.

Eq. 2 mixes whole encoder cells, ``Σ_i w_i · E_i(x)`` with
``E_i(x) = relu(F_i(x) + shortcut(x))``: each candidate is a complete residual cell,
its ReLU before the weighted sum. The three candidates share one shortcut module
(identity or projection), computed once per forward pass: the paper does not say
whether the candidates' shortcuts share weights, and sharing keeps the mixed cell's
parameters those of its three residual branches plus one shortcut.

Two options of a mixed cell serve the search's speed and memory (both off by default):

- single-path sampling (``index``, GDAS): only the sampled op runs (see :func:`mix_ops`);
- ``checkpoint = True``: the memory-lean cell. Each op runs under
  :func:`torch.utils.checkpoint.checkpoint`, which keeps only its input and output and
  recomputes its inner activations during the backward pass, one op at a time: the
  mixed cells' activations, about three times a fixed cell's, are no longer held from
  the forward to the backward pass, for about one extra forward pass of compute.
  Checkpointing each op rather than the whole cell matters: the decoder block at the
  stem's scale holds most of the network's activations, and recomputing its three ops
  together would need them all at once again. The recomputation runs BatchNorm a second
  time in training mode, which updates its running statistics twice per step; a search
  never uses them (every forward of a search is in training mode, and the search
  network is discarded once α, β are read), so the search's result is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from vnas.space.genotype import NUM_OPS
from vnas.space.operations import (
    DENSE_LAYERS,
    DenseLayers,
    EncoderBranch,
    conv_bn,
    conv_max_pool_down,
)

__all__ = ["DecoderCell", "EncoderCell", "mix_ops"]


def mix_ops(
    ops: Sequence[Callable[..., torch.Tensor]],
    inputs: tuple[torch.Tensor, ...],
    weights: torch.Tensor,
    index: int | None = None,
    checkpointed: bool = False,
) -> torch.Tensor:
    """The weighted sum of the ops' outputs, or (``index`` given) of the sampled one only.

    Every op is called as ``op(*inputs)``.

    DARTS / V-NAS (``index=None``): ``Σ_i w_i · op_i(x)``, every op runs.

    GDAS (``index`` = the sampled op, ``weights`` the straight-through one-hot of a hard
    Gumbel-softmax): ``w_index · op_index(x) + Σ_{i≠index} w_i``, as in the GDAS
    reference code (Dong & Yang, CVPR 2019, ``search_cells.py``): one op runs; the other
    weights are zeros in the forward pass and are added only so that the backward pass
    reaches every entry of the relaxed softmax, hence all of α's row.

    ``checkpointed``: run each op under gradient checkpointing (the memory-lean cell).
    """

    def run(op: Callable[..., torch.Tensor]) -> torch.Tensor:
        if checkpointed and torch.is_grad_enabled():
            return checkpoint(op, *inputs, use_reentrant=False)
        return op(*inputs)

    if index is None:
        return sum(w * run(op) for w, op in zip(weights, ops, strict=True))
    return sum(
        w * run(op) if i == index else w for i, (w, op) in enumerate(zip(weights, ops, strict=True))
    )


class EncoderCell(nn.Module):
    """ResNet bottleneck cell with a searchable X/Y (E0 2D, E1 3D, E2 P3D).

    A fixed cell computes ``relu(F(x) + shortcut(x))``; a mixed cell computes Eq. 2,
    ``Σ_i w_i · relu(F_i(x) + shortcut(x))`` with one shortcut shared by the three
    candidates and computed once. The shortcut is the identity where shapes agree, a
    ``1×1×1`` conv+BN projection where only the channel count changes (the first cell of
    stage 1), and the "Conv-Max Pool Down" (:func:`vnas.space.operations.conv_max_pool_down`)
    in the first cell of stages 2–4 (``downsample=True``), whose branches then stride
    too (:class:`vnas.space.operations.EncoderBranch`).

    Args:
        in_channels: input channels.
        planes: bottleneck width; the cell outputs ``4 * planes`` channels.
        op: the op digit of a fixed cell, or ``None`` for a mixed cell.
        downsample: halve every axis (first cell of stages 2–4).
    """

    def __init__(
        self, in_channels: int, planes: int, op: int | None, downsample: bool = False
    ) -> None:
        super().__init__()
        self.op = op
        ops = range(NUM_OPS) if op is None else (op,)
        self.branches = nn.ModuleList(
            EncoderBranch(in_channels, planes, i, downsample) for i in ops
        )
        out_channels = 4 * planes
        self.shortcut: nn.Module
        if downsample:
            self.shortcut = conv_max_pool_down(in_channels, out_channels)
        elif in_channels != out_channels:
            self.shortcut = conv_bn(in_channels, out_channels, "1x1x1", relu=False)
        else:
            self.shortcut = nn.Identity()
        self.out_channels = out_channels
        self.checkpoint = False  # the memory-lean cell (module docstring)

    @staticmethod
    def _residual(branch: nn.Module, x: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        """One candidate cell E_i on a precomputed shortcut: ``relu(F_i(x) + shortcut)``."""
        return torch.relu(branch(x) + shortcut)

    def forward(
        self, x: torch.Tensor, weights: torch.Tensor | None = None, index: int | None = None
    ) -> torch.Tensor:
        shortcut = self.shortcut(x)
        if self.op is not None:
            return self._residual(self.branches[0], x, shortcut)
        ops = [partial(self._residual, branch) for branch in self.branches]
        return mix_ops(ops, (x, shortcut), weights, index, self.checkpoint)


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
        self.checkpoint = False  # the memory-lean cell (module docstring)

    def forward(
        self, x: torch.Tensor, weights: torch.Tensor | None = None, index: int | None = None
    ) -> torch.Tensor:
        if self.op is not None:
            return torch.cat([x, self.blocks[0](x)], dim=1)
        return torch.cat([x, mix_ops(self.blocks, (x,), weights, index, self.checkpoint)], dim=1)
