"""The verdict of perturbation-based selection, from its per-patch scores (no torch).

:mod:`vnas.search.perturbation` measures the scores on a supernet; this module turns
them into a choice per cell, pools folds and summarises, so that ``vnas aggregate`` and
the report read a selection without importing torch (the light commands start in a
fraction of a second).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from vnas.search.diagnostics import cell_names
from vnas.space.genotype import NUM_DECODER_BLOCKS, NUM_ENCODER_CELLS, OP_NAMES, Genotype

__all__ = [
    "NO_ANSWER",
    "NUM_CELLS",
    "PERTURBATION_JSON",
    "paired_t",
    "perturbation_summary",
    "pool_scores",
    "selection_record",
    "verdict",
]

NUM_CELLS = NUM_ENCODER_CELLS + NUM_DECODER_BLOCKS
#: ``chosen`` of a cell without an answer is its fallback op; this marks the verdict.
NO_ANSWER = "no answer"
#: A search folder's perturbation scores (written by ``vnas search --pt-patches``).
PERTURBATION_JSON = "perturbation.json"


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


def verdict(scores: np.ndarray, fallback: int, t_threshold: float, min_delta: float) -> dict:
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
        record = verdict(scores, int(fallback[cell]), t_threshold, min_delta)
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
