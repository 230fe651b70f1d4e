"""Figures of a dataset's results: α/β heatmaps, loss curves and overlay slices.

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
from vnas.genotype import ENCODER_STAGES, OP_NAMES

# Paper Figs. 3-4: normal pancreas blue, tumour red.
CLASS_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e")


def save_figure(fig: plt.Figure, path: str | Path) -> None:
    """Save ``fig`` atomically as PNG and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def _cell_labels() -> list[str]:
    labels = []
    for stage, repeats in enumerate(ENCODER_STAGES, start=1):
        labels += [f"E{stage}.{i + 1}" for i in range(repeats)]
    return labels + [f"D{b + 1}" for b in range(5)]


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
    axes[0].set_yticks(range(21), _cell_labels(), fontsize=7)
    fig.colorbar(image, ax=axes.tolist(), shrink=0.6, label="softmax probability")
    fig.suptitle("softmax(α) (encoder cells) and softmax(β) (decoder blocks); bold = argmax")
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
