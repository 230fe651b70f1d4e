"""Result tables laid out like the V-NAS paper's Tables 1-5.

Input is the per-case metrics CSV that ``vnas evaluate`` writes for each method and
fold (columns ``case_id, class, class_name, dsc, nsd, hd95``). Statistics are over all
test cases of all folds, as in the paper. DSC and NSD are shown in %, HD95 in mm.

Beyond the paper:

- a **Random (n=N)** row (:func:`random_row`): N architectures drawn uniformly from the
  search space, each retrained and evaluated like V-NAS. Its statistics are over the N
  architectures, of each one's mean over all test cases: mean ± std, and the best (max),
  worst (min) and median architecture;
- **V-NAS's rank among the random architectures**, per fold and class
  (:func:`rank_among_random`);
- whether the **search was decided** (:mod:`vnas.search_diagnostics`): next to the
  V-NAS row and in the notes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vnas.errors import VNASError

METRIC_COLUMNS = ("dsc", "nsd", "hd95")


@dataclass(frozen=True)
class Method:
    """One table row: a method id (folder name), its display name and category."""

    id: str
    name: str
    category: str


def read_method_metrics(eval_root: str | Path, method: Method, folds: int) -> pd.DataFrame:
    """Concatenate the per-case metrics of ``method`` over all folds.

    Raises:
        VNASError: a fold's ``metrics.csv`` is missing or lacks a needed column.
    """
    frames = []
    for fold in range(folds):
        path = Path(eval_root) / method.id / f"fold{fold}" / "metrics.csv"
        if not path.is_file():
            raise VNASError("missing evaluation metrics (run `vnas evaluate` first)", path)
        frame = pd.read_csv(path)
        missing = {"case_id", "class_name", *METRIC_COLUMNS} - set(frame.columns)
        if missing:
            raise VNASError(f"metrics file lacks columns {sorted(missing)}", path)
        frames.append(frame.assign(fold=fold))
    return pd.concat(frames, ignore_index=True)


def summarise(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per class: mean, std, max, min and median of each metric, and the case count.

    NaN values (MONAI's result for an undefined distance, e.g. an empty prediction) are
    left out of the HD95 statistics; ``hd95_n`` says how many cases remain.
    """
    rows = []
    for class_name, group in metrics.groupby("class_name", sort=False):
        row: dict[str, float | str | int] = {"class": class_name, "n_cases": len(group)}
        for metric in METRIC_COLUMNS:
            values = group[metric].astype(float).replace([np.inf, -np.inf], np.nan).dropna()
            scale = 100.0 if metric != "hd95" else 1.0
            row[f"{metric}_mean"] = values.mean() * scale
            row[f"{metric}_std"] = values.std(ddof=0) * scale
            row[f"{metric}_max"] = values.max() * scale
            row[f"{metric}_min"] = values.min() * scale
            row[f"{metric}_median"] = values.median() * scale
            row[f"{metric}_n"] = len(values)
        rows.append(row)
    return pd.DataFrame(rows)


def method_table(eval_root: str | Path, methods: list[Method], folds: int) -> pd.DataFrame:
    """The long-form table: one row per method and foreground class."""
    parts = []
    for method in methods:
        summary = summarise(read_method_metrics(eval_root, method, folds))
        summary.insert(0, "category", method.category)
        summary.insert(0, "method", method.name)
        summary.insert(0, "method_id", method.id)
        parts.append(summary)
    return pd.concat(parts, ignore_index=True)


def per_method_means(
    eval_root: str | Path, ids: list[str], folds: int, by_fold: bool = False
) -> pd.DataFrame:
    """Mean of each metric per method id and class (and fold), over the test cases."""
    keys = ["class_name", "fold"] if by_fold else ["class_name"]
    frames = []
    for method_id in ids:
        metrics = read_method_metrics(eval_root, Method(method_id, method_id, ""), folds)
        values = metrics[[*keys, *METRIC_COLUMNS]].replace([np.inf, -np.inf], np.nan)
        means = values.groupby(keys, sort=False).mean().reset_index()
        counts = metrics.groupby(keys, sort=False).size().rename("n_cases").reset_index()
        frames.append(means.merge(counts, on=keys).assign(method_id=method_id))
    return pd.concat(frames, ignore_index=True)


