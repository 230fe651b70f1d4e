"""Did the search decide anything? Diagnostics of α/β probabilities, pure functions.

A search that ends with every cell's softmax near 1/3 has not chosen an architecture:
its argmax is decided by noise, and two runs of it agree about as often as two random
codes. These functions say how far a search got, from its probabilities alone:

- the **normalised entropy** of each cell, ``H(p) / ln 3``: 1 is uniform (undecided),
  0 is one op with probability 1;
- the **largest probability** of each cell, and the number of cells **decided**: whose
  largest probability is at least :data:`DECIDED_PROB` (0.5, i.e. the chosen op weighs
  at least as much as the other two together);
- the search's **verdict**: *decided* when at least half of the cells are decided
  (:data:`DECIDED_SHARE`), otherwise *undecided* (the rule :func:`rule_text` states);
- the **agreement of the argmax** between searches (folds or seeds): for each pair of
  searches, the share of the 21 cells on which they choose the same op, averaged over
  pairs. Chance is what searches choosing uniformly at random would reach: 1/3 for
  every pair, so the mean pairwise agreement's chance level is 1/3 whatever the number
  of searches k. The share of cells on which all k searches agree has chance level
  (1/3)^(k-1).

Probabilities are arrays whose last axis is the three ops (2D, 3D, P3D) and whose
second-to-last axis is the 21 cells (16 encoder cells, then 5 decoder blocks).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vnas.space.genotype import ENCODER_STAGES, NUM_DECODER_BLOCKS, NUM_OPS, OP_NAMES

__all__ = [
    "CHANCE_PAIRWISE",
    "DECIDED_PROB",
    "DECIDED_SHARE",
    "NEAR_UNIFORM",
    "agreement",
    "cell_names",
    "cross_search_diagnostics",
    "normalised_entropy",
    "probs_of_record",
    "read_cross_diagnostics",
    "read_trajectory",
    "rule_text",
    "search_diagnostics",
    "summarise_probs",
    "verdict_sentence",
]

#: A cell is decided when its largest probability reaches this (its op outweighs the
#: other two together).
DECIDED_PROB = 0.5
#: A search is decided when at least this share of its cells is decided.
DECIDED_SHARE = 0.5
#: A cell is "near uniform" when its largest probability is within this of 1/3.
NEAR_UNIFORM = 0.05
#: Agreement of two uniformly random codes on one cell.
CHANCE_PAIRWISE = 1.0 / NUM_OPS
#: Points kept of a trajectory in ``diagnostics.json`` (the CSV has every logged row).
TRAJECTORY_POINTS = 101


def cell_names() -> list[str]:
    """``E1.1`` … ``E4.3`` (encoder stage.cell), then ``D1`` … ``D5`` (decoder blocks)."""
    names = [f"E{s}.{i + 1}" for s, n in enumerate(ENCODER_STAGES, start=1) for i in range(n)]
    return names + [f"D{b + 1}" for b in range(NUM_DECODER_BLOCKS)]


def rule_text() -> str:
    """The decision rule, in words (tables, report, diagnostics.json)."""
    return (
        f"a cell is decided when its largest softmax probability is at least {DECIDED_PROB:g}; "
        f"a search is decided when at least {DECIDED_SHARE:.0%} of its cells are "
        f"(uniform: 1/3 each; 'near uniform': largest probability below "
        f"1/3 + {NEAR_UNIFORM:g})"
    )


def normalised_entropy(probs: np.ndarray) -> np.ndarray:
    """``H(p) / ln 3`` over the last axis: 1 for uniform, 0 for a one-hot row."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 0.0, 1.0)
    logs = np.log(np.where(p > 0, p, 1.0))  # 0 · log 0 = 0
    return -(p * logs).sum(axis=-1) / math.log(NUM_OPS)


def probs_of_record(record: dict) -> np.ndarray:
    """The (21, 3) probabilities of an arch JSON record: α's rows, then β's."""
    return np.vstack([np.asarray(record["alpha_probs"]), np.asarray(record["beta_probs"])])


