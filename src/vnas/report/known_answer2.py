"""Steps 2 and 3 of EXPERIMENTS.md's "Known answer 2": H6–H9 from the result files.

The hypotheses and their decision rules are stated (and were committed) in EXPERIMENTS.md
before any search ran; this module applies them:

- **H6** (one mixed cell): per selection method, supported if at least 4 of the 5
  through-plane seeds choose 3D/P3D and the through-plane count beats the in-plane one
  by a one-sided Fisher exact test, p < 0.05 (a PT "no answer" counts as not choosing
  3D/P3D, amendment A4).
- **H7** (the answer is found): on the cells of the groups with a known answer, the
  share of 3D/P3D per search is higher under the through-plane cue, one-sided exact
  permutation test over the splits of the searches, p < 0.05; per method.
- **H8** (the runs agree): on the same cells, the mean pairwise agreement of the seeds'
  codes exceeds the 95th percentile of that of as many uniformly random codes.
- **H9** (held-out DSC): a two-level bootstrap that resamples architectures (search
  seeds, random codes) and then test cases; V-NAS-PT (resp. V-NAS) beats Random under
  the through-plane cue if the interval of the difference lies above 0.

The layout read is ``workflow/rules/experiment2.smk``'s.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from vnas.errors import VNASError
from vnas.report.truth_table import CONFIDENCE, IN, THROUGH, case_dsc, group_code
from vnas.search.diagnostics import cell_names
from vnas.space.genotype import Genotype, read_arch_json

__all__ = [
    "A10_NEED",
    "ALPHA",
    "a10_verdict",
    "fisher_greater",
    "group_cells",
    "h6_verdict",
    "h7_verdict",
    "h8_verdict",
    "summarize_a10",
    "summarize_full_search",
    "summarize_one_mixed_cell",
    "two_level_bootstrap",
]

ALPHA = 0.05
METHODS = ("argmax", "perturbation")
#: Amendment A10: the share of the searches (both cues pooled) that must choose 3D/P3D.
A10_NEED = 0.8
#: The chance of choosing 3D/P3D for a selection that ignores the answer (1 op of 3 is 2D).
A10_CHANCE = 2 / 3


def group_cells(groups: Sequence[str]) -> list[int]:
    """Cell indices (0–20) of the given ablation groups (``E1`` … ``D5``)."""
    cells = set()
    for group in groups:
        encoder, decoder = group_code(f"3d-{group}")
        cells |= {i for i, d in enumerate(encoder + decoder) if d == 1}
    return sorted(cells)


def fisher_greater(through: int, inside: int, n_through: int, n_in: int) -> float:
    """One-sided Fisher exact p that the through-plane count is the higher one."""
    from scipy.stats import fisher_exact

    table = [[through, n_through - through], [inside, n_in - inside]]
    return float(fisher_exact(table, alternative="greater").pvalue)


def h6_verdict(choices: Mapping[str, Sequence[bool]]) -> dict:
    """H6 for one method from ``{cue: [chose 3D/P3D, per seed]}``."""
    tp, ip = list(choices[THROUGH]), list(choices[IN])
    p = fisher_greater(sum(tp), sum(ip), len(tp), len(ip))
    need = len(tp) - 1  # 4 of 5
    return {
        "through_plane": int(sum(tp)),
        "in_plane": int(sum(ip)),
        "seeds": {THROUGH: len(tp), IN: len(ip)},
        "fisher_p": p,
        "supported": bool(sum(tp) >= need and p < ALPHA),
    }


def h7_verdict(shares: Mapping[str, Sequence[float]]) -> dict:
    """H7 for one method from ``{cue: [3D/P3D share on the known-answer cells, per
    search]}``: one-sided exact permutation test of the difference of means."""
    from scipy.stats import permutation_test

    a, b = np.asarray(shares[THROUGH], float), np.asarray(shares[IN], float)
    result = permutation_test(
        (a, b),
        lambda x, y: np.mean(x) - np.mean(y),
        permutation_type="independent",
        alternative="greater",
        n_resamples=np.inf,
    )
    return {
        "shares": {THROUGH: a.tolist(), IN: b.tolist()},
        "mean_share": {THROUGH: float(a.mean()), IN: float(b.mean())},
        "difference": float(a.mean() - b.mean()),
        "p_value": float(result.pvalue),
        "supported": bool(result.pvalue < ALPHA),
    }


def _mean_pairwise(codes: np.ndarray) -> np.ndarray:
    """Mean pairwise share of agreeing cells of ``(..., k, n)`` codes."""
    k = codes.shape[-2]
    pairs = [
        (codes[..., i, :] == codes[..., j, :]).mean(-1)
        for i, j in itertools.combinations(range(k), 2)
    ]
    return np.mean(pairs, axis=0)


def h8_verdict(codes: Sequence[Sequence[int]], draws: int = 10_000, seed: int = 0) -> dict:
    """H8 for one method and cue: the codes' (restricted to the known-answer cells) mean
    pairwise agreement against that of as many uniformly random codes."""
    c = np.asarray(codes, dtype=np.int64)
    observed = float(_mean_pairwise(c))
    rng = np.random.default_rng(seed)
    null = _mean_pairwise(rng.integers(0, 3, size=(draws, *c.shape)))
    p95 = float(np.percentile(null, 95))
    return {
        "agreement": observed,
        "random_p95": p95,
        "random_mean": float(null.mean()),
        "draws": draws,
        "supported": bool(observed > p95),
    }


def two_level_bootstrap(
    a: np.ndarray, b: np.ndarray | None = None, resamples: int = 2000, seed: int = 0
) -> dict:
    """Mean DSC of ``a`` (architectures × cases), or mean(a) − mean(b), with a 95 %
    percentile interval that resamples architectures (each method on its own) and then
    the test cases (the same drawn cases for both)."""
    rng = np.random.default_rng(seed)
    a = np.atleast_2d(np.asarray(a, float))
    b = None if b is None else np.atleast_2d(np.asarray(b, float))
    n_cases = a.shape[1]
    if b is not None and b.shape[1] != n_cases:
        raise VNASError("two-level bootstrap: the methods hold different test cases")
    stats = np.empty(resamples)
    for r in range(resamples):
        cases = rng.integers(0, n_cases, n_cases)
        value = a[rng.integers(0, len(a), len(a))][:, cases].mean()
        if b is not None:
            value -= b[rng.integers(0, len(b), len(b))][:, cases].mean()
        stats[r] = value
    mean = float(a.mean() - (0.0 if b is None else b.mean()))
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail])
    return {
        "mean": mean,
        "ci": [float(low), float(high)],
        "architectures": len(a) if b is None else [len(a), len(b)],
    }


def _read(path: Path) -> dict:
    if not path.is_file():
        raise VNASError("missing (run that step of the experiment first)", path)
    return json.loads(path.read_text())


def _codes(folder: Path) -> dict[str, list[int]]:
    """A search's argmax and perturbation codes (21 digits each) and PT's answers."""
    record = read_arch_json(folder / "arch.json")
    argmax = Genotype.parse(record["code"]["encoder"], record["code"]["decoder"]).digits
    pt = _read(folder / "perturbation.json")
    return {
        "argmax": list(argmax),
        "perturbation": list(pt["chosen"]),
        "answered": [bool(a) for a in pt["answered"]],
    }


def _mixed_choices(
    root: str | Path, cues: Sequence[str], seeds: Sequence[int], cell: str, folder: str
) -> dict:
    """``{method: {cue: [op digit per seed]}}`` at the mixed cell; PT's "no answer" is
    ``None``."""
    index = cell_names().index(cell)
    runs = {cue: [_codes(Path(root) / cue / folder / f"seed{s}") for s in seeds] for cue in cues}
    return {
        "argmax": {cue: [r["argmax"][index] for r in rs] for cue, rs in runs.items()},
        "perturbation": {
            cue: [r["perturbation"][index] if r["answered"][index] else None for r in rs]
            for cue, rs in runs.items()
        },
    }


def summarize_one_mixed_cell(
    root: str | Path, cues: Sequence[str], seeds: Sequence[int], step1: Mapping
) -> dict:
    """Step 2: per cue and seed the op argmax and PT chose at the mixed cell; H6."""
    cell = step1.get("step2_cell")
    if cell is None:
        raise VNASError("Step 1 found no group with a known answer: Step 2 is not run")
    chosen = _mixed_choices(root, cues, seeds, cell, "mixed")
    h6 = {
        m: h6_verdict({cue: [d in (1, 2) for d in ops] for cue, ops in chosen[m].items()})
        for m in METHODS
    }
    unanswered = {cue: sum(d is None for d in ops) for cue, ops in chosen["perturbation"].items()}
    return {
        "step": "known_answer2 step 2 (one mixed cell)",
        "cell": cell,
        "seeds": list(seeds),
        "chosen": chosen,
        "pt_unanswered": unanswered,
        "h6": h6,
    }


def a10_verdict(ops: Mapping[str, Sequence[int | None]]) -> dict:
    """Amendment A10 for one method from ``{cue: [op digit per seed, None = PT's "no
    answer"]}``: supported if at least :data:`A10_NEED` of all the searches choose 3D or
    P3D (``None`` counts as not); ``chance_p``: the probability of at least that many
    for a selection that picks 3D/P3D with probability 2/3 (the answer ignored)."""
    from scipy.stats import binom

    not_2d = {cue: sum(d in (1, 2) for d in v) for cue, v in ops.items()}
    searches = sum(len(v) for v in ops.values())
    hits, need = sum(not_2d.values()), math.ceil(A10_NEED * searches)
    return {
        "not_2d": not_2d,
        "three_d": {cue: sum(d == 1 for d in v) for cue, v in ops.items()},
        "unanswered": {cue: sum(d is None for d in v) for cue, v in ops.items()},
        "searches": searches,
        "hits": hits,
        "need": need,
        "chance_p": float(binom.sf(hits - 1, searches, A10_CHANCE)),
        "supported": hits >= need,
    }


def _paired_methods(chosen: Mapping[str, Mapping[str, Sequence[int | None]]]) -> dict:
    """Argmax against PT on the same searches: how many times only one of them chose
    3D/P3D, with the exact two-sided sign test on those discordant searches."""
    from scipy.stats import binomtest

    pairs = [
        (a in (1, 2), p in (1, 2))
        for cue in chosen["argmax"]
        for a, p in zip(chosen["argmax"][cue], chosen["perturbation"][cue], strict=True)
    ]
    only_pt = sum(p and not a for a, p in pairs)
    only_argmax = sum(a and not p for a, p in pairs)
    n = only_pt + only_argmax
    return {
        "only_perturbation": only_pt,
        "only_argmax": only_argmax,
        "sign_test_p": float(binomtest(only_pt, n, 0.5).pvalue) if n else 1.0,
    }


def summarize_a10(
    root: str | Path, cues: Sequence[str], seeds: Sequence[int], answers: Mapping
) -> dict:
    """Amendment A10: the one-mixed-cell searches (folder ``mixed-a10``) at the cell of
    the cue-independent known answer (``answers``: :func:`~vnas.report.truth_table.
    cue_independent_answers`), read by argmax and by PT, side by side."""
    cell = answers.get("step2_cell")
    if cell is None:
        raise VNASError("no group has a cue-independent known answer: A10's searches not run")
    chosen = _mixed_choices(root, cues, seeds, cell, "mixed-a10")
    index = cell_names().index(cell)
    keys = ("best", "second", "t_best_vs_second", "removed", "alone")

    def cell_scores(cue: str, seed: int) -> dict:
        record = _read(Path(root) / cue / "mixed-a10" / f"seed{seed}" / "perturbation.json")
        return {k: record["scores"][index][k] for k in keys}

    scores = {cue: [cell_scores(cue, s) for s in seeds] for cue in cues}
    return {
        "step": "known_answer2 amendment A10 (one mixed cell, cue-independent answer)",
        "cell": cell,
        "group": answers["step2_group"],
        "seeds": list(seeds),
        "chosen": chosen,
        "verdicts": {m: a10_verdict(chosen[m]) for m in METHODS},
        "paired": _paired_methods(chosen),
        "pt_scores": scores,
        "costs": _search_costs(Path(root), "mixed-a10"),
    }


def _search_costs(root: Path, rule: str) -> dict:
    """CPU seconds of one rule's jobs (Snakemake benchmark files under ``root``)."""
    from vnas.report.experiment_summary import job_costs

    row = job_costs(root)["by_rule"].get(rule, {"jobs": 0, "cpu_s": 0.0})
    return {"jobs": int(row["jobs"]), "cpu_s": float(row["cpu_s"])}


def _dsc_matrix(paths: Sequence[Path]) -> tuple[np.ndarray, pd.Index]:
    series = [case_dsc(p) for p in paths]
    index = series[0].index
    if any(not s.index.equals(index) for s in series):
        raise VNASError(f"{paths[0].parent.parent}: evaluations of different test cases")
    return np.stack([s.to_numpy() for s in series]), index


def _best_manual(root: Path, cue: str, step1: Mapping) -> tuple[str, Path]:
    means = step1["mean_dsc"][cue]
    code = max(means, key=means.get)
    return code, root / cue / "ablation" / "eval" / code / "seed0" / "metrics.csv"


def summarize_full_search(
    root: str | Path,
    cues: Sequence[str],
    seeds: Sequence[int],
    random_samples: int,
    step1: Mapping,
    resamples: int,
    hygiene: bool = False,
) -> dict:
    """Step 3: H7 and H8 per selection method on the known-answer cells, and H9's
    held-out DSC with architecture-resampled intervals; with ``hygiene``, the exploratory
    comparison of how decided the searches ended with and without the hygiene options
    (:func:`hygiene_comparison`)."""
    root = Path(root)
    cells = group_cells(step1["known_answers"])
    if not cells:
        raise VNASError("Step 1 found no group with a known answer: Step 3 is not run")
    runs = {
        cue: [_codes(root / cue / "step3" / "search" / f"seed{s}") for s in seeds] for cue in cues
    }
    names = cell_names()
    out: dict = {
        "step": "known_answer2 step 3 (full search)",
        "cells": [names[c] for c in cells],
        "seeds": list(seeds),
        "codes": runs,
        "h7": {},
        "h8": {},
    }
    for method in METHODS:
        on_cells = {cue: [[r[method][c] for c in cells] for r in rs] for cue, rs in runs.items()}
        shares = {
            cue: [float(np.mean([d in (1, 2) for d in code])) for code in codes]
            for cue, codes in on_cells.items()
        }
        out["h7"][method] = h7_verdict(shares)
        out["h8"][method] = {cue: h8_verdict(codes) for cue, codes in on_cells.items()}
    out["pt_answered"] = {
        cue: [sum(r["answered"][c] for c in cells) for r in rs] for cue, rs in runs.items()
    }
    out["h9"] = {cue: _h9(root / cue, seeds, random_samples, step1, resamples) for cue in cues}
    tp = out["h9"].get(THROUGH, {}).get("differences", {})
    if hygiene:
        out["hygiene"] = {cue: hygiene_comparison(root / cue, seeds) for cue in cues}
    tested = ("V-NAS-PT − Random", "V-NAS − Random")
    out["h9_supported"] = {name: bool(tp[name]["ci"][0] > 0) for name in tested if name in tp}
    return out


def hygiene_comparison(cue_dir: Path, seeds: Sequence[int]) -> dict:
    """Per search seed: decided cells and the mean α/β weight-decay share of the paper's
    settings (``step3/search``) and of the hygiene re-run (``hygiene``; exploratory)."""
    out = {}
    for name, folder in (("paper", "step3/search"), ("hygiene", "hygiene")):
        records = [_read(cue_dir / folder / f"seed{s}" / "diagnostics.json") for s in seeds]
        out[name] = {
            "decided_cells": [r["final"]["decided_cells"] for r in records],
            "mean_decay_share": [
                float(np.mean(r["arch_gradient"]["decay_share"])) for r in records
            ],
        }
    return out


def _h9(
    cue_dir: Path, seeds: Sequence[int], random_samples: int, step1: Mapping, resamples: int
) -> dict:
    evals = cue_dir / "step3" / "eval"
    groups = {
        "V-NAS": [evals / f"vnas-seed{s}" / "metrics.csv" for s in seeds],
        "V-NAS-PT": [evals / f"vnas-pt-seed{s}" / "metrics.csv" for s in seeds],
        "Random": [evals / f"random-{k}" / "metrics.csv" for k in range(random_samples)],
        "Mix": [evals / "mix" / "metrics.csv"],
    }
    best, path = _best_manual(cue_dir.parent, cue_dir.name, step1)
    groups["best manual"] = [path]
    matrices = {name: _dsc_matrix(paths) for name, paths in groups.items()}
    index = matrices["V-NAS"][1]
    if any(not m[1].equals(index) for m in matrices.values()):
        raise VNASError(f"{cue_dir}: the methods were evaluated on different test cases")
    dsc = {name: m[0] for name, m in matrices.items()}
    pairs = [
        ("V-NAS-PT", "Random"),
        ("V-NAS", "Random"),
        ("V-NAS-PT", "V-NAS"),
        ("V-NAS-PT", "Mix"),
        ("V-NAS", "Mix"),
        ("V-NAS-PT", "best manual"),
        ("V-NAS", "best manual"),
    ]
    return {
        "best_manual": best,
        "methods": {n: two_level_bootstrap(m, resamples=resamples) for n, m in dsc.items()},
        "differences": {
            f"{a} − {b}": two_level_bootstrap(dsc[a], dsc[b], resamples) for a, b in pairs
        },
    }
