"""Reading and checking volume files (NIfTI, NRRD, MHA) with SimpleITK.

Every problem a user's file can have becomes a one-line ``VNASError`` naming the file:
an unreadable or truncated file, a 4D or vector image, NaNs, a label that is not integer
valued or holds values outside the declared classes, an image and label whose grids differ.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterable
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from vnas.data.case import Case
from vnas.errors import VNASError

# Relative tolerance when comparing image and label spacing (float noise in headers).
SPACING_RTOL = 1e-3


def check_gzip(path: Path) -> None:
    """Raise ``VNASError`` if a ``.gz`` file is truncated or fails its CRC.

    Needed because ITK's NIfTI reader silently zero-fills the voxels missing from a
    truncated ``.nii.gz`` instead of failing; streaming through ``gzip`` costs one extra
    decompression.
    """
    try:
        with gzip.open(path, "rb") as stream:
            while stream.read(1 << 24):
                pass
    except (EOFError, OSError, zlib.error) as err:
        raise VNASError(f"truncated or corrupt gzip file ({err})", path) from None


def check_nifti_finite(path: Path) -> None:
    """Raise ``VNASError`` if a floating-point NIfTI holds NaN or infinite voxels.

    Needed because ITK's NIfTI reader silently turns NaN voxels into 0; nibabel reads
    the stored values as they are. Integer files (most CT) cannot hold NaN and are skipped.
    """
    try:
        nifti = nib.load(str(path))
        if nifti.get_data_dtype().kind != "f":
            return
        bad = int((~np.isfinite(np.asanyarray(nifti.dataobj))).sum())
    except Exception as err:  # nibabel raises many types for a damaged file
        raise VNASError(f"cannot read the image (corrupt file?): {err}", path) from None
    if bad:
        raise VNASError(f"file holds {bad} NaN or infinite voxels", path)


def read_image(path: str | Path) -> sitk.Image:
    """Read a 3D scalar volume; a trailing 4th axis of length 1 is dropped.

    Raises:
        VNASError: missing, unreadable or corrupt file; 4D or multi-component image.
    """
    path = Path(path)
    if not path.is_file():
        raise VNASError("file not found", path)
    if path.name.endswith(".gz"):
        check_gzip(path)
    if path.name.endswith((".nii", ".nii.gz")):
        check_nifti_finite(path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as err:
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else ""
        reason = reason.split("ERROR:")[-1].strip()
        raise VNASError(f"cannot read the image (corrupt file?): {reason[:120]}", path) from None
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise VNASError(
            f"image has {image.GetNumberOfComponentsPerPixel()} components per voxel; "
            "expected one scalar CT value",
            path,
        )
    if image.GetDimension() == 4 and image.GetSize()[3] == 1:
        size = list(image.GetSize())
        image = sitk.Extract(image, [*size[:3], 0], [0, 0, 0, 0])
    if image.GetDimension() != 3:
        raise VNASError(
            f"image is {image.GetDimension()}D with size {list(image.GetSize())}; "
            "expected a 3D volume",
            path,
        )
    return image


def image_to_array(image: sitk.Image, path: str | Path) -> np.ndarray:
    """Voxel array ``(D, H, W)`` of ``image`` as float32; NaN or inf raises ``VNASError``."""
    array = sitk.GetArrayFromImage(image).astype(np.float32, copy=False)
    bad = ~np.isfinite(array)
    if bad.any():
        raise VNASError(f"image holds {int(bad.sum())} NaN or infinite voxels", path)
    return array


def label_to_array(image: sitk.Image, path: str | Path, classes: Iterable[int]) -> np.ndarray:
    """Label array ``(D, H, W)`` as uint8, checked against the declared class indices."""
    return check_label(sitk.GetArrayFromImage(image), path, classes)


def check_label(array: np.ndarray, path: str | Path, classes: Iterable[int]) -> np.ndarray:
    """``array`` as uint8 after checking it holds only integers from ``classes``."""
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise VNASError("label holds NaN or infinite voxels", path)
        if not np.array_equal(array, np.round(array)):
            raise VNASError("label holds non-integer values", path)
    values = np.unique(array).astype(np.int64)
    allowed = sorted(int(c) for c in classes)
    extra = sorted(set(values.tolist()) - set(allowed))
    if extra:
        raise VNASError(
            f"label values {extra[:10]} are outside the declared classes {allowed}", path
        )
    return array.astype(np.uint8)


def check_same_grid(image: sitk.Image, label: sitk.Image, label_path: str | Path) -> None:
    """Raise ``VNASError`` when ``label`` does not share ``image``'s size and spacing."""
    if image.GetSize() != label.GetSize():
        raise VNASError(
            f"label size {list(label.GetSize())} (x, y, z) differs from its image's "
            f"{list(image.GetSize())}",
            label_path,
        )
    if not np.allclose(image.GetSpacing(), label.GetSpacing(), rtol=SPACING_RTOL, atol=0):
        raise VNASError(
            f"label spacing {np.round(label.GetSpacing(), 4).tolist()} (x, y, z) differs "
            f"from its image's {np.round(image.GetSpacing(), 4).tolist()}",
            label_path,
        )


def case_from_images(
    case_id: str,
    image: sitk.Image,
    image_path: str | Path,
    label: sitk.Image | None = None,
    label_path: str | Path | None = None,
    classes: Iterable[int] = (0, 1),
) -> Case:
    """Build a checked :class:`Case` from an image and an optional label on the same grid."""
    array = image_to_array(image, image_path)
    label_array = None
    if label is not None:
        check_same_grid(image, label, label_path)
        label_array = label_to_array(label, label_path, classes)
    return Case(
        case_id=case_id,
        image=array,
        label=label_array,
        spacing=tuple(float(s) for s in reversed(image.GetSpacing())),
        origin=tuple(float(o) for o in image.GetOrigin()),
        direction=tuple(float(d) for d in image.GetDirection()),
        source=str(image_path),
    )


def case_to_image(case: Case, array: np.ndarray | None = None) -> sitk.Image:
    """SimpleITK image of ``array`` (default: ``case.image``) with ``case``'s geometry."""
    image = sitk.GetImageFromArray(case.image if array is None else array)
    image.SetSpacing([float(s) for s in reversed(case.spacing)])
    image.SetOrigin([float(o) for o in case.origin])
    image.SetDirection([float(d) for d in case.direction])
    return image
