"""Per-case segmentation metrics: DSC, normalised surface Dice (NSD) and HD95, in mm.

All three are MONAI's own functions (``compute_dice``, ``compute_surface_dice``,
``compute_hausdorff_distance``), called per foreground class on binary masks with the
voxel spacing ``(sz, sy, sx)`` in mm, in the same ``(D, H, W)`` order as the arrays.

Definitions (MONAI's):

- **DSC** ``2|P∩Y| / (|P| + |Y|)``.
- **NSD** (Nikolov et al. 2021, the Medical Segmentation Decathlon's second metric):
  the fraction of boundary voxels of prediction and reference that lie within a
  tolerance ``τ`` mm of the other's boundary. ``τ`` is set per class
  (``DEFAULT_NSD_TOLERANCE_MM`` = 2.0 mm unless overridden; a vnas choice, as the paper
  reports no NSD); boundary voxels, not sub-voxel surface areas, are counted (MONAI's
  ``use_subvoxels=False``).
- **HD95**: the larger of the two directed 95th-percentile boundary distances
  (prediction → reference, reference → prediction), in mm.

Empty masks (the convention vnas reports, per class and case):

================================  =====  =====  =====
case                               DSC    NSD   HD95
================================  =====  =====  =====
both prediction and truth empty     1.0    1.0    0.0
only one of them empty              0.0    0.0    NaN
================================  =====  =====  =====

DSC is MONAI's ``compute_dice(..., ignore_empty=False)``, which is the Decathlon's
convention (an empty reference predicted as empty is a perfect result; a miss or a
false alarm scores 0). For NSD, MONAI returns 0 when one mask is empty and NaN when
both are; vnas reports 1.0 in the both-empty case so that NSD follows the same
Decathlon convention as DSC. HD95 is undefined when only one mask has a surface:
MONAI returns NaN and vnas keeps it (the DSC of 0 already records the failure, and the
voxel counts in the table show which mask was empty); with both empty there is no
disagreement, so vnas reports 0.0 instead of MONAI's NaN. Summaries
(:func:`summarise`) leave NaN out and report how many values remain.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from vnas.errors import VNASError

__all__ = [
    "DEFAULT_NSD_TOLERANCE_MM",
    "METRIC_NAMES",
    "case_metrics",
    "class_metrics",
    "nsd_tolerances",
    "summarise",
]

DEFAULT_NSD_TOLERANCE_MM = 2.0
METRIC_NAMES = ("dsc", "nsd", "hd95")


def nsd_tolerances(tolerance: float | Sequence[float] | None, num_foreground: int) -> list[float]:
    """One NSD tolerance in mm per foreground class.

    Args:
        tolerance: ``None`` for the default, one number for every class, or one number per
            foreground class (class 1, 2, ...).
        num_foreground: the number of foreground classes.

    Raises:
        VNASError: a wrong count, or a negative or non-finite tolerance.
    """
    if tolerance is None:
        values = [DEFAULT_NSD_TOLERANCE_MM] * num_foreground
    elif isinstance(tolerance, int | float):
        values = [float(tolerance)] * num_foreground
    else:
        values = [float(t) for t in tolerance]
        if len(values) == 1:
            values = values * num_foreground
    if len(values) != num_foreground:
        raise VNASError(
            f"--nsd-tolerance takes one value or one per foreground class "
            f"({num_foreground}), got {len(values)}"
        )
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise VNASError(f"NSD tolerances must be finite and >= 0 mm, got {values}")
    return values


def _crop_to_union(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crop both masks to the bounding box of their union plus one voxel.

    MONAI crops the same way inside its surface metrics; doing it first keeps the float
    tensors MONAI builds small on whole CT volumes, and no metric changes: voxels
    outside the box are background in both masks.
    """
    union = pred | gt
    box = []
    for axis in range(union.ndim):
        other = tuple(a for a in range(union.ndim) if a != axis)
        hits = np.flatnonzero(union.any(axis=other))
        box.append(slice(max(hits[0] - 1, 0), hits[-1] + 2))
    return pred[tuple(box)], gt[tuple(box)]


