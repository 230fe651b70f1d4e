"""Training stability (EXPERIMENTS.md, Known answer 2, amendment A9): do the training
seeds of one network agree under a candidate's training settings?

Per candidate and network, each training seed's mean held-out DSC, their spread
(max − min) and the seeds that collapsed; a candidate is accepted if, for every network,
the spread is at most ``max_spread`` and no seed collapsed. The first accepted candidate,
in the order given, is the decision. The rule was written before the runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from vnas.errors import VNASError
from vnas.report.truth_table import case_dsc

#: A seed collapsed if its mean held-out DSC is below this ...
COLLAPSED_DSC = 0.05
#: ... or if it predicts no target voxel on more than this share of the test cases.
EMPTY_SHARE = 0.5


def seed_record(metrics: str | Path) -> dict:
    """Mean held-out DSC of one evaluation, its cases without a predicted target voxel,
    and whether the seed collapsed (A9's rule)."""
    dsc = case_dsc(metrics)
    frame = pd.read_csv(metrics)
    if "pred_voxels" not in frame.columns:
        raise VNASError("metrics.csv needs the column pred_voxels", metrics)
    empty = int((frame.groupby("case_id")["pred_voxels"].sum() == 0).sum())
    mean = float(dsc.mean())
    return {
        "mean_dsc": mean,
        "test_cases": len(dsc),
        "empty_cases": empty,
        "collapsed": mean < COLLAPSED_DSC or empty > EMPTY_SHARE * len(dsc),
    }


def network_record(seeds: Mapping[int, Mapping]) -> dict:
    """Per-seed records of one network, their spread and the collapsed seeds."""
    means = [s["mean_dsc"] for s in seeds.values()]
    return {
        "seeds": {str(k): dict(v) for k, v in seeds.items()},
        "seed_means": means,
        "spread": max(means) - min(means),
        "collapsed_seeds": [k for k, v in seeds.items() if v["collapsed"]],
    }


def judge(networks: Mapping[str, Mapping], max_spread: float) -> bool:
    """A9's acceptance: every network's spread ≤ ``max_spread`` and no seed collapsed."""
    return all(n["spread"] <= max_spread and not n["collapsed_seeds"] for n in networks.values())


def summarize_stability(
    root: str | Path,
    cue: str,
    candidates: Sequence[str],
    codes: Sequence[str],
    seeds: Sequence[int],
    max_spread: float,
    baseline: Mapping | None = None,
) -> dict:
    """Read ``root/<candidate>/<cue>/eval/<code>/seed<S>/metrics.csv`` and judge each
    candidate in order.

    Args:
        baseline: Step 1's ``truth-table`` JSON: C0 (today's training), reported from its
            all-2D seeds (A9: not re-run) and judged on them alone.
    """
    root = Path(root)
    out: dict = {"cue": cue, "codes": list(codes), "training_seeds": list(seeds),
                 "max_spread": max_spread, "collapse_rule": {"mean_dsc_below": COLLAPSED_DSC,
                 "empty_share_above": EMPTY_SHARE}, "candidates": {}}  # fmt: skip
    if baseline is not None:
        means = baseline["noise"][cue]["seed_means"]
        c0 = {"seed_means": means, "spread": max(means) - min(means)}
        out["C0"] = {"networks": {"2d": c0}, "from": "Step 1 (truth-table JSON)",
                     "accepted": c0["spread"] <= max_spread}  # fmt: skip
    for cand in candidates:
        networks = {
            code: network_record(
                {
                    s: seed_record(root / cand / cue / "eval" / code / f"seed{s}" / "metrics.csv")
                    for s in seeds
                }
            )
            for code in codes
        }
        out["candidates"][cand] = {"networks": networks, "accepted": judge(networks, max_spread)}
    accepted = [c for c, r in out["candidates"].items() if r["accepted"]]
    out["decision"] = accepted[0] if accepted else None
    return out


def stability_markdown(summary: Mapping, source: str) -> list[str]:
    """The A9 block of EXPERIMENTS.md from :func:`summarize_stability`'s JSON."""
    seeds = ", ".join(map(str, summary["training_seeds"]))
    lines = [
        f"Written by `vnas experiment report2` from `{source}`.",
        "",
        f"Mean held-out DSC (20 test cases, {summary['cue']} cue) per training seed "
        f"({seeds}); accepted if the spread is ≤ {summary['max_spread']:g} for every network "
        "and no seed collapsed:",
        "",
        "| candidate | network | seed means | spread | collapsed seeds | accepted |",
        "|---|---|---|---|---|---|",
    ]
    rows = dict(summary["candidates"])
    if "C0" in summary:
        rows = {"C0": summary["C0"], **rows}
    for cand, record in rows.items():
        for code, net in record["networks"].items():
            means = ", ".join(f"{m:.3f}" for m in net["seed_means"])
            collapsed = ", ".join(map(str, net.get("collapsed_seeds", []))) or "none"
            if cand == "C0":
                collapsed = "(not judged)"
            lines.append(f"| {cand} | {code} | {means} | {net['spread']:.3f} | {collapsed} | "
                         f"{'yes' if record['accepted'] else 'no'} |")  # fmt: skip
    decision = summary["decision"]
    lines += ["", f"**Decision: {decision}**" if decision else "**Decision: none accepted**"]
    costs = summary.get("costs")
    if costs:
        lines += ["", f"Cost (Snakemake benchmark files, `cpu_time`): {costs['jobs']} jobs, "
                  f"{costs['cpu_s']:,.0f} CPU s."]  # fmt: skip
    return lines
