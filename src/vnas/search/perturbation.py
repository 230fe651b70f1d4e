"""Perturbation-based selection: read a trained supernet by what each op does, not by α.

Argmax of α (the paper's selection, :mod:`vnas.search.aggregate`) measures an op's value
*inside the mixture*. Wang et al. ("Rethinking Architecture Selection in Differentiable
NAS", ICLR 2021, DARTS-PT) show that this can differ from the op's strength alone, and
select instead by how much the supernet's validation loss changes when an op is taken
away. This module does that for the 21 cells of a V-NAS supernet (search or Mix mode).

Per cell ``c`` and op ``i``, on one fixed set of validation patches (the same patches for
every variant, so that every comparison is paired):

- *removed*: op ``i``'s weight set to 0 and the cell's other weights renormalised to sum
  to 1. Eq. 2's candidates share the cell's shortcut, so without renormalising, removing
  an op would also shrink the shortcut's share of the output and the loss change would
  measure that, not the op. Setting α_i to ``-inf`` does exactly this: the softmax of the
  remaining logits is the renormalised weights.
- *alone*: the cell keeps op ``i`` only (weight 1), as the discrete network will.

The op's score per patch is ``½[(L_removed,i − L) + (L − L_alone,i)]``, with ``L`` the
supernet's loss on that patch: high when removing the op hurts and keeping it alone
does not. The op with the highest mean score is chosen, and the paired t statistic of
its per-patch score minus the second best's says how sure that is. A cell has **no
answer** when ``t < t_threshold`` (default 3) or the mean difference is below
``min_delta`` (default 1e-4 in loss units, so that ops made identical, whose differences
are rounding noise, never count); such a cell gets the **fallback op**: the argmax of α
(the paper's choice; on the Mix supernet, whose α is uniform, that is op 0, 2D, the
cheapest). ``answered`` in the record says which cells were decided by perturbation.

BatchNorm: every variant is evaluated in eval mode, with the running statistics the
supernet accumulated while training. Batch statistics would (a) make a patch's loss
depend on the other patches of its batch, so that per-patch differences were no longer
paired, and (b) re-normalise away much of the change that removing an op causes, which
is the very signal measured; and at the deep stages of a small patch a batch holds only a
few values per channel (the issue that motivated this module: stage 4 of a 32³ patch is
1×1×1). The running statistics are those of the mixture, which is what is perturbed.

Selection is progressive, as in DARTS-PT: cells are scored in order (E0–E15, then
D0–D4), and once a cell is chosen it is fixed to its op (one-hot) before the next is
scored; optionally the weights are fine-tuned for a few steps between cells
(``finetune``, DARTS-PT's "tune" phase), so that later cells are scored on a network
that has adapted to the earlier choices.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from vnas.search.pt_verdict import (
    NO_ANSWER,
    NUM_CELLS,
    paired_t,
    perturbation_summary,
    pool_scores,
    selection_record,
    verdict,
)
from vnas.space.genotype import NUM_ENCODER_CELLS, NUM_OPS

__all__ = [
    "NO_ANSWER",
    "cell_logits",
    "paired_t",
    "per_patch_losses",
    "perturbation_summary",
    "pool_scores",
    "renormalised_without",
    "score_cell",
    "select_by_perturbation",
]


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def renormalised_without(weights: torch.Tensor, op: int) -> torch.Tensor:
    """A cell's op weights with ``op`` removed and the rest renormalised to sum to 1."""
    kept = weights.clone()
    kept[op] = 0.0
    total = kept.sum()
    if not total > 0:
        raise ValueError("removing this op leaves no weight to renormalise")
    return kept / total


def _row(model: nn.Module, cell: int) -> torch.Tensor:
    """The α (encoder cells) or β (decoder blocks) row of ``cell`` (0–20), as a view."""
    if cell < NUM_ENCODER_CELLS:
        return model.alpha.data[cell]
    return model.beta.data[cell - NUM_ENCODER_CELLS]


@contextmanager
def cell_logits(model: nn.Module, cell: int, keep: Sequence[int]):
    """Within the block, ``cell`` mixes only the ops in ``keep``, renormalised.

    The other ops' logits are ``-inf``: the softmax of the rest is then exactly
    :func:`renormalised_without` (one op dropped) or one-hot (one op kept).
    """
    row = _row(model, cell)
    saved = row.clone()
    dropped = [i for i in range(NUM_OPS) if i not in keep]
    row[dropped] = -math.inf
    try:
        yield
    finally:
        row.copy_(saved)


def fix_cell(model: nn.Module, cell: int, op: int) -> None:
    """Fix ``cell`` to ``op`` for good (its other logits ``-inf``)."""
    row = _row(model, cell)
    row[[i for i in range(NUM_OPS) if i != op]] = -math.inf
    row[op] = 0.0


