"""Figures of a dataset's results: α/β heatmaps and trajectories, the cells' entropy over
the search, loss curves and overlay slices.

All figures are written with matplotlib's non-interactive Agg backend, so they render
on headless cluster nodes.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import SimpleITK as sitk
from matplotlib.patches import Patch

from vnas.errors import VNASError
from vnas.files.atomic import atomic_path
from vnas.search.diagnostics import DECIDED_PROB, cell_names, normalised_entropy
from vnas.search.schedule import recorded_schedule
from vnas.space.genotype import OP_NAMES

# Paper Figs. 3-4: normal pancreas blue, tumour red.
CLASS_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e")


def save_figure(fig: plt.Figure, path: str | Path) -> None:
    """Save ``fig`` atomically as PNG and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


OP_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c")  # 2D, 3D, P3D
FOLD_STYLES = ("-", "--", ":", "-.")
#: Entropy of (0.5, 0.25, 0.25): every decided cell lies below it.
DECIDED_ENTROPY = float(normalised_entropy(np.array([DECIDED_PROB, 0.25, 0.25])))


def arch_probabilities_figure(arch_files: dict[str, Path]) -> plt.Figure:
    """One heatmap per search (fold) plus the aggregate: cells x {2D, 3D, P3D}.

    The colour range is the data's own, so that the small moves of a short search are
    visible; each cell also prints its probability.
    """
    fig, axes = plt.subplots(
        1, len(arch_files), figsize=(2.2 * len(arch_files) + 1, 7), sharey=True
    )
    axes = np.atleast_1d(axes)
    tables = {t: json.loads(Path(p).read_text()) for t, p in arch_files.items()}
    stacked = [np.vstack([a["alpha_probs"], a["beta_probs"]]) for a in tables.values()]
    lo, hi = min(p.min() for p in stacked), max(p.max() for p in stacked)
    image = None
    for ax, (title, arch), probs in zip(axes, tables.items(), stacked, strict=True):
        image = ax.imshow(probs, vmin=lo, vmax=hi, cmap="viridis", aspect="auto")
        ax.set_title(f"{title}\n{arch['code']['decoder']}", fontsize=9)
        ax.set_xticks(range(len(OP_NAMES)), [n.upper() for n in OP_NAMES])
        choice = probs.argmax(axis=1)
        for (row, col), value in np.ndenumerate(probs):
            bold = "bold" if col == choice[row] else "normal"
            ax.text(
                col,
                row,
                f"{value:.3f}",
                ha="center",
                va="center",
                color="white",
                fontsize=6,
                fontweight=bold,
            )
        ax.axhline(15.5, color="white", linewidth=1.5)
    axes[0].set_yticks(range(21), cell_names(), fontsize=7)
    fig.colorbar(image, ax=axes.tolist(), shrink=0.6, label="softmax probability")
    fig.suptitle("softmax(α) (encoder cells) and softmax(β) (decoder blocks); bold = argmax")
    return fig


Trajectories = dict[str, tuple[np.ndarray, np.ndarray, int]]
"""Per search (e.g. ``fold0``): logged iterations (T,), probabilities (T, 21, 3), warm-up."""


def search_trajectories_figure(trajectories: Trajectories) -> plt.Figure:
    """Small multiples, one panel per cell: each op's probability over the search.

    One colour per op, one line style per search; grey: 1/3; dashed vertical: the end of
    the warm-up (of the first search).
    """
    names = cell_names()
    fig, axes = plt.subplots(3, 7, figsize=(15, 6.5), sharex=True, sharey=True)
    for ax, (cell, name) in zip(axes.flat, enumerate(names), strict=True):
        for (iterations, probs, _), style in zip(
            trajectories.values(), FOLD_STYLES * 4, strict=False
        ):
            for op, colour in enumerate(OP_COLOURS):
                ax.plot(iterations, probs[:, cell, op], style, color=colour, lw=1)
        ax.axhline(1 / 3, color="0.6", lw=0.8, zorder=0)
        first_warmup = next(iter(trajectories.values()))[2]
        ax.axvline(first_warmup, color="0.3", lw=0.8, ls="--", zorder=0)
        ax.set_title(name, fontsize=8, pad=2)
        ax.tick_params(labelsize=6)
    axes[0, 0].set_ylim(0, 1)
    handles = [plt.Line2D([], [], color=c, lw=1.5) for c in OP_COLOURS]
    handles += [
        plt.Line2D([], [], color="k", ls=st, lw=1) for st in FOLD_STYLES[: len(trajectories)]
    ]
    labels = [op.upper() for op in OP_NAMES] + list(trajectories)
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.supxlabel("iteration", y=0.05, fontsize=9)
    fig.supylabel("softmax probability", fontsize=9)
    fig.suptitle("α (encoder cells E stage.cell) and β (decoder blocks D) during the search; "
                 "grey: uniform 1/3, dashed: end of the warm-up", fontsize=10)  # fmt: skip
    fig.subplots_adjust(bottom=0.14, hspace=0.35, wspace=0.08)
    return fig


