"""The known-answer experiment's results, gathered from its folders into one record.

``vnas experiment summarize`` reads ``results/experiments/<name>/`` as
``workflow/rules/experiment.smk`` lays it out (per cue: ``search/seed*/``, ``random/``,
``models/<method>/``, ``eval/<method>/metrics.csv``; ``benchmarks/*.tsv``) and computes
what EXPERIMENTS.md reports (its hypotheses are stated there):

- per search: the code, its share of 3D/P3D cells (2/3 for a uniformly random code),
  and how decided it ended (:mod:`vnas.search.diagnostics`);
- per cue: the agreement of the searches' codes, with its chance level;
- H1: the difference of the mean 3D/P3D share between the cues, with a one-sided exact
  permutation test over the searches (``scipy.stats.permutation_test``);
- held-out DSC per method and per group (V-NAS: per case, the mean over the seeds'
  architectures; Random: the mean over the random codes; the best manual configuration
  by mean DSC on the test cases themselves), with percentile bootstrap intervals over
  the test cases (``scipy.stats.bootstrap``), and paired differences;
- each job's wall and CPU time, from Snakemake's benchmark files;
- where ``<cue>/probe/probe.json`` exists, the gradient probe (:mod:`vnas.search.probe`).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from vnas.errors import VNASError
from vnas.search.diagnostics import agreement, probs_of_record, summarise_probs
from vnas.space.genotype import Genotype, read_arch_json

__all__ = ["CONFIDENCE", "bootstrap_mean", "job_costs", "share_3d_p3d", "summarize_experiment"]

CONFIDENCE = 0.95
#: Share of 3D or P3D cells in a uniformly random code.
CHANCE_SHARE = 2 / 3


def share_3d_p3d(digits: Sequence[int]) -> float:
    """Share of cells whose op is 3D (1) or P3D (2)."""
    return float(np.mean([d in (1, 2) for d in digits]))


def bootstrap_mean(values: Sequence[float], resamples: int, seed: int = 0) -> dict:
    """Mean and percentile bootstrap interval over the values (cases)."""
    from scipy.stats import bootstrap

    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean())
    if len(x) < 2 or np.ptp(x) == 0:
        return {"mean": mean, "ci": [mean, mean], "n": len(x)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate resamples of tiny smoke-test sets
        result = bootstrap(
            (x,),
            np.mean,
            n_resamples=resamples,
            confidence_level=CONFIDENCE,
            method="percentile",
            random_state=np.random.default_rng(seed),
        )
    ci = result.confidence_interval
    return {"mean": mean, "ci": [float(ci.low), float(ci.high)], "n": len(x)}


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise VNASError("missing (run the experiment first: make experiment)", path)
    return json.loads(path.read_text())


def _search(folder: Path) -> dict:
    record = read_arch_json(folder / "arch.json")
    summary = summarise_probs(probs_of_record(record))
    diagnostics = _read_json(folder / "diagnostics.json")
    genotype = Genotype.parse(record["code"]["encoder"], record["code"]["decoder"])
    digits = list(genotype.digits)
    return {
        "seed": int(folder.name.removeprefix("seed")),
        "code": record["code"],
        "digits": digits,
        "share_3d_p3d": share_3d_p3d(digits),
        "share_encoder": share_3d_p3d(genotype.encoder),
        "share_decoder": share_3d_p3d(genotype.decoder),
        **{
            k: summary[k]
            for k in (
                "decided_cells",
                "near_uniform_cells",
                "n_cells",
                "verdict",
                "prob_min",
                "prob_max",
                "mean_entropy",
            )
        },
        **{k: diagnostics.get(k) for k in ("warmup", "arch_steps", "arch_lr", "arch_lr_rule")},
    }


def _case_dsc(cue_dir: Path, methods: list[str]) -> pd.DataFrame:
    """Held-out DSC, one row per test case, one column per method (mean over classes)."""
    columns = {}
    for method in methods:
        path = cue_dir / "eval" / method / "metrics.csv"
        if not path.is_file():
            raise VNASError("missing evaluation (run the experiment first)", path)
        frame = pd.read_csv(path)
        columns[method] = frame.groupby("case_id")["dsc"].mean()
    return pd.DataFrame(columns).sort_index()


def _manual_name(method: str) -> str:
    return "/".join(p.upper() for p in method.removeprefix("manual-").split("-"))


def _groups(dsc: pd.DataFrame, resamples: int) -> tuple[dict, dict]:
    """Per-case series of the compared groups, their bootstrap means, and the paired
    differences of V-NAS against the others (and of the known answer's manual pair)."""
    vnas = [m for m in dsc if m.startswith("vnas-seed")]
    random = [m for m in dsc if m.startswith("random-")]
    manual = {_manual_name(m): dsc[m] for m in dsc if m.startswith("manual-")}
    series = {"V-NAS": dsc[vnas].mean(axis=1), "Random": dsc[random].mean(axis=1)}
    if "mix" in dsc:
        series["Mix"] = dsc["mix"]
    series |= manual
    best = max(manual, key=lambda name: manual[name].mean()) if manual else None
    groups = {name: bootstrap_mean(values, resamples) for name, values in series.items()}
    diffs = {}
    for other in ("Random", "Mix", best):
        if other in series:
            label = f"V-NAS − {'best manual (' + other + ')' if other == best else other}"
            diffs[label] = bootstrap_mean(series["V-NAS"] - series[other], resamples)
    through = [n for n in ("3D/3D", "P3D/P3D") if n in manual]
    if "2D/2D" in manual and through:
        top = max(through, key=lambda name: manual[name].mean())
        diffs[f"{top} − 2D/2D"] = bootstrap_mean(manual[top] - manual["2D/2D"], resamples)
    for group in groups.values():
        group.pop("n", None)
    return {"groups": groups, "best_manual": best}, diffs


def _ranks(dsc: pd.DataFrame) -> dict:
    """Each V-NAS seed's mean DSC and its rank among the random codes (1 = best)."""
    means = dsc.mean()
    random = means[[m for m in means.index if m.startswith("random-")]]
    return {
        m: {"mean_dsc": float(v), "rank": int(1 + (random > v).sum()), "of": len(random) + 1}
        for m, v in means.items()
        if m.startswith("vnas-seed")
    }


def _settings(cue_dir: Path, search: Path) -> dict:
    """The settings actually used, from the run folders' config.json files."""
    search_config = _read_json(search / "config.json")
    model = next((cue_dir / "models").glob("*/config.json"), None)
    train = _read_json(model)["args"] if model else {}
    args = search_config["args"]
    cases = search_config["cases"]
    diagnostics = _read_json(search / "diagnostics.json")
    preprocessed = _read_json(cue_dir / "preprocessed" / "dataset.json")
    return {
        "cases": {part: len(cases[part]) for part in ("train", "val", "test")},
        "volume_shapes": sorted({tuple(s) for s in preprocessed.get("shapes", {}).values()}),
        "width": args["width"],
        "patch": search_config["patch"],
        "batch_size": args["batch_size"],
        "loss": args["loss"],
        "lr": args["lr"],
        "search_iterations": args["iterations"],
        "warmup": diagnostics.get("warmup"),
        "arch_steps": diagnostics.get("arch_steps"),
        "arch_lr": diagnostics.get("arch_lr"),
        "arch_lr_rule": diagnostics.get("arch_lr_rule"),
        "train_iterations": train.get("iterations"),
        "test_patch": train.get("test_patch"),
        "train_seed": train.get("seed"),
    }


def job_costs(root: Path) -> dict:
    """Wall and CPU seconds of every job (Snakemake benchmark files), and per rule."""
    jobs = []
    for path in sorted((root / "benchmarks").glob("*.tsv")):
        row = pd.read_csv(path, sep="\t").iloc[0]
        jobs.append({"job": path.stem, "rule": path.stem.split("_")[0],
                     "wall_s": float(row["s"]), "cpu_s": float(row["cpu_time"])})  # fmt: skip
    frame = pd.DataFrame(jobs, columns=["job", "rule", "wall_s", "cpu_s"])
    by_rule = frame.groupby("rule", sort=False).agg(
        jobs=("job", "size"), wall_s=("wall_s", "sum"), cpu_s=("cpu_s", "sum"),
        median_wall_s=("wall_s", "median"), median_cpu_s=("cpu_s", "median"),
    )  # fmt: skip
    return {
        "jobs": jobs,
        "by_rule": {r: {k: float(v) for k, v in row.items()} for r, row in by_rule.iterrows()},
        "total": {
            "jobs": len(jobs),
            "wall_s": float(frame["wall_s"].sum()),
            "cpu_s": float(frame["cpu_s"].sum()),
        },
    }


def _h1(cues: dict) -> dict:
    """H1: mean 3D/P3D share, through-plane minus in-plane, one-sided exact permutation test."""
    from scipy.stats import permutation_test

    shares = {cue: [s["share_3d_p3d"] for s in data["searches"]] for cue, data in cues.items()}
    out = {"shares": shares, "mean_share": {c: float(np.mean(v)) for c, v in shares.items()},
           "chance_share": CHANCE_SHARE}  # fmt: skip
    if not {"through-plane", "in-plane"} <= shares.keys():
        return out
    a, b = shares["through-plane"], shares["in-plane"]
    if min(len(a), len(b)) < 2:  # no permutation test on one search per cue
        return out
    result = permutation_test(
        (a, b),
        lambda x, y: np.mean(x) - np.mean(y),
        permutation_type="independent",
        alternative="greater",
        n_resamples=np.inf,  # every split: exact
    )
    return out | {
        "difference": float(np.mean(a) - np.mean(b)),
        "p_value": float(result.pvalue),
        "splits": math.comb(len(a) + len(b), len(a)),
    }


def summarize_experiment(root: str | Path, cues: Sequence[str], resamples: int) -> dict:
    """Everything EXPERIMENTS.md reports, from the experiment folder ``root``."""
    root = Path(root)
    out: dict = {"experiment": root.name, "cues": {}}
    for cue in cues:
        cue_dir = root / cue
        searches = sorted((cue_dir / "search").glob("seed*"), key=lambda p: int(p.name[4:]))
        if not searches:
            raise VNASError("no searches (search/seed*/)", cue_dir)
        runs = [_search(s) for s in searches]
        methods = sorted(p.parent.name for p in (cue_dir / "eval").glob("*/metrics.csv"))
        dsc = _case_dsc(cue_dir, methods)
        groups, diffs = _groups(dsc, resamples)
        samples = _read_json(cue_dir / "random" / "samples.json")
        random_codes = [Genotype.parse(c["encoder"], c["decoder"]) for c in samples["codes"]]
        folds = _read_json(cue_dir / "folds.json")
        test = folds["folds"][0]["test"]
        if sorted(map(str, test)) != sorted(map(str, dsc.index)):
            raise VNASError("the evaluated cases are not fold 0's test cases", cue_dir)
        settings = _settings(cue_dir, searches[0])
        out["cues"][cue] = {
            "settings": settings,
            "searches": runs,
            "agreement": agreement([r["digits"] for r in runs]),
            "random": {
                "seed": samples["seed"],
                "codes": samples["codes"],
                "shares": [share_3d_p3d(g.digits) for g in random_codes],
            },
            "dsc": {
                "cases": [str(c) for c in dsc.index],
                "methods": {m: dsc[m].round(6).tolist() for m in dsc},
            },
            **groups,
            "differences": diffs,
            "vnas_ranks": _ranks(dsc),
            "method_means": {m: float(v) for m, v in dsc.mean().items()},
        }
        probe = cue_dir / "probe" / "probe.json"
        if probe.is_file():  # the investigation (vnas experiment probe)
            out["cues"][cue]["probe"] = _read_json(probe)["probes"]
    out["h1"] = _h1(out["cues"])
    out["costs"] = job_costs(root)
    return out
