"""Is there a signal for the search to follow? The α/β gradient of a trained supernet.

A first-order search moves α and β along ``-∇ L_val``, one validation batch at a time.
Adam turns a gradient whose sign is consistent into steady movement (about the learning
rate per step) and a gradient whose sign flips from batch to batch into a random walk
(about the learning rate × √steps). This probe measures which of the two a search faces:
it trains the search network's weights exactly as a search's warm-up does (the same
seed, batches and SGD schedule; α and β stay at their initial, almost uniform values),
and at given iterations computes the gradient of the validation loss with respect to α
and β on many validation batches, without updating anything.

Per cell it reports the op whose logit the mean gradient raises (the smallest mean
gradient: the gradients of one cell's three logits sum to zero at uniform weights), the
t statistic of that op's gradient minus the mean of the other two over the batches
(``|t| >= 3``: a consistent direction), the signal-to-noise ratio of that difference per
batch (corrected for the noise in its own mean: ``√max(mean² − se², 0) / std``), and the
drift Adam would make from it over a search's architecture steps
(``steps × lr × SNR / √(1 + SNR²)``), against the random walk's ``lr × √steps``. How many
cells would look consistent by chance is measured on the same gradients with their signs
flipped at random per batch (zero mean, the same noise).

Its own null: the same sign flips give the median |t| that gradients without any signal
would show (``null_median_abs_t`` and its 5–95 % range; the favoured op is picked per
cell, so this is near 1, not 0.67), so an observed median |t| inside that range says
nothing. And its reach: with K batches a per-batch SNR is seen at ``|t| >= 3`` only from
about ``3/√K`` on (``detectable_snr``), while a search of T architecture steps is moved by
a drift from an SNR of about ``1/√T`` on (``needed_snr``: its drift ``T·lr·SNR`` then
equals the random walk ``lr·√T``). When ``detectable_snr > needed_snr`` the probe cannot
tell "no signal" from "too little to see but enough to steer the search".
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

from vnas.data.batches import batch_stream, to_device
from vnas.engine.context import prepare_run
from vnas.engine.losses import get_loss
from vnas.engine.rundir import RunState, mark_done
from vnas.errors import VNASError
from vnas.files.atomic import atomic_write_json
from vnas.files.outputs import signed
from vnas.search.config import ProbeConfig
from vnas.search.diagnostics import cell_names
from vnas.search.schedule import arch_schedule
from vnas.search.task import SearchTask
from vnas.space.models import build_model, describe_arch

__all__ = ["PROBE_JSON", "gradient_statistics", "run_probe"]

logger = logging.getLogger(__name__)

PROBE_JSON = "probe.json"
#: A cell's direction counts as consistent from this |t| on.
T_CONSISTENT = 3.0
#: The probe's own validation stream (the search uses 0 for train and 1 for val batches).
PROBE_STREAM = 2


#: Sign-flip draws for the chance level of consistent cells.
NULL_DRAWS = 200


def _direction(grads: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per cell: the favoured op, the t statistic and the per-batch std of its gradient
    minus the mean of the others' (negative favours it)."""
    k = len(grads)
    preferred = grads.mean(axis=0).argmin(axis=1)  # descending raises this logit most
    cells = np.arange(grads.shape[1])
    others = (grads.sum(axis=2) - grads[:, cells, preferred]) / (grads.shape[2] - 1)
    difference = grads[:, cells, preferred] - others
    d_mean, d_std = difference.mean(axis=0), np.maximum(difference.std(axis=0, ddof=1), 1e-30)
    return preferred, d_mean / (d_std / math.sqrt(k)), d_std