def class_metrics(
    pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float], tolerance_mm: float
) -> dict[str, float]:
    """DSC, NSD and HD95 of one binary mask pair.

    Args:
        pred: predicted binary mask ``(D, H, W)``.
        gt: reference binary mask of the same shape.
        spacing: voxel size ``(sz, sy, sx)`` in mm.
        tolerance_mm: NSD tolerance in mm.

    Returns:
        ``{"dsc", "nsd", "hd95"}`` following the empty-mask convention in the module
        docstring.
    """
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and reference {gt.shape} differ in shape")
    if not pred.any() and not gt.any():
        return {"dsc": 1.0, "nsd": 1.0, "hd95": 0.0}
    # Imported here: `vnas table` reads METRIC_NAMES and summarise without torch/MONAI.
    import torch
    from monai.metrics import compute_dice, compute_hausdorff_distance, compute_surface_dice

    pred, gt = _crop_to_union(pred, gt)
    # (B=1, C=1, D, H, W): a single class, so include_background=True keeps it.
    p = torch.from_numpy(pred)[None, None].float()
    y = torch.from_numpy(gt)[None, None].float()
    spacing = [float(s) for s in spacing]
    with warnings.catch_warnings():
        # MONAI warns on an empty mask; the convention above covers it.
        warnings.filterwarnings("ignore", message=".*(ground truth|prediction).*empty.*")
        warnings.filterwarnings("ignore", message=".*all 0.*")
        # MONAI 1.5-1.6 passes its own deprecated argument internally.
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy.*")
        dsc = compute_dice(p, y, include_background=True, ignore_empty=False)
        nsd = compute_surface_dice(
            p, y, [float(tolerance_mm)], include_background=True, spacing=spacing
        )
        hd95 = compute_hausdorff_distance(
            p, y, include_background=True, percentile=95, spacing=spacing
        )
    return {"dsc": float(dsc), "nsd": float(nsd), "hd95": float(hd95)}


def case_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing: Sequence[float],
    num_classes: int,
    tolerances_mm: Sequence[float] | None = None,
) -> list[dict[str, float | int]]:
    """Metrics of every foreground class of one case.

    Args:
        pred: predicted label map ``(D, H, W)``.
        gt: reference label map of the same shape.
        spacing: voxel size ``(sz, sy, sx)`` in mm.
        num_classes: number of classes including background.
        tolerances_mm: NSD tolerance per foreground class (default 1.0 mm each).

    Returns:
        One dict per foreground class: ``class`` (its index), ``dsc``, ``nsd``, ``hd95``,
        ``nsd_tolerance_mm``, ``pred_voxels``, ``gt_voxels``.
    """
    if len(spacing) != pred.ndim:
        raise ValueError(f"spacing {tuple(spacing)} does not match a {pred.ndim}-D array")
    tolerances = nsd_tolerances(tolerances_mm, num_classes - 1)
    rows = []
    for c in range(1, num_classes):
        p, y = pred == c, gt == c
        row: dict[str, float | int] = {"class": c}
        row.update(class_metrics(p, y, spacing, tolerances[c - 1]))
        row["nsd_tolerance_mm"] = tolerances[c - 1]
        row["pred_voxels"] = int(p.sum())
        row["gt_voxels"] = int(y.sum())
        rows.append(row)
    return rows


def summarise(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per class: mean, std, max, min and median of each metric, and the case count.

    NaN values (MONAI's result for an undefined distance, e.g. an empty prediction) are
    left out of the HD95 statistics; ``hd95_n`` says how many cases remain.
    """
    rows = []
    for class_name, group in metrics.groupby("class_name", sort=False):
        row: dict[str, float | str | int] = {"class": class_name, "n_cases": len(group)}
        for metric in METRIC_NAMES:
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