def random_row(eval_root: str | Path, ids: list[str], folds: int) -> pd.DataFrame:
    """The "Random (n=N)" rows, one per class, in :func:`method_table`'s columns.

    Statistics are over the N random architectures (``ids``), of each one's mean over all
    test cases of all folds; ``n_cases`` is the number of test cases of each.
    """
    means = per_method_means(eval_root, ids, folds)
    rows = []
    for class_name, group in means.groupby("class_name", sort=False):
        row: dict[str, float | str | int] = {
            "method_id": "random",
            "method": f"Random (n={len(ids)})",
            "category": "Random",
            "class": class_name,
            "n_cases": int(group["n_cases"].iloc[0]),
        }
        for metric in METRIC_COLUMNS:
            values = group[metric].astype(float).dropna()
            scale = 100.0 if metric != "hd95" else 1.0
            for stat, value in (("mean", values.mean()), ("std", values.std(ddof=0)),
                                ("max", values.max()), ("min", values.min()),
                                ("median", values.median())):  # fmt: skip
                row[f"{metric}_{stat}"] = value * scale
            row[f"{metric}_n"] = len(values)
        rows.append(row)
    return pd.DataFrame(rows)


def rank_among_random(
    eval_root: str | Path, vnas_id: str, random_ids: list[str], folds: int
) -> pd.DataFrame:
    """V-NAS's rank among the random architectures, per class and fold, by mean DSC.

    Returns:
        Columns ``class``, ``fold``, ``vnas`` (V-NAS's mean DSC, %), ``random_min``,
        ``random_median``, ``random_max`` (the random architectures', %), ``rank``
        (1 + the number of random architectures with a strictly higher mean DSC) and
        ``of`` (N + 1).
    """
    means = per_method_means(eval_root, [vnas_id, *random_ids], folds, by_fold=True)
    rows = []
    for (class_name, fold), group in means.groupby(["class_name", "fold"], sort=False):
        dsc = group.set_index("method_id")["dsc"] * 100.0
        others = dsc.drop(vnas_id)
        rows.append({
            "class": class_name, "fold": int(fold), "vnas": dsc[vnas_id],
            "random_min": others.min(), "random_median": others.median(),
            "random_max": others.max(), "rank": int(1 + (others > dsc[vnas_id]).sum()),
            "of": len(random_ids) + 1,
        })  # fmt: skip
    return pd.DataFrame(rows)


