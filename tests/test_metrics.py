"""Metrics: equal to MONAI's on the same masks, hand-checkable values, empty masks."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from monai.metrics import compute_dice, compute_hausdorff_distance, compute_surface_dice
from monai.networks.utils import one_hot

from vnas.errors import VNASError
from vnas.eval.metrics import DEFAULT_NSD_TOLERANCE_MM, case_metrics, class_metrics, nsd_tolerances

SPACING = (3.0, 1.0, 0.5)  # (sz, sy, sx) mm: anisotropic, distinct per axis


def _cube(shape=(8, 12, 12), lo=(2, 3, 3), hi=(4, 7, 7)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = True
    return mask


@pytest.mark.parametrize(
    ("axis", "step_mm"), [(0, 3.0), (1, 1.0), (2, 0.5)], ids=["shift-z", "shift-y", "shift-x"]
)
def test_cube_shifted_by_one_voxel(axis: int, step_mm: float) -> None:
    gt = _cube()
    pred = np.roll(gt, 1, axis=axis)
    # The cube is 2 x 4 x 4 voxels; a one-voxel shift keeps (n-1)/n of it.
    n = (gt.sum(axis=tuple(a for a in range(3) if a != axis)) > 0).sum()
    expected_dsc = (n - 1) / n
    # Tolerance just below and at the step in mm along the shifted axis.
    below = class_metrics(pred, gt, SPACING, tolerance_mm=step_mm * 0.99)
    at = class_metrics(pred, gt, SPACING, tolerance_mm=step_mm)
    assert below["dsc"] == pytest.approx(expected_dsc)
    assert below["hd95"] == pytest.approx(step_mm)
    assert at["nsd"] == pytest.approx(1.0)
    assert below["nsd"] < 1.0


def test_z_shift_nsd_by_hand() -> None:
    # A 2-slice-thick cube: every voxel is a boundary voxel. Shifted by one slice (3 mm),
    # half of each boundary coincides with the other (distance 0), half is 3 mm away.
    gt = _cube()
    pred = np.roll(gt, 1, axis=0)
    got = class_metrics(pred, gt, SPACING, tolerance_mm=2.0)
    assert got["nsd"] == pytest.approx(0.5)
    assert got["dsc"] == pytest.approx(0.5)


def _monai_direct(pred: np.ndarray, gt: np.ndarray, num_classes: int, tol: list[float]):
    p = one_hot(torch.from_numpy(pred.astype(np.int64))[None, None], num_classes)
    y = one_hot(torch.from_numpy(gt.astype(np.int64))[None, None], num_classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dsc = compute_dice(p, y, include_background=False, ignore_empty=False)[0]
        nsd = compute_surface_dice(p, y, tol, include_background=False, spacing=list(SPACING))[0]
        hd = compute_hausdorff_distance(
            p, y, include_background=False, percentile=95, spacing=list(SPACING)
        )[0]
    return dsc.numpy(), nsd.numpy(), hd.numpy()


def test_equals_monai_on_random_multiclass_masks() -> None:
    rng = np.random.default_rng(0)
    shape = (10, 16, 14)
    gt = np.zeros(shape, dtype=np.uint8)
    gt[2:8, 3:12, 2:10] = 1
    gt[4:6, 5:9, 4:8] = 2
    pred = gt.copy()
    flip = rng.random(shape) < 0.15
    pred[flip] = rng.integers(0, 3, size=int(flip.sum()))
    pred[0, 0, 0] = 2  # an outlier far from class 2, so HD95 differs from HD
    tol = [1.0, 2.0]
    rows = case_metrics(pred, gt, SPACING, num_classes=3, tolerances_mm=tol)
    dsc, nsd, hd = _monai_direct(pred, gt, 3, tol)
    assert [r["class"] for r in rows] == [1, 2]
    for i, row in enumerate(rows):
        assert row["dsc"] == pytest.approx(float(dsc[i]), abs=1e-6)
        assert row["nsd"] == pytest.approx(float(nsd[i]), abs=1e-6)
        assert row["hd95"] == pytest.approx(float(hd[i]), abs=1e-5)
        assert row["nsd_tolerance_mm"] == tol[i]
        assert row["pred_voxels"] == int((pred == i + 1).sum())
        assert row["gt_voxels"] == int((gt == i + 1).sum())
    assert 0 < rows[1]["dsc"] < 1 and rows[1]["hd95"] > 0


def test_mask_touching_the_volume_border_equals_monai() -> None:
    gt = np.zeros((6, 9, 9), dtype=np.uint8)
    gt[0:3, 0:5, 4:9] = 1
    pred = np.zeros_like(gt)
    pred[0:4, 1:6, 3:9] = 1
    row = case_metrics(pred, gt, SPACING, num_classes=2)[0]
    dsc, nsd, hd = _monai_direct(pred, gt, 2, [DEFAULT_NSD_TOLERANCE_MM])
    assert (row["dsc"], row["nsd"], row["hd95"]) == pytest.approx(
        (float(dsc[0]), float(nsd[0]), float(hd[0])), abs=1e-6
    )


def test_empty_mask_convention() -> None:
    empty = np.zeros((6, 8, 8), dtype=bool)
    cube = _cube((6, 8, 8), (1, 2, 2), (4, 6, 6))
    assert class_metrics(empty, empty, SPACING, 1.0) == {"dsc": 1.0, "nsd": 1.0, "hd95": 0.0}
    for pred, gt in [(empty, cube), (cube, empty)]:
        got = class_metrics(pred, gt, SPACING, 1.0)
        assert got["dsc"] == 0.0 and got["nsd"] == 0.0 and math.isnan(got["hd95"])
        # Same as MONAI for every value vnas does not override.
        dsc, nsd, hd = _monai_direct(pred.astype(np.uint8), gt.astype(np.uint8), 2, [1.0])
        assert float(dsc[0]) == 0.0 and float(nsd[0]) == 0.0 and math.isnan(float(hd[0]))


def test_nsd_tolerances() -> None:
    assert nsd_tolerances(None, 2) == [DEFAULT_NSD_TOLERANCE_MM] * 2 == [2.0, 2.0]
    assert nsd_tolerances(2.5, 2) == [2.5, 2.5]
    assert nsd_tolerances([3.0], 2) == [3.0, 3.0]
    assert nsd_tolerances([1.0, 2.0], 2) == [1.0, 2.0]
    with pytest.raises(VNASError, match="one per foreground class"):
        nsd_tolerances([1.0, 2.0, 3.0], 2)
    with pytest.raises(VNASError, match=">= 0"):
        nsd_tolerances([-1.0], 1)