def search_entropy_figure(trajectories: Trajectories) -> plt.Figure:
    """One panel per search: every cell's normalised entropy over the search (thin), their
    mean (thick), and the entropy below which every decided cell lies (dotted)."""
    fig, axes = plt.subplots(
        1, len(trajectories), figsize=(4.5 * len(trajectories), 3.5), sharey=True, squeeze=False
    )
    for ax, (search, (iterations, probs, warmup)) in zip(
        axes[0], trajectories.items(), strict=True
    ):
        entropy = normalised_entropy(probs)  # (T, 21)
        ax.plot(iterations, entropy, color="0.6", lw=0.6)
        ax.plot(iterations, entropy.mean(axis=1), color="k", lw=2, label="mean of 21 cells")
        ax.axhline(DECIDED_ENTROPY, color="#d62728", ls=":", lw=1,
                   label=f"(0.5, 0.25, 0.25): {DECIDED_ENTROPY:.3f}")  # fmt: skip
        ax.axvline(warmup, color="0.3", ls="--", lw=0.8, label="end of warm-up")
        ax.set(title=search, xlabel="iteration", ylim=(0, 1.02))
    axes[0, 0].set_ylabel("entropy / ln 3 (1 = uniform)")
    axes[0, 0].legend(fontsize=7, loc="lower left")
    return fig


def _loss_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if "loss" in c]


def curves_figure(
    search_logs: dict[str, Path],
    train_logs: dict[str, list[Path]],
    warmups: dict[str, int] | None = None,
) -> plt.Figure:
    """Search losses per fold (left) and retraining loss per method (right).

    ``warmups``: each search's warm-up in iterations (by the keys of ``search_logs``),
    drawn as a dashed vertical line in that search's colour: before it, α and β are not
    updated. Retraining has no warm-up (its poly learning rate starts at iteration 0).
    """
    warmups = warmups or {}
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    for fold, path in search_logs.items():
        frame = pd.read_csv(path)
        colour = None
        for column in _loss_columns(frame):
            (line,) = left.plot(frame["iteration"], frame[column], label=f"{fold} {column}", lw=1)
            colour = colour or line.get_color()
        if fold in warmups:
            left.axvline(warmups[fold], color=colour or "0.3", ls="--", lw=0.9,
                         label=f"{fold} end of warm-up ({warmups[fold]:,})")  # fmt: skip
    left.set(title="search (dashed: end of the α/β warm-up)", xlabel="iteration",
             ylabel="loss", yscale="log")  # fmt: skip
    left.legend(fontsize=7)
    for method, paths in train_logs.items():
        frames = [pd.read_csv(p) for p in paths if Path(p).is_file()]
        if not frames:
            continue
        merged = pd.concat(frames).groupby("iteration", as_index=False).mean(numeric_only=True)
        column = _loss_columns(merged)[0]
        right.plot(merged["iteration"], merged[column], label=method, lw=1)
    right.set(title="retraining, mean over folds (no warm-up)", xlabel="iteration",
              ylabel="loss", yscale="log")  # fmt: skip
    if right.get_lines():
        right.legend(fontsize=7)
    return fig


#: The three orthogonal views of a (D, H, W) volume: the axis each one cuts.
VIEWS = {"axial": 0, "coronal": 1, "sagittal": 2}


def _centre_slices(label: np.ndarray) -> dict[str, int]:
    """Per view, the slice with the most foreground (the middle one if there is none)."""
    centre = {}
    for view, axis in VIEWS.items():
        other = tuple(a for a in range(3) if a != axis)
        areas = (label > 0).sum(axis=other)
        centre[view] = int(areas.argmax()) if areas.any() else label.shape[axis] // 2
    return centre


def _aspect(view: str, spacing: tuple[float, float, float]) -> float:
    """imshow's aspect (row spacing / column spacing) of a view, so that mm look square."""
    sz, sy, sx = spacing
    return {"axial": sy / sx, "coronal": sz / sx, "sagittal": sz / sy}[view]


