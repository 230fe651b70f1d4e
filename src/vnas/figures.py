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

from vnas.atomic import atomic_path
from vnas.errors import VNASError
from vnas.genotype import OP_NAMES
from vnas.search_diagnostics import DECIDED_PROB, cell_names, normalised_entropy

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


def curves_figure(search_logs: dict[str, Path], train_logs: dict[str, list[Path]]) -> plt.Figure:
    """Search losses per fold (left) and retraining loss per method (right)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    for fold, path in search_logs.items():
        frame = pd.read_csv(path)
        for column in _loss_columns(frame):
            left.plot(frame["iteration"], frame[column], label=f"{fold} {column}", lw=1)
    left.set(title="search", xlabel="iteration", ylabel="loss", yscale="log")
    left.legend(fontsize=7)
    for method, paths in train_logs.items():
        frames = [pd.read_csv(p) for p in paths if Path(p).is_file()]
        if not frames:
            continue
        merged = pd.concat(frames).groupby("iteration", as_index=False).mean(numeric_only=True)
        column = _loss_columns(merged)[0]
        right.plot(merged["iteration"], merged[column], label=method, lw=1)
    right.set(title="retraining (mean over folds)", xlabel="iteration", ylabel="loss", yscale="log")
    right.legend(fontsize=7)
    return fig


def _largest_slice(label: np.ndarray) -> int:
    areas = (label > 0).reshape(label.shape[0], -1).sum(axis=1)
    return int(areas.argmax()) if areas.any() else label.shape[0] // 2


def _overlay(ax: plt.Axes, image: np.ndarray, pred: np.ndarray, truth: np.ndarray) -> None:
    lo, hi = np.percentile(image, (1, 99))
    ax.imshow(image, cmap="gray", vmin=lo, vmax=hi)
    for value in range(1, int(max(pred.max(), truth.max())) + 1):
        colour = CLASS_COLOURS[(value - 1) % len(CLASS_COLOURS)]
        mask = np.ma.masked_where(pred != value, pred)
        ax.imshow(mask, cmap=matplotlib.colors.ListedColormap([colour]), alpha=0.45)
        if (truth == value).any():
            ax.contour(truth == value, levels=[0.5], colors=[colour], linewidths=0.8)
    ax.set_xticks([])
    ax.set_yticks([])


def overlay_figure(
    cases: list[tuple[str, np.ndarray, np.ndarray]],
    predictions: dict[str, dict[str, np.ndarray]],
    dsc: dict[str, dict[str, float]],
) -> plt.Figure:
    """Rows: cases (image, label); columns: methods. Axial slice with the most label."""
    methods = list(predictions)
    fig, axes = plt.subplots(
        len(cases), len(methods), figsize=(2.6 * len(methods), 2.6 * len(cases)), squeeze=False
    )
    for row, (case_id, image, truth) in enumerate(cases):
        z = _largest_slice(truth)
        for col, method in enumerate(methods):
            ax = axes[row, col]
            _overlay(ax, image[z], predictions[method][case_id][z], truth[z])
            score = dsc[method].get(case_id, float("nan"))
            ax.set_title(
                f"{method}  #{case_id}\nmean DSC (classes) {100 * score:.1f}%  z={z}", fontsize=8
            )
    fig.suptitle("prediction (filled) vs ground truth (contour)")
    return fig


def read_prediction(path: Path) -> np.ndarray:
    """A label NIfTI as a (D, H, W) array."""
    if not path.is_file():
        raise VNASError("prediction missing (run `vnas evaluate`)", path)
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
