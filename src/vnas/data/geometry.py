"""Voxel grids: one orientation, resampling to a target spacing, and the way back.

Orientation: every preprocessed volume is reoriented with SimpleITK's
``DICOMOrient(image, "LPS")``, which gives the identity direction matrix. In the array
``(D, H, W) = (z, y, x)`` this means x (W) runs from the patient's right to left, y (H)
from anterior to posterior and z (D) from inferior to superior: the usual radiological
axial view with slice 0 at the feet. Reorienting only permutes and flips axes, so it is
exact.

Resampling keeps the physical extent: the new grid covers the same box (voxel edges, not
centres) up to rounding to whole voxels, and is centred on it. Images use linear
interpolation, labels nearest neighbour (SimpleITK ``Resample``).

``to_original`` maps a prediction made on the preprocessed grid back onto the raw image's
grid (size, spacing, origin, direction) with nearest neighbour, through physical space, so
it undoes the reorientation and the resampling in one step.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from vnas.data.presets import ORIENTATION
from vnas.errors import VNASError

#: The most voxels a resampled volume may have (2^30, 4 GiB as float32): a guard against
#: a mistyped target spacing (0.01 instead of 1.0), which would otherwise exhaust memory.
MAX_RESAMPLED_VOXELS = 2**30


def reorient(image: sitk.Image, orientation: str = ORIENTATION) -> sitk.Image:
    """Permute/flip ``image``'s axes so that its direction matches ``orientation``."""
    return sitk.DICOMOrient(image, orientation)


def resampled_grid(image: sitk.Image, spacing_zyx: Sequence[float]) -> sitk.Image:
    """An empty reference image covering ``image``'s physical box at ``spacing_zyx``.

    Raises:
        VNASError: the new grid would exceed :data:`MAX_RESAMPLED_VOXELS`.
    """
    old_spacing = np.array(image.GetSpacing(), dtype=float)
    new_spacing = np.array(list(reversed(spacing_zyx)), dtype=float)
    old_size = np.array(image.GetSize(), dtype=float)
    new_size = np.maximum(1, np.round(old_size * old_spacing / new_spacing)).astype(int)
    voxels = int(np.prod(new_size, dtype=np.float64))
    if voxels > MAX_RESAMPLED_VOXELS:
        raise VNASError(
            f"resampling to spacing {list(spacing_zyx)} mm would make a "
            f"{'x'.join(map(str, new_size[::-1]))} volume ({voxels:.3g} voxels, more than "
            f"{MAX_RESAMPLED_VOXELS:.3g}); check the target spacing"
        )
    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    # Centre the new grid on the old box: shift the first voxel centre by the difference
    # between the extents, measured along the image axes.
    shift = (new_size * new_spacing - old_size * old_spacing) / 2.0
    first_edge = np.array(image.GetOrigin()) - direction @ (old_spacing / 2.0)
    origin = first_edge + direction @ (new_spacing / 2.0 - shift)
    reference = sitk.Image([int(s) for s in new_size], sitk.sitkUInt8)
    reference.SetSpacing(new_spacing.tolist())
    reference.SetOrigin(origin.tolist())
    reference.SetDirection(direction.ravel().tolist())
    return reference


def resample_to(image: sitk.Image, reference: sitk.Image, is_label: bool) -> sitk.Image:
    """Resample ``image`` onto ``reference``'s grid: nearest for labels, linear otherwise."""
    interpolator = sitk.sitkNearestNeighbor if is_label else sitk.sitkLinear
    pixel = image.GetPixelID() if is_label else sitk.sitkFloat32
    return sitk.Resample(image, reference, sitk.Transform(), interpolator, 0.0, pixel)


def grid_of(image: sitk.Image) -> dict:
    """The grid of ``image`` as JSON-ready lists: shape (D,H,W), spacing (sz,sy,sx), ITK rest."""
    return {
        "shape": [int(s) for s in reversed(image.GetSize())],
        "spacing": [float(s) for s in reversed(image.GetSpacing())],
        "origin": [float(o) for o in image.GetOrigin()],
        "direction": [float(d) for d in image.GetDirection()],
    }


def image_on_grid(
    array: np.ndarray,
    spacing_zyx: Sequence[float],
    origin: Sequence[float],
    direction: Sequence[float],
) -> sitk.Image:
    """Wrap a ``(D, H, W)`` array as a SimpleITK image with the given geometry."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing([float(s) for s in reversed(spacing_zyx)])
    image.SetOrigin([float(o) for o in origin])
    image.SetDirection([float(d) for d in direction])
    return image


def to_original(pred: np.ndarray, meta: dict) -> sitk.Image:
    """Map a label map on the preprocessed grid back onto the raw image's grid.

    Args:
        pred: integer array ``(D, H, W)`` with the preprocessed image's shape.
        meta: the case's metadata from ``load_preprocessed`` (or ``preprocess_image``).

    Returns:
        A uint8 SimpleITK image with the original size, spacing, origin and direction,
        ready to write next to the raw image.
    """
    pred = np.asarray(pred)
    if list(pred.shape) != list(meta["shape"]):
        raise ValueError(f"prediction shape {pred.shape} != preprocessed shape {meta['shape']}")
    moving = image_on_grid(
        pred.astype(np.uint8), meta["spacing"], meta["origin"], meta["direction"]
    )
    reference = image_on_grid(
        np.zeros(meta["original_shape"], dtype=np.uint8),
        meta["original_spacing"],
        meta["original_origin"],
        meta["original_direction"],
    )
    return resample_to(moving, reference, is_label=True)
