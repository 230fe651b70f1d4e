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
- whether the **search was decided** (:mod:`vnas.search.diagnostics`): next to the
  V-NAS row and in the notes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vnas.engine.reuse import REUSED_FROM
from vnas.errors import VNASError
from vnas.eval.metrics import METRIC_NAMES, summarise


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
        missing = {"case_id", "class_name", *METRIC_NAMES} - set(frame.columns)
        if missing:
            raise VNASError(f"metrics file lacks columns {sorted(missing)}", path)
        frames.append(frame.assign(fold=fold))
    return pd.concat(frames, ignore_index=True)


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


def reused_models(eval_root: str | Path, methods: list[Method], folds: int) -> dict[str, dict]:
    """Per row name, the folds whose evaluated model was copied from another method's
    training (``reused_from`` in the evaluation's ``config.json``, :mod:`vnas.engine.reuse`):
    ``{row: {fold: source method id}}``, rows without any left out."""
    names = {m.id: m.name for m in methods}
    reused: dict[str, dict] = {}
    for method in methods:
        for fold in range(folds):
            config = Path(eval_root) / method.id / f"fold{fold}" / "config.json"
            source = json.loads(config.read_text()).get(REUSED_FROM) if config.is_file() else None
            if source:
                source_id = Path(source["run"]).parent.name
                reused.setdefault(method.name, {})[fold] = names.get(source_id, source_id)
    return reused


def reuse_notes(reused: dict[str, dict]) -> list[str]:
    """One note per row whose networks were trained once for another row."""
    out = []
    for row, sources in reused.items():
        folds = ", ".join(str(k) for k in sorted(sources))
        others = " and ".join(sorted(set(sources.values())))
        out += [
            f"**{row}.** On fold(s) {folds} its architecture code is {others}'s: that network "
            f"was trained once and both rows evaluate it (`vnas train --reuse`; on the CPU a "
            "retraining is a deterministic function of its code, cases, settings and seed).",
            "",
        ]
    return out


def per_method_means(
    eval_root: str | Path, ids: list[str], folds: int, by_fold: bool = False
) -> pd.DataFrame:
    """Mean of each metric per method id and class (and fold), over the test cases."""
    keys = ["class_name", "fold"] if by_fold else ["class_name"]
    frames = []
    for method_id in ids:
        metrics = read_method_metrics(eval_root, Method(method_id, method_id, ""), folds)
        values = metrics[[*keys, *METRIC_NAMES]].replace([np.inf, -np.inf], np.nan)
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
        for metric in METRIC_NAMES:
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
        (1 + the number of random architectures with a strictly higher mean DSC), ``ties``
        (the number with exactly V-NAS's mean DSC) and ``of`` (N + 1).
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
            "ties": int((others == dsc[vnas_id]).sum()), "of": len(random_ids) + 1,
        })  # fmt: skip
    return pd.DataFrame(rows)


