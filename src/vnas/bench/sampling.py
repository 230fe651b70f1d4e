"""What GDAS single-path sampling does to the architecture a search finds (tiny scale).

Short searches (:func:`vnas.search.task.run_search`) on a synthetic phantom dataset
(written and preprocessed on the fly, like the test fixture), with the paper's
DARTS-style mixture and with GDAS sampling, each from two seeds, at the paper's α/β
learning rate and at a larger one (in a short search the paper's rate barely moves α, β
away from uniform, so the argmax is close to a coin toss). Reported per run: the arch
codes, seconds per iteration, and the median over cells of the largest α/β probability
(how decided the search is; 1/3 is undecided); per pair of runs at the same learning
rate: on how many of the 21 cells (16 encoder, 5 decoder) the codes agree (7 expected by
chance). The DARTS-vs-DARTS agreement across seeds is the baseline that a DARTS-vs-GDAS
agreement has to be read against. At this size (tiny network, few iterations, phantom
data) the result says nothing about the paper's datasets; it shows the mechanism works
and how far apart the two samplings land.
"""

from __future__ import annotations

import itertools
import logging
import tempfile
import time
from pathlib import Path

import pandas as pd

from vnas.bench.timing import median
from vnas.data.synth import synthetic_pancreas_study
from vnas.engine.config import DataConfig, OptimConfig, RunOptions
from vnas.search.config import ArchOptimConfig, SearchConfig
from vnas.search.task import run_search
from vnas.space.genotype import (
    ARCH_JSON,
    NUM_DECODER_BLOCKS,
    NUM_ENCODER_CELLS,
    Genotype,
    read_arch_json,
)
from vnas.space.network import SAMPLINGS

__all__ = ["code_agreement", "run_sampling_suite"]

logger = logging.getLogger(__name__)

CELLS = NUM_ENCODER_CELLS + NUM_DECODER_BLOCKS  # 21 choices per architecture


def code_agreement(a: dict, b: dict) -> int:
    """Number of cells (encoder and decoder digits) on which two arch codes agree."""
    ga = Genotype.parse(a["encoder"], a["decoder"])
    gb = Genotype.parse(b["encoder"], b["decoder"])
    return sum(
        x == y for x, y in zip(ga.encoder + ga.decoder, gb.encoder + gb.decoder, strict=True)
    )


def _search(
    preprocessed: Path,
    folds: Path,
    out: Path,
    sampling: str,
    seed: int,
    arch_lr: float,
    settings: dict,
) -> dict:
    config = SearchConfig(
        DataConfig(str(preprocessed), str(folds), 0, str(out), tuple(settings["patch"])),
        OptimConfig(iterations=settings["iterations"], width=settings["width"], seed=seed,
                    loss=settings["loss"]),
        RunOptions(device=settings["device"], workers=0, checkpoint_every=10**9,
                   log_every=max(1, settings["iterations"] // 10)),
        ArchOptimConfig(arch_lr=arch_lr, warmup_iterations=settings["warmup"]),
        sampling=sampling,
    )  # fmt: skip
    t0 = time.perf_counter()
    status = run_search(config)
    seconds = time.perf_counter() - t0
    if status != 0:
        raise RuntimeError(f"vnas search ({sampling}, seed {seed}) exited with {status}")
    record = read_arch_json(out / ARCH_JSON)
    probs = [max(row) for row in record["alpha_probs"] + record["beta_probs"]]
    last = pd.read_csv(out / "trajectory.csv").iloc[-1]
    return {
        "sampling": sampling,
        "seed": seed,
        "arch_lr": arch_lr,
        "code": record["code"],
        "seconds": seconds,
        "seconds_per_iteration": seconds / settings["iterations"],
        "median_max_prob": median(probs),
        # the last logged losses: a diverged run's code means nothing
        "final_train_loss": float(last["train_loss"]),
        "final_val_loss": float(last["val_loss"]),
    }


def run_sampling_suite(
    iterations: int,
    warmup: int,
    width: float,
    patch: tuple[int, int, int],
    device: str = "cpu",
    seeds: tuple[int, ...] = (0, 1),
    arch_lrs: tuple[float, ...] = (3e-4, 3e-2),
    cases: int = 8,
    shape: tuple[int, int, int] = (32, 64, 64),
    loss: str = "dice_ce",
) -> dict:
    """Short DARTS and GDAS searches from each seed; their codes and agreements.

    The default loss is the synthetic demo's Dice + CE: with the paper's CE, networks this
    small learn nothing of the phantom pancreas in a short run (README).
    """
    settings = {
        "iterations": iterations,
        "warmup": warmup,
        "width": width,
        "patch": list(patch),
        "device": device,
        "arch_lrs": list(arch_lrs),
        "loss": loss,
        "dataset": f"synthetic-pancreas, {cases} cases of {'x'.join(map(str, shape))}, fold 0",
    }
    runs = []
    with tempfile.TemporaryDirectory(prefix="vnas-bench-sampling-") as tmp:
        work = Path(tmp)
        study = synthetic_pancreas_study(work, cases, shape, seed=0)
        preprocessed, folds = study["preprocessed"], study["folds"]
        for lr, sampling, seed in itertools.product(arch_lrs, SAMPLINGS, seeds):
            logger.info(
                "bench: %s search, seed %d, alpha/beta lr %g, %d iterations",
                sampling,
                seed,
                lr,
                iterations,
            )
            out = work / f"search-{lr:g}-{sampling}-{seed}"
            runs.append(_search(preprocessed, folds, out, sampling, seed, lr, settings))
    pairs = []
    for a, b in itertools.combinations(runs, 2):
        if a["arch_lr"] != b["arch_lr"]:
            continue
        pairs.append(
            {
                "arch_lr": a["arch_lr"],
                "a": f"{a['sampling']} seed {a['seed']}",
                "b": f"{b['sampling']} seed {b['seed']}",
                "agreeing_cells": code_agreement(a["code"], b["code"]),
            }
        )
    return {"settings": settings, "runs": runs, "agreement": pairs, "cells": CELLS}