def gradient_statistics(grads: np.ndarray, steps: int, lr: float, seed: int = 0) -> dict:
    """Statistics of per-batch gradients ``(K, 21, 3)`` of the cells' logits.

    Args:
        grads: one row per validation batch.
        steps: the architecture steps of the search to compare with.
        lr: its α/β learning rate.
        seed: of the sign flips that measure the chance level.
    """
    k = len(grads)
    preferred, t, d_std = _direction(grads)
    d_mean = t * d_std / math.sqrt(k)
    snr = np.sqrt(np.maximum(d_mean**2 - d_std**2 / k, 0.0)) / d_std
    consistent = np.abs(t) >= T_CONSISTENT
    # only a consistent direction drifts; elsewhere the mean is noise and Adam random-walks
    drift = np.where(consistent, steps * lr * snr / np.sqrt(1 + snr**2), 0.0)
    rng = np.random.default_rng(seed)
    null_t = np.stack(
        [
            np.abs(_direction(grads * rng.choice([-1.0, 1.0], size=(k, 1, 1)))[1])
            for _ in range(NULL_DRAWS)
        ]
    )
    null = (null_t >= T_CONSISTENT).sum(axis=1)
    null_median = np.median(null_t, axis=1)
    detectable, needed = T_CONSISTENT / math.sqrt(k), 1 / math.sqrt(max(steps, 1))
    return {
        "batches": k,
        "preferred": preferred.tolist(),
        "t": t.round(3).tolist(),
        "snr": snr.round(5).tolist(),
        "drift": drift.round(4).tolist(),
        "consistent_cells": int(consistent.sum()),
        "consistent_by_chance": float(np.mean(null)),
        "consistent_3d_p3d": int((consistent & (preferred > 0)).sum()),
        "preferred_3d_p3d": int((preferred > 0).sum()),
        "median_abs_t": float(np.median(np.abs(t))),
        "null_median_abs_t": float(np.median(null_median)),
        "null_median_abs_t_5_95": np.percentile(null_median, [5, 95]).round(4).tolist(),
        "detectable_snr": detectable,
        "needed_snr": needed,
        "can_see_needed_snr": bool(detectable <= needed),
        "median_snr_consistent": float(np.median(snr[consistent])) if consistent.any() else None,
        "cells_drift_over_1": int((drift > 1).sum()),
        "random_walk": lr * math.sqrt(steps),
        "steps": steps,
        "lr": lr,
    }


def _gradients(model, ctx, batches: int) -> np.ndarray:
    """Per-batch gradients of the validation loss w.r.t. α and β, ``(batches, 21, 3)``."""
    data, optim, run = ctx.config.data, ctx.config.optim, ctx.config.run
    loss_fn = get_loss(optim.loss, dice_background=optim.dice_background)
    stream = batch_stream(
        data.preprocessed, ctx.split["val"], ctx.patch, optim.batch_size, start=0, stop=batches,
        seed=optim.seed, stream=PROBE_STREAM, fg_ratio=data.fg_ratio, workers=run.workers,
    )  # fmt: skip
    rows = []
    for batch in stream:
        image, label = to_device(batch, ctx.device, ctx.channels_last)
        loss = loss_fn(model(image), label)
        alpha, beta = torch.autograd.grad(loss, [model.alpha, model.beta])
        rows.append(torch.cat([alpha, beta]).detach().cpu().numpy())
    return np.stack(rows).astype(np.float64)


def run_probe(config: ProbeConfig) -> int:
    """``vnas experiment probe``: see the module docstring."""
    at, iterations = sorted(set(config.at)), config.optim.iterations
    if at[-1] > iterations:
        raise VNASError(f"--at {at[-1]} is beyond --iterations {iterations}")
    arch = describe_arch("search")
    search = config.search()

    def schedule(n_train_cases: int):  # every iteration a weight step: α and β fixed
        return arch_schedule(search.arch_optim, search.optim, n_train_cases)

    with prepare_run(search, command="probe", arch=arch, record=config.record(),
                     require=("train", "val"), results=(PROBE_JSON,),
                     schedule=schedule) as ctx:  # fmt: skip
        if ctx.state is RunState.DONE:
            logger.info("%s: this probe has already finished; nothing to do", ctx.out)
            return 0
        model = ctx.place(build_model("search", 1, ctx.num_classes, config.optim.width))
        task = SearchTask(ctx, model)
        task.start(0)
        model.train()
        probes = []
        for iteration in range(iterations + 1):
            if iteration in at:
                grads = _gradients(model, ctx, config.batches)
                stats = gradient_statistics(grads, config.arch_steps, config.compare_lr)
                logger.info(
                    "iteration %d: median |t| %.2f against %.2f (%.2f-%.2f) with no signal; "
                    "smallest per-batch SNR seen %.3f, a %d-step search needs %.3f",
                    iteration, stats["median_abs_t"], stats["null_median_abs_t"],
                    *stats["null_median_abs_t_5_95"], stats["detectable_snr"],
                    config.arch_steps, stats["needed_snr"],
                )  # fmt: skip
                probes.append({"iteration": iteration, **stats})
                logger.info(
                    "iteration %d: %d of 21 cells with a consistent direction (|t| >= %g; "
                    "%.2f by chance), %d of them 3D/P3D; %d would drift by more than 1 over "
                    "%d steps (random walk: %.3f)",
                    iteration, stats["consistent_cells"], T_CONSISTENT,
                    stats["consistent_by_chance"], stats["consistent_3d_p3d"],
                    stats["cells_drift_over_1"], config.arch_steps, stats["random_walk"],
                )  # fmt: skip
            if iteration < iterations:
                task.step(iteration)
        record = {"cells": cell_names(), "t_consistent": T_CONSISTENT, "probes": probes,
                  "arch_steps": config.arch_steps, "compare_lr": config.compare_lr}  # fmt: skip
        atomic_write_json(ctx.out / PROBE_JSON, signed("probe", record))
        mark_done(ctx.out)
    return 0
