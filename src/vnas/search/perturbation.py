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

from vnas.search.diagnostics import cell_names
from vnas.space.genotype import (
    NUM_DECODER_BLOCKS,
    NUM_ENCODER_CELLS,
    NUM_OPS,
    OP_NAMES,
    Genotype,
)

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

NUM_CELLS = NUM_ENCODER_CELLS + NUM_DECODER_BLOCKS
#: ``chosen`` of a cell without an answer is its fallback op; this marks the verdict.
NO_ANSWER = "no answer"

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


def paired_t(difference: np.ndarray) -> float:
    """t statistic of the mean of paired differences (0 when they are all 0 or there is
    only one: no evidence; ``inf`` when they are all equal and positive)."""
    if len(difference) < 2:
        return 0.0
    mean = float(difference.mean())
    sd = float(difference.std(ddof=1))
    if sd == 0.0:
        return 0.0 if mean == 0.0 else math.copysign(math.inf, mean)
    return mean / (sd / math.sqrt(len(difference)))


def _verdict(scores: np.ndarray, fallback: int, t_threshold: float, min_delta: float) -> dict:
    """Choose from per-patch scores ``(3, N)``: best, second, paired t, answer or fallback."""
    means = scores.mean(axis=1)
    order = np.argsort(-means, kind="stable")
    best, second = int(order[0]), int(order[1])
    difference = scores[best] - scores[second]
    t = paired_t(difference)
    answered = bool(t >= t_threshold and difference.mean() >= min_delta)
    return {
        "chosen": best if answered else fallback,
        "answered": answered,
        "best": best,
        "second": second,
        "t_best_vs_second": t if math.isfinite(t) else (1e9 if t > 0 else 0.0),
        "mean_difference": float(difference.mean()),
        "fallback": fallback,
        "score": means.tolist(),
    }


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
        **_verdict(scores, fallback, t_threshold, min_delta),
        "removed": [float(r.mean()) for r in removed],
        "alone": [float(a.mean()) for a in alone],
        "base_loss": float(base.mean()),
        "patch_scores": scores.tolist(),
    }


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

    Returns:
        ``{"cells", "ops", "chosen", "answered", "code", "scores", ...}``; ``scores`` holds
        one :func:`score_cell` record per cell.
    """
    if fallback is None:
        fallback = model.genotype().digits
    records = []
    for cell in range(NUM_CELLS):
        record = score_cell(
            model, cell, images, labels, loss_fn, chunk, fallback=int(fallback[cell]),
            t_threshold=t_threshold, min_delta=min_delta,
        )  # fmt: skip
        records.append(record)
        fix_cell(model, cell, record["chosen"])
        if finetune is not None:
            finetune(model)
    return selection_record(records, t_threshold, min_delta, patches=len(images))


def selection_record(records: list[dict], t_threshold: float, min_delta: float, **extra) -> dict:
    """The selection's summary over its 21 per-cell records."""
    chosen = [r["chosen"] for r in records]
    genotype = Genotype(chosen[:NUM_ENCODER_CELLS], chosen[NUM_ENCODER_CELLS:])
    answered = [r["answered"] for r in records]
    return {
        "cells": cell_names(),
        "ops": list(OP_NAMES),
        "chosen": chosen,
        "answered": answered,
        "answered_cells": int(sum(answered)),
        "code": {"encoder": genotype.encoder_code, "decoder": genotype.decoder_code},
        "t_threshold": t_threshold,
        "min_delta": min_delta,
        "no_answer_rule": f"{NO_ANSWER} below t {t_threshold:g} or mean difference "
        f"{min_delta:g}: the cell keeps its fallback op (the argmax of alpha/beta)",
        **extra,
        "scores": records,
    }


def pool_scores(selections: Sequence[dict], fallback: Sequence[int]) -> dict:
    """One selection from several folds' (:func:`select_by_perturbation` records).

    Per cell the folds' per-patch scores are pooled (each fold's patches come from its
    own validation cases), the op with the highest pooled mean is chosen and the paired
    t of best against second best is taken over all pooled patches, with the folds'
    answer rule (their strictest ``t_threshold`` and ``min_delta``); a cell without an
    answer gets ``fallback`` (the aggregated argmax code).
    """
    if not selections:
        raise ValueError("no selections to pool")
    t_threshold = max(s["t_threshold"] for s in selections)
    min_delta = max(s["min_delta"] for s in selections)
    records = []
    for cell in range(NUM_CELLS):
        scores = np.concatenate(
            [np.asarray(s["scores"][cell]["patch_scores"]) for s in selections], axis=1
        )
        record = _verdict(scores, int(fallback[cell]), t_threshold, min_delta)
        record["fold_chosen"] = [s["chosen"][cell] for s in selections]
        records.append(record)
    patches = sum(s.get("patches", 0) for s in selections)
    return selection_record(records, t_threshold, min_delta, patches=patches,
                            folds=len(selections))  # fmt: skip


def perturbation_summary(selection: dict) -> dict:
    """Per cell, what ``diagnostics.json`` and the report show of a selection: its name,
    the chosen op, whether it was answered, the paired t and the mean scores and loss
    changes per op (no per-patch values)."""
    keep = ("chosen", "answered", "best", "second", "t_best_vs_second", "mean_difference",
            "score", "removed", "alone")  # fmt: skip
    return {
        "code": selection["code"],
        "answered_cells": selection["answered_cells"],
        "patches": selection.get("patches"),
        "no_answer_rule": selection["no_answer_rule"],
        "cells": [
            {"cell": name, **{k: record[k] for k in keep if k in record}}
            for name, record in zip(selection["cells"], selection["scores"], strict=True)
        ],
    }