def insert_after_search(table: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """``table`` with ``rows`` right after its V-NAS (category Search) rows, else at the end."""
    search = table.index[table["category"] == "Search"]
    cut = search.max() + 1 if len(search) else len(table)
    return pd.concat([table.iloc[:cut], rows, table.iloc[cut:]], ignore_index=True)


def _pm(mean: float, std: float, digits: int = 2) -> str:
    return "n/a" if np.isnan(mean) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _num(value: float, digits: int = 2) -> str:
    return "n/a" if np.isnan(value) else f"{value:.{digits}f}"


def to_markdown(
    table: pd.DataFrame,
    title: str,
    search: dict | None = None,
    ranks: pd.DataFrame | None = None,
) -> str:
    """Render like the paper: a block per class, DSC/NSD in %, HD95 in mm.

    Args:
        table: :func:`method_table` (with :func:`random_row` rows, if any).
        title: the heading.
        search: the searches' diagnostics (``vnas aggregate --diagnostics``): the V-NAS
            row's category says whether the search was decided, and a note says more.
        ranks: :func:`rank_among_random`, shown per class.
    """
    lines = [f"# {title}", ""]
    verdict = {"decided": "decided", "undecided": "undecided", "mixed": "partly decided"}
    for class_name, group in table.groupby("class", sort=False):
        lines += [
            f"## {class_name}",
            "",
            "| Method | Categorization | Mean DSC (%) | Max DSC | Min DSC | Median DSC "
            "| Mean NSD (%) | Mean HD95 (mm) | Cases |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for _, row in group.iterrows():
            category = row["category"]
            if search is not None and category == "Search":
                category = f"Search ({verdict[search['verdict']]})"
            lines.append(
                f"| {row['method']} | {category} "
                f"| {_pm(row['dsc_mean'], row['dsc_std'])} | {_num(row['dsc_max'])} "
                f"| {_num(row['dsc_min'])} | {_num(row['dsc_median'])} "
                f"| {_pm(row['nsd_mean'], row['nsd_std'])} "
                f"| {_pm(row['hd95_mean'], row['hd95_std'])} | {row['n_cases']} |"
            )
        lines += ["", *search_vs_mix(group)]
        if ranks is not None and not ranks.empty:
            lines += rank_lines(ranks[ranks["class"] == class_name])
        lines.append("")
    lines += notes(table, search)
    return "\n".join(lines).rstrip() + "\n"


def rank_lines(ranks: pd.DataFrame) -> list[str]:
    """V-NAS's rank among the random architectures of one class, as a small table."""
    if ranks.empty:
        return []
    n = int(ranks["of"].iloc[0]) - 1
    lines = [
        "",
        f"V-NAS among the {n} random architectures, fold by fold (mean DSC %; rank 1 = "
        f"best of {n + 1}):",
        "",
        "| Fold | V-NAS | Random: min | median | max | V-NAS rank |",
        "|---|---|---|---|---|---|",
    ]
    for _, r in ranks.iterrows():
        lines.append(
            f"| {r['fold']} | {_num(r['vnas'])} | {_num(r['random_min'])} "
            f"| {_num(r['random_median'])} | {_num(r['random_max'])} | {r['rank']} of {r['of']} |"
        )
    return lines


def notes(table: pd.DataFrame, search: dict | None) -> list[str]:
    """The notes under the table: how decided the search was; what the Random row is."""
    out = []
    if search is not None:
        out += ["## Notes", "", f"**The search.** {search['sentence']}", ""]
    random = table[table["category"] == "Random"]
    if not random.empty:
        out += ([] if out else ["## Notes", ""]) + [
            f"**{random['method'].iloc[0]}.** Architectures drawn uniformly from the 3^21 "
            "codes, each retrained and evaluated on the same folds with the same budget as "
            "V-NAS. The row's statistics are over these architectures, of each one's mean "
            "over all test cases: mean ± std, and the best (max), worst (min) and median "
            "architecture.",
            "",
        ]
    return out


def search_vs_mix(group: pd.DataFrame) -> list[str]:
    """One honest sentence on whether the searched architecture beat the Mix baseline."""
    search = group[group["category"] == "Search"]
    mix = group[group["category"] == "Mix"]
    if search.empty or mix.empty:
        return []
    delta = search["dsc_mean"].iloc[0] - mix["dsc_mean"].iloc[0]
    verdict = "beats" if delta > 0 else "does not beat"
    return [
        f"V-NAS {verdict} the Mix baseline on mean DSC here "
        f"({delta:+.2f} points; the paper reports +0.79 on NIH Pancreas)."
    ]


def manual_grid(table: pd.DataFrame) -> pd.DataFrame:
    """Encoder (rows) x decoder (columns) grid of mean DSC, one block per class.

    Manual method names are ``ENC/DEC`` (for example ``P3D/2D``).
    """
    table = table.assign(
        encoder=table["method"].str.split("/").str[0],
        decoder=table["method"].str.split("/").str[1],
    )
    grid = table.pivot_table(
        index=["class", "encoder"], columns="decoder", values="dsc_mean", sort=False
    )
    grid.columns.name = "decoder"
    return grid.round(2)


def grid_markdown(grid: pd.DataFrame, title: str) -> str:
    """Render the manual grid like the paper's Table 4."""
    lines = [f"# {title}", ""]
    for class_name, block in grid.groupby(level="class", sort=False):
        block = block.droplevel("class")
        lines += [
            f"## {class_name}: mean DSC (%)",
            "",
            "| Encoder \\ Decoder | " + " | ".join(block.columns) + " |",
            "|---|" + "---|" * len(block.columns),
        ]
        best = np.nanmax(block.to_numpy())
        for encoder, row in block.iterrows():
            cells = [f"**{v:.2f}**" if v == best else _num(v) for v in row.to_numpy(dtype=float)]
            lines.append(f"| {encoder} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def summary_metrics(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Mean DSC (%) per method and class, for ``dvc exp show``/``dvc metrics``."""
    out: dict[str, dict[str, float]] = {}
    for _, row in table.iterrows():
        key = f"{row['class']}_mean_dsc"
        out.setdefault(row["method"], {})[key] = round(float(row["dsc_mean"]), 4)
    return out
