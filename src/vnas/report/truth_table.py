"""Step 1 of EXPERIMENTS.md's "Known answer 2": which cell groups have a known answer.

Per cue, all-2D networks with exactly one group of cells switched to 3D (each encoder
stage ``E1``–``E4``, each decoder block ``D1``–``D5``; ``workflow/rules/experiment2.smk``)
were retrained and evaluated on the same held-out test cases. This module reads their
``metrics.csv`` files and applies the pre-registered rule (H5): group *g* has a known
answer if, under the through-plane cue,

(a) Δ_g = mean over cases of DSC(g in 3D) − DSC(all-2D), paired over the test cases, has
    a 95 % percentile bootstrap interval above 0;
(b) Δ_g exceeds the spread (max − min) of the mean held-out DSC of all-2D networks
    retrained with different training seeds (training noise);
(c) Δ_g(through-plane) − Δ_g(in-plane) has a bootstrap interval above 0, the cases of
    each cue resampled independently.

The bootstrap is written here on numpy (not ``scipy.stats.bootstrap``) so that one
function serves the paired one-sample and the independent two-sample case with the same
resampling code, seeded, and is testable on hand-made inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from vnas.errors import VNASError
from vnas.space.genotype import ENCODER_STAGES, NUM_DECODER_BLOCKS

__all__ = [
    "ABLATION_GROUPS",
    "CONFIDENCE",
    "IN",
    "THROUGH",
    "bootstrap_difference",
    "case_dsc",
    "cue_independent_answers",
    "first_cell",
    "group_code",
    "group_verdicts",
    "summarize_truth_table",
]

CONFIDENCE = 0.95
THROUGH, IN = "through-plane", "in-plane"
#: The switched groups, encoder stages then decoder blocks (deepest first).
ABLATION_GROUPS: tuple[str, ...] = (
    *(f"E{s}" for s in range(1, len(ENCODER_STAGES) + 1)),
    *(f"D{b}" for b in range(1, NUM_DECODER_BLOCKS + 1)),
)


def group_code(group: str) -> tuple[list[int], list[int]]:
    """Encoder and decoder digits of an ablation code: ``2d`` (all 2D), ``3d`` (all 3D)
    or ``3d-<G>`` (all 2D but group ``G`` in 3D)."""
    encoder, decoder = [0] * sum(ENCODER_STAGES), [0] * NUM_DECODER_BLOCKS
    if group == "2d":
        return encoder, decoder
    if group == "3d":
        return [1] * len(encoder), [1] * len(decoder)
    name = group.removeprefix("3d-")
    if name not in ABLATION_GROUPS or not group.startswith("3d-"):
        raise VNASError(f"unknown ablation code {group!r}: 2d, 3d or 3d-<E1..E4|D1..D5>")
    index = int(name[1:])
    if name[0] == "D":
        decoder[index - 1] = 1
    else:
        start = sum(ENCODER_STAGES[: index - 1])
        encoder[start : start + ENCODER_STAGES[index - 1]] = [1] * ENCODER_STAGES[index - 1]
    return encoder, decoder


def first_cell(group: str) -> str:
    """The first cell of a group, in the names of :func:`vnas.search.diagnostics.cell_names`
    (``E3`` → ``E3.1``; a decoder block is one cell)."""
    return f"{group}.1" if group.startswith("E") else group


def bootstrap_difference(
    a: Sequence[float],
    b: Sequence[float] | None = None,
    resamples: int = 2000,
    seed: int = 0,
) -> dict:
    """Mean of ``a`` (or mean(a) − mean(b)) with a 95 % percentile bootstrap interval.

    ``a`` alone: one sample (e.g. paired per-case differences) resampled with
    replacement. With ``b``: two independent samples, each resampled on its own.
    """
    rng = np.random.default_rng(seed)
    x = np.asarray(a, dtype=np.float64)
    y = None if b is None else np.asarray(b, dtype=np.float64)
    if len(x) == 0 or (y is not None and len(y) == 0):
        raise VNASError("bootstrap of an empty sample")
    stats = rng.choice(x, size=(resamples, len(x))).mean(axis=1)
    mean = float(x.mean())
    if y is not None:
        stats = stats - rng.choice(y, size=(resamples, len(y))).mean(axis=1)
        mean -= float(y.mean())
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail])
    return {"mean": mean, "ci": [float(low), float(high)], "n": len(x)}


def case_dsc(path: str | Path) -> pd.Series:
    """Held-out DSC per test case (mean over classes) of one ``metrics.csv``."""
    path = Path(path)
    if not path.is_file():
        raise VNASError("missing evaluation (run Step 1 first)", path)
    frame = pd.read_csv(path)
    if not {"case_id", "dsc"} <= set(frame.columns):
        raise VNASError("metrics.csv needs the columns case_id and dsc", path)
    return frame.groupby("case_id")["dsc"].mean().sort_index()


def _paired(switched: pd.Series, base: pd.Series, where: str) -> np.ndarray:
    if not switched.index.equals(base.index):
        raise VNASError(f"{where}: the evaluations do not hold the same test cases")
    return (switched - base).to_numpy()


def group_verdicts(
    dsc: Mapping[str, Mapping[str, pd.Series]],
    noise: Mapping[str, Sequence[float]],
    groups: Sequence[str],
    resamples: int,
) -> dict:
    """Δ per group and cue, criteria (a)–(c) and whether each group has a known answer.

    Args:
        dsc: per cue, per ablation code (``2d``, ``3d-E1``, …, ``3d``), per-case DSC.
        noise: per cue, the mean held-out DSC of the all-2D training seeds.
        groups: the switched groups to judge (``E1``, …).
        resamples: bootstrap resamples.

    Returns:
        ``{"groups": {g: {...}}, "all_3d": {cue: Δ}, "noise": {cue: spread},
        "known_answers": [...], "h5": bool, "step2_group", "step2_cell"}``.
    """
    spread = {cue: float(np.ptp(values)) for cue, values in noise.items()}
    out: dict = {"groups": {}, "all_3d": {}, "noise": {}}
    for cue, values in noise.items():
        out["noise"][cue] = {"seed_means": [float(v) for v in values], "spread": spread[cue]}
    for cue, codes in dsc.items():
        if "3d" in codes:
            diff = _paired(codes["3d"], codes["2d"], f"{cue} all-3D")
            out["all_3d"][cue] = bootstrap_difference(diff, resamples=resamples)
    known = []
    for group in groups:
        code = f"3d-{group}"
        diffs = {cue: _paired(dsc[cue][code], dsc[cue]["2d"], f"{cue} {code}") for cue in dsc}
        delta = {cue: bootstrap_difference(d, resamples=resamples) for cue, d in diffs.items()}
        record: dict = {"delta": delta}
        if THROUGH in diffs:
            tp = delta[THROUGH]
            record["a_interval_above_0"] = tp["ci"][0] > 0
            record["b_above_noise"] = tp["mean"] > spread.get(THROUGH, np.inf)
            if IN in diffs:
                cue_gap = bootstrap_difference(diffs[THROUGH], diffs[IN], resamples=resamples)
                record["cue_difference"] = cue_gap
                record["c_cue_difference_above_0"] = cue_gap["ci"][0] > 0
            record["known_answer"] = bool(
                record["a_interval_above_0"]
                and record["b_above_noise"]
                and record.get("c_cue_difference_above_0", False)
            )
            if record["known_answer"]:
                known.append(group)
        out["groups"][group] = record
    out["known_answers"] = known
    out["h5"] = bool(known)
    if known:
        top = max(known, key=lambda g: out["groups"][g]["delta"][THROUGH]["mean"])
        out["step2_group"], out["step2_cell"] = top, first_cell(top)
    else:
        out["step2_group"] = out["step2_cell"] = None
    return out


def summarize_truth_table(
    root: str | Path,
    cues: Sequence[str],
    groups: Sequence[str],
    noise_seeds: Sequence[int],
    resamples: int,
    seed_mean: bool = False,
) -> dict:
    """Read ``ROOT/<cue>/ablation/eval/<code>/seed<S>/metrics.csv`` (the layout of
    ``workflow/rules/experiment2.smk``) and judge every group (:func:`group_verdicts`).

    The ablation codes are compared at training seed 0; ``noise_seeds`` are the all-2D
    training seeds whose spread is criterion (b). ``seed_mean`` (amendment A9): all-2D
    and all-3D are each, per test case, the mean DSC over the ``noise_seeds``, so that
    every Δ is taken against the mean of the all-2D trainings rather than one of them.
    """
    root = Path(root)

    def path(cue: str, code: str, seed: int) -> Path:
        return root / cue / "ablation" / "eval" / code / f"seed{seed}" / "metrics.csv"

    def network(cue: str, code: str) -> pd.Series:
        if not (seed_mean and code in ("2d", "3d")):
            return case_dsc(path(cue, code, 0))
        seeds = [case_dsc(path(cue, code, s)) for s in noise_seeds]
        return pd.concat(seeds, axis=1, join="outer").mean(axis=1, skipna=False)

    dsc = {
        cue: {code: network(cue, code) for code in ("2d", "3d", *(f"3d-{g}" for g in groups))}
        for cue in cues
    }
    noise = {cue: [float(case_dsc(path(cue, "2d", s)).mean()) for s in noise_seeds] for cue in cues}
    verdicts = group_verdicts(dsc, noise, groups, resamples)
    means = {
        cue: {code: float(s.mean()) for code, s in codes.items()} for cue, codes in dsc.items()
    }
    return {
        "step": "known_answer2 step 1 (truth table by ablation)",
        "cues": list(cues),
        "groups_tested": list(groups),
        "noise_seeds": list(noise_seeds),
        "reference": "mean of the noise seeds (all-2D, all-3D)" if seed_mean else "seed 0",
        "resamples": resamples,
        "confidence": CONFIDENCE,
        "test_cases": {cue: len(dsc[cue]["2d"]) for cue in cues},
        "mean_dsc": means,
        **verdicts,
    }


def cue_independent_answers(step1: Mapping) -> dict:
    """Amendment A10's rule on a Step-1 record: group *g* has a cue-independent known
    answer ("3D beats 2D") if under **every** cue (a) Δ_g's interval lies above 0 and
    (b) Δ_g exceeds that cue's all-2D seed spread. The cell: the first cell of the
    answered group with the largest through-plane Δ, as Step 2's rule picks it.
    """
    spread = {cue: n["spread"] for cue, n in step1["noise"].items()}
    groups: dict = {}
    for group, g in step1["groups"].items():
        per_cue = {
            cue: {"a": d["ci"][0] > 0, "b": d["mean"] > spread.get(cue, float("inf"))}
            for cue, d in g["delta"].items()
        }
        known = set(per_cue) == set(spread) and all(c["a"] and c["b"] for c in per_cue.values())
        groups[group] = {"cues": per_cue, "known_answer": known}
    known = [g for g, r in groups.items() if r["known_answer"]]
    top = max(known, key=lambda g: step1["groups"][g]["delta"][THROUGH]["mean"], default=None)
    return {
        "step": "known_answer2 amendment A10 (cue-independent known answers)",
        "rule": "under every cue: Delta interval above 0 and Delta above the all-2D seed spread",
        "spread": spread,
        "groups": groups,
        "known_answers": known,
        "step2_group": top,
        "step2_cell": None if top is None else first_cell(top),
    }