def read_trajectory(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A search's ``trajectory.csv`` as ``(iterations (T,), probabilities (T, 21, 3))``."""
    import pandas as pd

    frame = pd.read_csv(path)
    columns = [f"alpha_probs_{c:02d}_{op}" for c in range(16) for op in OP_NAMES]
    columns += [f"beta_probs_{b:02d}_{op}" for b in range(NUM_DECODER_BLOCKS) for op in OP_NAMES]
    probs = frame[columns].to_numpy(dtype=np.float64).reshape(len(frame), -1, NUM_OPS)
    return frame["iteration"].to_numpy(dtype=np.int64), probs


def read_cross_diagnostics(path: str | Path) -> dict:
    """A ``vnas aggregate --diagnostics`` file, checked for what tables and reports use."""
    import json

    from vnas.errors import VNASError

    try:
        record = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise VNASError(
            "search diagnostics not found (`vnas aggregate --diagnostics`)", path
        ) from None
    except (OSError, ValueError) as err:
        raise VNASError(f"not a readable diagnostics JSON ({err})", path) from None
    if not isinstance(record, dict) or not {"verdict", "sentence", "searches"} <= record.keys():
        raise VNASError("not a `vnas aggregate --diagnostics` file (no verdict)", path)
    return record


def summarise_probs(probs: np.ndarray) -> dict:
    """How decided one set of (21, 3) probabilities is.

    Returns:
        ``max_prob``, ``entropy`` (normalised) and ``choice`` per cell;
        ``decided_cells``, ``near_uniform_cells``, ``n_cells``, ``prob_min``,
        ``prob_max``, ``mean_entropy`` and the ``verdict`` (``decided``/``undecided``).
    """
    p = np.asarray(probs, dtype=np.float64)
    largest = p.max(axis=-1)
    decided = int((largest >= DECIDED_PROB).sum())
    n = int(p.shape[0])
    entropy = normalised_entropy(p)
    return {
        "max_prob": largest.round(6).tolist(),
        "entropy": entropy.round(6).tolist(),
        "choice": p.argmax(axis=-1).tolist(),
        "decided_cells": decided,
        "near_uniform_cells": int((largest < CHANCE_PAIRWISE + NEAR_UNIFORM).sum()),
        "n_cells": n,
        "prob_min": round(float(p.min()), 6),
        "prob_max": round(float(p.max()), 6),
        "mean_entropy": round(float(entropy.mean()), 6),
        "verdict": "decided" if decided >= DECIDED_SHARE * n else "undecided",
    }


def agreement(codes: Sequence[Sequence[int]]) -> dict:
    """Agreement of the argmax codes of k ≥ 2 searches, with its chance levels.

    Returns:
        ``k``; ``mean_pairwise`` (share of cells two searches agree on, averaged over
        the k(k-1)/2 pairs) and its chance ``chance_pairwise`` = 1/3; ``all_agree``
        (cells on which every search picks the same op), ``all_agree_share`` and its
        chance ``chance_all_agree`` = (1/3)^(k-1); ``n_cells``; ``per_cell`` (share of
        pairs agreeing, per cell). ``None`` values for k < 2.
    """
    c = np.asarray(codes, dtype=np.int64)
    k, n = c.shape
    if k < 2:
        return {"k": int(k), "n_cells": int(n), "mean_pairwise": None, "per_cell": None,
                "all_agree": None, "all_agree_share": None,
                "chance_pairwise": CHANCE_PAIRWISE, "chance_all_agree": None}  # fmt: skip
    pairs = np.array([c[i] == c[j] for i, j in itertools.combinations(range(k), 2)])
    all_agree = int((c == c[0]).all(axis=0).sum())
    return {
        "k": int(k),
        "n_cells": int(n),
        "mean_pairwise": round(float(pairs.mean()), 6),
        "per_cell": pairs.mean(axis=0).round(6).tolist(),
        "all_agree": all_agree,
        "all_agree_share": round(all_agree / n, 6),
        "chance_pairwise": CHANCE_PAIRWISE,
        "chance_all_agree": CHANCE_PAIRWISE ** (k - 1),
    }


def _thin(n: int, points: int = TRAJECTORY_POINTS) -> np.ndarray:
    """At most ``points`` indices of ``range(n)``, evenly spread, first and last kept."""
    return np.unique(np.linspace(0, n - 1, min(n, points)).round().astype(int)) if n else []


def search_diagnostics(
    iterations: np.ndarray, trajectory: np.ndarray, final: np.ndarray, **facts
) -> dict:
    """The record of one search (its ``diagnostics.json``).

    Args:
        iterations: the logged iterations (T,).
        trajectory: the probabilities at those iterations (T, 21, 3).
        final: the final probabilities (21, 3), as in ``arch.json``.
        facts: settings to record alongside (warm-up, architecture steps, α/β lr).
    """
    keep = _thin(len(iterations))
    entropy = normalised_entropy(trajectory[keep]) if len(keep) else np.zeros((0, 21))
    return {
        "rule": rule_text(),
        "decided_prob": DECIDED_PROB,
        "decided_share": DECIDED_SHARE,
        "cells": cell_names(),
        "ops": list(OP_NAMES),
        **facts,
        "final": summarise_probs(final),
        "trajectory": {
            "iteration": [int(i) for i in np.asarray(iterations)[keep]],
            "mean_entropy": entropy.mean(axis=-1).round(6).tolist(),
            "min_entropy": entropy.min(axis=-1, initial=1.0).round(6).tolist(),
            "decided_cells": [
                int((trajectory[i].max(axis=-1) >= DECIDED_PROB).sum()) for i in keep
            ],
        },
    }


def cross_search_diagnostics(
    records: Sequence[dict], names: Sequence[str], aggregate: np.ndarray | None = None
) -> dict:
    """Diagnostics of several searches (folds or seeds) of one dataset.

    Args:
        records: the searches' arch JSON records.
        names: a name per search (e.g. ``fold0``).
        aggregate: the aggregated (21, 3) probabilities, if any.

    Returns:
        ``searches`` (each search's :func:`summarise_probs` without per-cell lists),
        ``agreement`` (:func:`agreement` of their argmax codes), ``aggregate``, the
        overall ``verdict`` (``decided`` if every search is, ``undecided`` if none is,
        else ``mixed``), the ``rule`` and a ``sentence`` for tables and reports.
    """
    searches = []
    for name, record in zip(names, records, strict=True):
        summary = summarise_probs(probs_of_record(record))
        searches.append(
            {"name": name, **{k: v for k, v in summary.items() if k not in ("max_prob", "entropy")}}
        )
    verdicts = {s["verdict"] for s in searches}
    verdict = verdicts.pop() if len(verdicts) == 1 else "mixed"
    result = {
        "rule": rule_text(),
        "decided_prob": DECIDED_PROB,
        "decided_share": DECIDED_SHARE,
        "cells": cell_names(),
        "searches": searches,
        "agreement": agreement([s["choice"] for s in searches]),
        "aggregate": None if aggregate is None else summarise_probs(aggregate),
        "verdict": verdict,
    }
    result["sentence"] = verdict_sentence(result)
    return result


def verdict_sentence(diagnostics: dict) -> str:
    """One paragraph: decided or not (with the rule), the range reached, the agreement."""
    searches = diagnostics["searches"]
    n = searches[0]["n_cells"]
    what = {"decided": "decided", "undecided": "undecided", "mixed": "partly decided"}
    per = ", ".join(f"{s['name']} {s['decided_cells']}" for s in searches)
    lo = min(s["prob_min"] for s in searches)
    hi = max(s["prob_max"] for s in searches)
    text = (
        f"The search ended {what[diagnostics['verdict']]} (a search is decided when at least "
        f"{math.ceil(DECIDED_SHARE * n)} of its {n} cells have a largest probability of at "
        f"least {DECIDED_PROB:g}); decided cells: {per}. Final probabilities range from "
        f"{lo:.3f} to {hi:.3f} (uniform: 0.333)."
    )
    agree = diagnostics["agreement"]
    if agree["mean_pairwise"] is not None:
        k = agree["k"]
        pairs = f"{agree['mean_pairwise'] * n:.1f} of {n} cells on average over pairs"
        chance = f"chance {CHANCE_PAIRWISE * n:.0f}"
        if k == 2:
            same = agree["all_agree"]
            text += f" The 2 searches choose the same op on {same} of {n} cells ({chance})."
        else:
            text += (
                f" The {k} searches' choices agree on {pairs} ({chance}); all {k} agree on "
                f"{agree['all_agree']} (chance {agree['chance_all_agree'] * n:.1f})."
            )
    return text