def _overlay(
    ax: plt.Axes,
    image: np.ndarray,
    pred: np.ndarray,
    truth: np.ndarray,
    aspect: float = 1.0,
    origin: str = "upper",
) -> None:
    lo, hi = np.percentile(image, (1, 99))
    ax.imshow(image, cmap="gray", vmin=lo, vmax=hi, aspect=aspect, origin=origin)
    for value in range(1, int(max(pred.max(), truth.max())) + 1):
        colour = CLASS_COLOURS[(value - 1) % len(CLASS_COLOURS)]
        mask = np.ma.masked_where(pred != value, pred)
        ax.imshow(mask, cmap=matplotlib.colors.ListedColormap([colour]), alpha=0.45,
                  aspect=aspect, origin=origin)  # fmt: skip
        if (truth == value).any():
            ax.contour(truth == value, levels=[0.5], colors=[colour], linewidths=0.8)
    ax.set_xticks([])
    ax.set_yticks([])


#: One class's score in one case: its DSC in [0, 1], and the ground-truth and predicted
#: voxel counts (a class with no ground-truth voxels is absent from the case).
ClassScore = tuple[float, int, int]


def class_scores_text(scores: dict[str, ClassScore]) -> str:
    """``"pancreas 45.2%, cancer absent"``: class-wise DSC for a title. A class absent
    from the case's ground truth has no DSC worth showing (it is 1 if nothing is
    predicted, 0 otherwise), so it says "absent" or "absent, predicted" instead, and
    nothing is averaged over classes."""
    parts = []
    for name, (dsc, gt_voxels, pred_voxels) in scores.items():
        if gt_voxels > 0:
            parts.append(f"{name} {100 * dsc:.1f}%")
        else:
            parts.append(f"{name} absent" + (", predicted" if pred_voxels > 0 else ""))
    return ", ".join(parts)


def overlay_figure(
    cases: list[tuple[str, np.ndarray, np.ndarray, tuple[float, float, float]]],
    predictions: dict[str, dict[str, np.ndarray]],
    scores: dict[str, dict[str, dict[str, ClassScore]]],
    classes: dict[int, str],
) -> plt.Figure:
    """Predictions (filled) against ground truth (contour) in three orthogonal slices.

    Args:
        cases: ``(case_id, image, label, spacing)`` per case, arrays ``(D, H, W)``,
            spacing ``(sz, sy, sx)`` in mm (so that each view keeps its proportions).
        predictions: per method, per case id, the predicted label array.
        scores: per method, per case id, per class name: :data:`ClassScore`, shown in
            the titles class by class (:func:`class_scores_text`).
        classes: foreground label value → class name, for the legend.

    Returns:
        A figure of ``3 × len(cases)`` rows (axial, coronal, sagittal per case, each
        through the slice with the most ground truth) by one column per method, with a
        legend of the classes' colours.
    """
    methods = list(predictions)
    rows = 3 * len(cases)
    fig, axes = plt.subplots(
        rows, len(methods), figsize=(2.6 * len(methods), 2.5 * rows + 0.8), squeeze=False
    )
    for index, (case_id, image, truth, spacing) in enumerate(cases):
        centre = _centre_slices(truth)
        for offset, (view, axis) in enumerate(VIEWS.items()):
            row = 3 * index + offset
            take = {"indices": centre[view], "axis": axis}
            for col, method in enumerate(methods):
                ax = axes[row, col]
                # z (rows of coronal and sagittal views) grows upwards: head up, as
                # radiologists look at it, for volumes in the usual LPS orientation.
                _overlay(ax, np.take(image, **take), np.take(predictions[method][case_id], **take),
                         np.take(truth, **take), _aspect(view, spacing),
                         "upper" if view == "axial" else "lower")  # fmt: skip
                if offset == 0:
                    text = class_scores_text(scores[method].get(case_id, {}))
                    ax.set_title(f"{method}  #{case_id}\n{text}", fontsize=8)
            axes[row, 0].set_ylabel(f"#{case_id} {view}\n{'zyx'[axis]}={centre[view]}", fontsize=8)
    handles = [
        Patch(color=CLASS_COLOURS[(v - 1) % len(CLASS_COLOURS)], alpha=0.6,
                                 label=f"{name} (filled: prediction)")
        for v, name in sorted(classes.items())
    ]  # fmt: skip
    handles.append(plt.Line2D([], [], color="k", lw=0.8, label="contour: ground truth"))
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), fontsize=8,
               frameon=False, bbox_to_anchor=(0.5, 1.0))  # fmt: skip
    fig.suptitle("prediction (filled) vs ground truth (contour); titles: DSC per class",
                 y=1.0 + 0.35 / fig.get_figheight())  # fmt: skip
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    return fig