def insert_after_search(table: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """``table`` with ``rows`` right after its searched rows (V-NAS, V-NAS-PT: category
    Search...), else at the end."""
    search = table.index[table["category"].astype(str).str.startswith("Search")]
    cut = search.max() + 1 if len(search) else len(table)
    return pd.concat([table.iloc[:cut], rows, table.iloc[cut:]], ignore_index=True)


def _pm(mean: float, std: float, digits: int = 2) -> str:
    return "n/a" if np.isnan(mean) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _num(value: float, digits: int = 2) -> str:
    return "n/a" if np.isnan(value) else f"{value:.{digits}f}"


def _pm_column(group: pd.DataFrame, metric: str) -> list[str]:
    """``"mean ± std"`` of ``metric`` for each row of ``group``, with ``(n=K)`` where the
    metric is defined on only K of the row's cases (HD95 of an empty prediction is not):
    the statistics then rest on those K cases alone. (The Random row's statistics are
    over architectures, each one's mean over its cases.)"""
    cells = []
    for row in group.itertuples(index=False):
        row = row._asdict()
        cell = _pm(row[f"{metric}_mean"], row[f"{metric}_std"])
        defined = row.get(f"{metric}_n")
        if row["category"] != "Random" and defined is not None and defined < row["n_cases"]:
            cell += f" (n={int(defined)})"
        cells.append(cell)
    return cells


def markdown_table(frame: pd.DataFrame) -> str:
    """``frame`` as a Markdown (GitHub pipe) table, cells exactly as given (pandas' ``to_markdown``,
    by tabulate; no number parsing, so "n/a" and "75.00 ± 1.00" stay as written)."""
    return frame.to_markdown(index=False, tablefmt="github", disable_numparse=True)


def to_markdown(
    table: pd.DataFrame,
    title: str,
    search: dict | None = None,
    ranks: pd.DataFrame | None = None,
    preset: str | None = None,
    reused: dict[str, dict] | None = None,
) -> str:
    """Render like the paper: a block per class, DSC/NSD in %, HD95 in mm.

    Args:
        table: :func:`method_table` (with :func:`random_row` rows, if any).
        title: the heading.
        search: the searches' diagnostics (``vnas aggregate --diagnostics``): the V-NAS
            row's category says whether the search was decided, and a note says more.
        ranks: :func:`rank_among_random`, shown per class.
        preset: the dataset's reader preset; where the paper reports V-NAS and Mix on the
            same dataset and class (:data:`PAPER_MIX`), the sentence under the block
            quotes the paper's difference.
        reused: :func:`reused_models`, a note per row that reuses another's network.
    """
    lines = [f"# {title}", ""]
    # about the alpha/beta probabilities (did the search settle on one op per cell?),
    # never about the architecture's quality
    verdict = {
        "decided": "α/β decided",
        "undecided": "α/β undecided",
        "mixed": "α/β partly decided",
    }
    for class_name, group in table.groupby("class", sort=False):
        category = group["category"]
        if search is not None:
            category = category.replace("Search", f"Search ({verdict[search['verdict']]})")
        rows = pd.DataFrame({
            "Method": group["method"], "Categorization": category,
            "Mean DSC (%)": _pm_column(group, "dsc"),
            "Max DSC": group["dsc_max"].map(_num), "Min DSC": group["dsc_min"].map(_num),
            "Median DSC": group["dsc_median"].map(_num),
            "Mean NSD (%)": _pm_column(group, "nsd"),
            "Mean HD95 (mm)": _pm_column(group, "hd95"),
            "Cases": group["n_cases"].astype(str),
        })  # fmt: skip
        lines += [f"## {class_name}", "", markdown_table(rows), ""]
        lines += search_vs_mix(group, class_name, preset)
        if ranks is not None and not ranks.empty:
            lines += rank_lines(ranks[ranks["class"] == class_name])
        lines.append("")
    lines += notes(table, search, reused)
    if _partly_defined(table):
        lines += [
            "**n.** A metric marked (n=K) is defined on only K of the row's cases (HD95 is "
            "undefined where the prediction or the reference is empty): its mean ± std rest "
            "on those K cases, not on all of them.",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def _partly_defined(table: pd.DataFrame) -> bool:
    """Whether a metric of a (non-Random) row is defined on fewer cases than the row has."""
    rows = table[table["category"] != "Random"]
    return any((rows[f"{m}_n"] < rows["n_cases"]).any() for m in METRIC_NAMES if f"{m}_n" in rows)


def _rank_text(row) -> str:
    """``3 of 5``, or ``2–5 of 5 (tied)`` when random architectures share V-NAS's mean."""
    ties = int(getattr(row, "ties", 0))
    span = f"{row.rank}–{row.rank + ties}" if ties else f"{row.rank}"
    return f"{span} of {row.of}" + (" (tied)" if ties else "")


def rank_lines(ranks: pd.DataFrame) -> list[str]:
    """V-NAS's rank among the random architectures of one class, as a small table."""
    if ranks.empty:
        return []
    n = int(ranks["of"].iloc[0]) - 1
    rows = pd.DataFrame({
        "Fold": ranks["fold"].astype(str), "V-NAS": ranks["vnas"].map(_num),
        "Random: min": ranks["random_min"].map(_num),
        "median": ranks["random_median"].map(_num), "max": ranks["random_max"].map(_num),
        "V-NAS rank": [_rank_text(r) for r in ranks.itertuples()],
    })  # fmt: skip
    return [
        "",
        f"V-NAS among the {n} random architectures, fold by fold (mean DSC %; rank 1 = "
        f"best of {n + 1}):",
        "",
        markdown_table(rows),
    ]


#: Below this mean DSC (%) a method has not learnt to segment a class.
UNLEARNT_DSC = 1.0


def unlearnt_classes(table: pd.DataFrame) -> list[str]:
    """The classes no method segments: every row's mean DSC below ``UNLEARNT_DSC`` %."""
    means = table.groupby("class", sort=False)["dsc_mean"].max()
    return [str(c) for c, best in means.items() if best < UNLEARNT_DSC]


def notes(
    table: pd.DataFrame, search: dict | None, reused: dict[str, dict] | None = None
) -> list[str]:
    """The notes under the table: how decided the search was; what the Random row is;
    which classes no method learnt; which rows reuse another row's network
    (:func:`reused_models`)."""
    out = []
    for class_name in unlearnt_classes(table):
        out += ([] if out else ["## Notes", ""]) + [
            f"**{class_name}.** No method learnt to segment it within this budget (every "
            f"mean DSC is below {UNLEARNT_DSC:g} %): these rows compare nothing. More "
            "iterations or larger targets are needed before they can.",
            "",
        ]
    if search is not None:
        out += ([] if out else ["## Notes", ""]) + [f"**The search.** {search['sentence']}", ""]
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
    for note in reuse_notes(reused or {}):
        out += ([] if out else ["## Notes", ""]) + [note]
    return out


#: The paper's mean DSC (%) of V-NAS and of its Mix baseline, by reader preset and class
#: (Tables 1-3): the only like-for-like reference for a row's V-NAS − Mix difference.
PAPER_MIX: dict[tuple[str, str], tuple[float, float, str]] = {
    ("nih", "pancreas"): (85.15, 84.36, "NIH Pancreas-CT, Table 1"),
    ("lung", "cancer"): (55.27, 52.27, "MSD Lung, Table 2"),
    ("pancreas", "pancreas"): (79.94, 78.41, "MSD Pancreas, Table 3"),
    ("pancreas", "cancer"): (37.78, 30.10, "MSD Pancreas, Table 3"),
}


def search_vs_mix(group: pd.DataFrame, class_name: str, preset: str | None = None) -> list[str]:
    """One honest sentence on whether the searched architecture beat the Mix baseline on
    this class, compared with the paper only on the same dataset and class."""
    search = group[group["category"] == "Search"]
    mix = group[group["category"] == "Mix"]
    if search.empty or mix.empty:
        return []
    ours, theirs = search["dsc_mean"].iloc[0], mix["dsc_mean"].iloc[0]
    if np.isnan(ours) or np.isnan(theirs):
        return []
    if ours == 0 and theirs == 0:
        return [
            f"Neither V-NAS nor Mix found any {class_name} (mean DSC 0 for both): this "
            "class does not compare them."
        ]
    delta = ours - theirs
    verdict = "beats" if delta > 0 else "ties with" if delta == 0 else "does not beat"
    sentence = (
        f"V-NAS {verdict} the Mix baseline on mean {class_name} DSC here ({delta:+.2f} points)."
    )
    paper = PAPER_MIX.get((preset or "", class_name))
    if paper is not None:
        sentence += (
            f" The paper reports {paper[0] - paper[1]:+.2f} on this dataset and class "
            f"({paper[0]:.2f} vs {paper[1]:.2f}, {paper[2]})."
        )
    return [sentence]


#: The paper's order of the choices in Tables 4 and 5 (rows and columns).
MANUAL_OPS = ("3D", "2D", "P3D")
NOT_RUN = "not run"
NO_SCORE = "failed"


def manual_grid(table: pd.DataFrame) -> pd.DataFrame:
    """Encoder (rows) x decoder (columns) grid of mean DSC, one block per class.

    Manual method names are ``ENC/DEC`` (for example ``P3D/2D``). Every block has the
    full 3 x 3 grid; a configuration that was not run is NaN (see :func:`grid_markdown`).
    """
    table = table.assign(
        encoder=table["method"].str.split("/").str[0],
        decoder=table["method"].str.split("/").str[1],
    )
    grid = table.pivot_table(
        index=["class", "encoder"], columns="decoder", values="dsc_mean", sort=False,
        dropna=False,
    )  # fmt: skip
    classes = list(dict.fromkeys(table["class"]))
    full = pd.MultiIndex.from_product([classes, MANUAL_OPS], names=["class", "encoder"])
    grid = grid.reindex(index=full, columns=list(MANUAL_OPS))
    grid.columns.name = "decoder"
    return grid.round(2)


def grid_markdown(grid: pd.DataFrame, title: str, table: pd.DataFrame | None = None) -> str:
    """Render the manual grid like the paper's Table 4; every empty cell says why.

    Args:
        grid: :func:`manual_grid`.
        title: the heading.
        table: the manual methods' :func:`method_table`: a configuration in it whose mean
            DSC is NaN was evaluated without a score ("failed"); one not in it was not
            run (not in the dataset's ``manual`` list).
    """
    ran = set(table["method"]) if table is not None else set()
    lines, used = [f"# {title}", ""], set()
    for class_name, block in grid.groupby(level="class", sort=False):
        block = block.droplevel("class")
        best = np.nanmax(block.to_numpy()) if block.notna().any().any() else np.nan
        rows = {"Encoder \\ Decoder": list(block.index)}
        for decoder in block.columns:
            cells = []
            for encoder, value in block[decoder].items():
                if not np.isnan(value):  # bold: the best, unless every run scored 0
                    cells.append(f"**{value:.2f}**" if value == best > 0 else f"{value:.2f}")
                else:
                    cells.append(NO_SCORE if f"{encoder}/{decoder}" in ran else NOT_RUN)
                    used.add(cells[-1])
            rows[decoder] = cells
        lines += [f"## {class_name}: mean DSC (%)", "", markdown_table(pd.DataFrame(rows)), ""]
        if table is not None and "dsc_std" in table:
            lines += manual_stats_lines(table[table["class"] == class_name], class_name)
    why = {
        NOT_RUN: f"*{NOT_RUN}*: the configuration is not in the dataset's `manual` list in "
        "params.yaml.",
        NO_SCORE: f"*{NO_SCORE}*: it was trained and evaluated, but no test case got a DSC.",
    }
    lines.append(" ".join([*(why[k] for k in (NOT_RUN, NO_SCORE) if k in used),
                           "Bold: the best configuration."]))  # fmt: skip
    return "\n".join(lines).rstrip() + "\n"


def manual_stats_lines(table: pd.DataFrame, class_name: str) -> list[str]:
    """Every manual configuration of one class as the paper's Table 5 lists them: mean ±
    std, max and median DSC (%), in the paper's order (encoder, then decoder: 3D, 2D,
    P3D)."""
    rank = {op: i for i, op in enumerate(MANUAL_OPS)}

    def order(method: str) -> tuple[int, int]:
        encoder, decoder = method.split("/")
        return rank[encoder], rank[decoder]

    table = table.iloc[sorted(range(len(table)), key=lambda i: order(table["method"].iloc[i]))]
    rows = pd.DataFrame({
        "Method": table["method"], "Mean DSC (%)": _pm_column(table, "dsc"),
        "Max DSC": table["dsc_max"].map(_num), "Median DSC": table["dsc_median"].map(_num),
    })  # fmt: skip
    return [f"## {class_name}: every configuration, DSC (%)", "", markdown_table(rows), ""]


def summary_metrics(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Mean DSC (%) per method and class, for ``dvc exp show``/``dvc metrics``."""
    out: dict[str, dict[str, float]] = {}
    for _, row in table.iterrows():
        key = f"{row['class']}_mean_dsc"
        out.setdefault(row["method"], {})[key] = round(float(row["dsc_mean"]), 4)
    return out