@torch.no_grad()
def per_patch_losses(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, loss_fn: LossFn, chunk: int
) -> np.ndarray:
    """The loss of each patch on its own, in eval mode (running BatchNorm statistics).

    Args:
        images, labels: the fixed patches ``(N, 1, D, H, W)`` and ``(N, D, H, W)``.
        chunk: patches per forward pass (does not change the result in eval mode).
    """
    model.eval()
    losses = []
    for start in range(0, len(images), chunk):
        logits = model(images[start : start + chunk])
        for k in range(len(logits)):
            label = labels[start + k : start + k + 1]
            losses.append(float(loss_fn(logits[k : k + 1], label)))
    return np.asarray(losses, dtype=np.float64)


def score_cell(
    model: nn.Module,
    cell: int,
    images: torch.Tensor,
    labels: torch.Tensor,
    loss_fn: LossFn,
    chunk: int,
    *,
    fallback: int = 0,
    t_threshold: float = 3.0,
    min_delta: float = 1e-4,
) -> dict:
    """Score the three ops of ``cell`` (0–20) on the fixed patches (module docstring).

    Returns:
        ``chosen`` (the op, or ``fallback`` without an answer), ``answered``, ``best``,
        ``second``, ``t_best_vs_second``, ``mean_difference``, ``score`` (mean per op),
        ``removed`` and ``alone`` (mean loss change per op), and ``patch_scores``
        (``(3, N)``, for pooling over folds).
    """
    base = per_patch_losses(model, images, labels, loss_fn, chunk)
    removed, alone = [], []
    for op in range(NUM_OPS):
        with cell_logits(model, cell, [i for i in range(NUM_OPS) if i != op]):
            removed.append(per_patch_losses(model, images, labels, loss_fn, chunk) - base)
        with cell_logits(model, cell, [op]):
            alone.append(per_patch_losses(model, images, labels, loss_fn, chunk) - base)
    scores = 0.5 * (np.stack(removed) - np.stack(alone))
    return {
        **verdict(scores, fallback, t_threshold, min_delta),
        "removed": [float(r.mean()) for r in removed],
        "alone": [float(a.mean()) for a in alone],
        "base_loss": float(base.mean()),
        "patch_scores": scores.tolist(),
    }


def _unscored(op: int, patches: int) -> dict:
    """The record of a cell that is not scored (a fixed cell): no answer, its own op."""
    zeros = np.zeros((NUM_OPS, patches))
    return {**verdict(zeros, op, math.inf, math.inf), "removed": [0.0] * NUM_OPS,
            "alone": [0.0] * NUM_OPS, "patch_scores": zeros.tolist(), "scored": False}  # fmt: skip


def select_by_perturbation(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    loss_fn: LossFn,
    *,
    chunk: int = 2,
    fallback: Sequence[int] | None = None,
    t_threshold: float = 3.0,
    min_delta: float = 1e-4,
    finetune: Callable[[nn.Module], None] | None = None,
    cells: Sequence[int] | None = None,
) -> dict:
    """Progressive perturbation-based selection of all 21 cells (module docstring).

    The model is left with every cell fixed to its chosen op (and, with ``finetune``,
    its weights changed); it is meant to be discarded afterwards.

    Args:
        model: a :class:`vnas.space.network.VNASNet` in search or mix mode.
        images, labels: the fixed validation patches.
        loss_fn: the search's loss.
        chunk: patches per forward pass.
        fallback: the op of each cell without an answer (default: argmax of α/β).
        t_threshold, min_delta: the answer rule (module docstring).
        finetune: called after each cell is fixed (e.g. a few SGD steps); the model is
            put back in eval mode afterwards.
        cells: the cells to score (default: all); the others are fixed cells of a partly
            mixed network, recorded as unanswered with their fallback op, unscored.

    Returns:
        ``{"cells", "ops", "chosen", "answered", "code", "scores", ...}``; ``scores`` holds
        one :func:`score_cell` record per cell.
    """
    if fallback is None:
        fallback = model.genotype().digits
    records = []
    scored = range(NUM_CELLS) if cells is None else set(cells)
    for cell in range(NUM_CELLS):
        if cell not in scored:
            records.append(_unscored(int(fallback[cell]), len(images)))
            continue
        record = score_cell(
            model, cell, images, labels, loss_fn, chunk, fallback=int(fallback[cell]),
            t_threshold=t_threshold, min_delta=min_delta,
        )  # fmt: skip
        records.append(record)
        fix_cell(model, cell, record["chosen"])
        if finetune is not None:
            finetune(model)
    return selection_record(records, t_threshold, min_delta, patches=len(images))