def read_prediction(path: Path) -> np.ndarray:
    """A label NIfTI as a (D, H, W) array."""
    if not path.is_file():
        raise VNASError("prediction missing (run `vnas evaluate`)", path)
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


# --- what the figures show, picked from a run's results (`vnas figures`) ---


def pick_cases(per_case: pd.Series, count: int) -> list[str]:
    """Worst, best, then median cases, like the paper's Fig. 3 (min and average DSC)."""
    ordered = per_case.sort_values()
    picks = [ordered.index[0], ordered.index[-1], ordered.index[len(ordered) // 2]]
    unique = list(dict.fromkeys(picks))
    return unique[:count]


def first_class_dsc(metrics: pd.DataFrame) -> pd.Series:
    """Each case's DSC of the first foreground class (the organ, as the paper's Fig. 3
    picks NIH cases by pancreas DSC): a mean over classes would mix in a class that is
    absent from a case or that no method finds."""
    first_class = metrics["class"].min()
    return metrics[metrics["class"] == first_class].set_index("case_id")["dsc"]


def class_scores(metrics: pd.DataFrame) -> dict[str, dict]:
    """Per case id, per class name: (DSC, ground-truth voxels, predicted voxels)."""
    out: dict[str, dict] = {}
    for row in metrics.itertuples():
        score = (float(row.dsc), int(row.gt_voxels), int(row.pred_voxels))
        out.setdefault(str(row.case_id), {})[row.class_name] = score
    return out


def search_warmup(search_dir: Path) -> int:
    """The search's warm-up in iterations as it resolved it (its ``plan.json``,
    :func:`vnas.search.schedule.recorded_schedule`); 0 without a ``config.json``."""
    path = search_dir / "config.json"
    if not path.is_file():
        return 0
    return recorded_schedule(search_dir, json.loads(path.read_text())).warmup


def draw_figures(
    results: Path,
    searches: list[Path],
    out: Path,
    methods: list[str],
    preset: str,
    raw: str | Path,
    case_count: int,
) -> None:
    """Write a dataset's figures (:data:`vnas.report.figure_names.FIGURES`) into ``out``
    (``vnas figures``): from its results folder, the searches' ``arch.json`` files
    ``searches``, the ``methods`` in order, and ``case_count`` test cases of the raw dataset
    (read with the reader ``preset``) for the overlays."""
    from vnas.data.readers import get_reader
    from vnas.search.diagnostics import read_trajectory

    arch_files = {p.parent.name: p for p in searches}
    arch_files["aggregate"] = results / "arch.json"
    save_figure(arch_probabilities_figure(arch_files), out / "arch_probabilities.png")
    trajectories = {
        p.parent.name: (*read_trajectory(p.parent / "trajectory.csv"), search_warmup(p.parent))
        for p in searches
    }
    save_figure(search_trajectories_figure(trajectories), out / "search_trajectories.png")
    save_figure(search_entropy_figure(trajectories), out / "search_entropy.png")

    search_logs = {p.parent.name: p.parent / "trajectory.csv" for p in searches}
    warmups = {name: warmup for name, (_, _, warmup) in trajectories.items()}
    train_logs = {m: sorted(results.glob(f"models/{m}/fold*/metrics.csv")) for m in methods}
    save_figure(curves_figure(search_logs, train_logs, warmups), out / "curves.png")

    metrics = {
        m: pd.concat(
            [
                pd.read_csv(p).assign(fold=p.parent.name)
                for p in results.glob(f"eval/{m}/fold*/metrics.csv")
            ]
        )
        for m in methods
    }
    first = metrics[methods[0]]
    chosen = pick_cases(first_class_dsc(first), case_count)
    fold_of = first.groupby("case_id")["fold"].first()

    reader = get_reader(preset, raw)
    cases, predictions = [], {m: {} for m in methods}
    for case_id in chosen:
        case = reader.load(str(case_id))
        cases.append((str(case_id), case.image, np.asarray(case.label), tuple(case.spacing)))
        for m in methods:
            path = results / "eval" / m / fold_of[case_id] / "predictions" / f"{case_id}.nii.gz"
            predictions[m][str(case_id)] = read_prediction(path)
    scores = {m: class_scores(metrics[m]) for m in methods}
    classes = {int(k): v for k, v in reader.classes.items() if int(k) > 0}
    save_figure(overlay_figure(cases, predictions, scores, classes), out / "overlays.png")
