"""Reading and checking volume files (NIfTI, NRRD, MHA) with SimpleITK.

Every problem a user's file can have becomes a one-line ``VNASError`` naming the file:
an unreadable or truncated file, a 4D or vector image, NaNs, a label that is not integer
valued or holds values outside the declared classes, an image and label whose grids
differ (size, spacing, origin or direction), a zero voxel spacing, a file name that is
not valid UTF-8, an integer file whose scale factor overflows to infinity, and a header
that claims more voxels than the file holds or than :func:`max_voxels` allows (checked
before any voxel is allocated).
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterable
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from vnas.data.case import Case
from vnas.data.limits import max_voxels
from vnas.errors import VNASError
from vnas.files.atomic import atomic_path

# Tolerances when comparing an image's and its label's grid: float noise in headers
# written by different tools, far below anything that moves a voxel.
SPACING_RTOL = 1e-3
#: origins may differ by this fraction of the smallest voxel size
ORIGIN_TOLERANCE_VOXELS = 0.1
#: direction cosines may differ by this much (about 0.06 degrees)
DIRECTION_ATOL = 1e-3

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_voxel_count(size: Iterable[int], path: str | Path) -> None:
    """Raise ``VNASError`` when a volume of ``size`` voxels exceeds :func:`max_voxels`."""
    size = [int(s) for s in size]
    count = int(np.prod(size, dtype=np.float64))
    limit = max_voxels()
    if count > limit:
        raise VNASError(
            f"header claims {size} = {count:,} voxels, more than the limit of {limit:,}; "
            "if the volume is real, raise the limit with --max-voxels",
            path,
        )


def check_path_name(path: str | Path) -> None:
    """Raise ``VNASError`` for a file name that is not valid UTF-8.

    SimpleITK cannot take such a name: it aborts the whole process
    (``std::logic_error``) instead of raising, leaving temporaries and locks behind.
    """
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(str(path)).decode("utf-8", "backslashreplace")
        raise VNASError(
            "file name is not valid UTF-8; rename the file (SimpleITK cannot open it)", shown
        ) from None


def check_gzip(path: Path) -> int:
    """Raise ``VNASError`` if a ``.gz`` file is truncated or fails its CRC; else return
    its uncompressed size in bytes.

    Needed because ITK's NIfTI reader silently zero-fills the voxels missing from a
    truncated ``.nii.gz`` instead of failing; streaming through ``gzip`` costs one extra
    decompression (in 16 MiB pieces, so a gzip bomb never fills memory).
    """
    size = 0
    try:
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(1 << 24):
                size += len(chunk)
        if size == 0:  # gzip reads an empty file as an empty stream
            raise EOFError("no data")
    except (EOFError, OSError, zlib.error) as err:
        raise VNASError(f"truncated or corrupt gzip file ({err})", path) from None
    return size


def check_nifti_header(path: Path) -> None:
    """Check a NIfTI header before any voxel is read: the voxel count against
    :func:`max_voxels`, a zero or non-finite voxel spacing (ITK reads ``pixdim = 0``
    as 1 mm behind a warning), and a file too short for the voxels it claims (the
    uncompressed size for ``.nii.gz``)."""
    try:
        header = nib.load(str(path)).header
        shape = header.get_data_shape()
        # nibabel, like ITK, silently turns a zero pixdim into 1: read it unchecked
        with nib.openers.ImageOpener(str(path)) as stream:
            raw = type(header).from_fileobj(stream, check=False)
        zooms = [float(z) for z in raw["pixdim"][1 : 1 + min(3, len(shape))]]
        needed = int(header.get_data_offset()) + int(
            np.prod(shape, dtype=np.float64) * header.get_data_dtype().itemsize
        )
    except Exception as err:  # nibabel raises many types for a damaged header
        raise VNASError(f"cannot read the image (corrupt file?): {err}", path) from None
    check_voxel_count(shape, path)
    if any(not np.isfinite(z) or z == 0 for z in zooms):
        raise VNASError(f"voxel spacing {zooms} mm holds a zero or non-finite value", path)
    size = check_gzip(path) if path.name.endswith(".gz") else path.stat().st_size
    if size < needed:
        raise VNASError(
            f"header claims {list(shape)} voxels ({needed:,} bytes) but the file holds "
            f"{size:,} bytes: truncated or crafted file",
            path,
        )


def check_nifti_finite(path: Path) -> None:
    """Raise ``VNASError`` if a floating-point NIfTI holds NaN or infinite voxels, or an
    integer one has a scale factor (``scl_slope``, ``scl_inter``) that turns its values
    into infinity in float32, as ITK reads them.

    Needed because ITK's NIfTI reader silently turns NaN voxels into 0; nibabel reads
    the stored values as they are. Integer files (most CT) cannot hold NaN: only their
    scaling is checked, against the extremes of their type.
    """
    try:
        nifti = nib.load(str(path))
        dtype = nifti.get_data_dtype()
        if dtype.kind in "iu":
            slope, inter = nifti.dataobj.slope, nifti.dataobj.inter
            extreme = max(abs(float(np.iinfo(dtype).min)), float(np.iinfo(dtype).max))
            largest = abs(float(slope)) * extreme + abs(float(inter))
            if not np.isfinite([slope, inter]).all() or largest > _FLOAT32_MAX:
                raise VNASError(
                    f"scale factor (scl_slope {float(slope):g}, scl_inter {float(inter):g}) "
                    f"turns {dtype} values into infinity",
                    path,
                )
            return
        if dtype.kind != "f":
            return
        bad = int((~np.isfinite(np.asanyarray(nifti.dataobj))).sum())
    except VNASError:
        raise
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
    check_path_name(path)
    if not path.is_file():
        raise VNASError("file not found", path)
    if path.name.endswith((".nii", ".nii.gz")):
        check_nifti_header(path)
        check_nifti_finite(path)
    elif path.name.endswith(".gz"):
        check_gzip(path)
    try:
        info = sitk.ImageFileReader()
        info.SetFileName(str(path))
        info.ReadImageInformation()
        check_voxel_count(info.GetSize(), path)
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
    check_spacing(image.GetSpacing(), path)
    return image


def check_spacing(spacing: Iterable[float], path: str | Path) -> None:
    """Raise ``VNASError`` for a zero, negative or non-finite voxel spacing."""
    spacing = [float(s) for s in spacing]
    if not all(np.isfinite(s) and s > 0 for s in spacing):
        raise VNASError(f"voxel spacing {_rounded(spacing)} mm must be positive", path)


def write_image(image: sitk.Image, path: str | Path) -> None:
    """Write ``image`` to ``path`` atomically (gzip for ``.nii.gz``) and check it is whole.

    ITK's NIfTI writer reports a short write (a full disk) only on stderr and leaves a
    truncated or empty file, so the written file is checked before it is moved into
    place: a ``.gz`` is read through (by :func:`vnas.files.atomic.atomic_path`), anything
    else must be at least as large as its voxels.
    """
    path = Path(path)
    suffix = next((s for s in (".nii.gz", ".nii") if path.name.endswith(s)), path.suffix)
    with atomic_path(path, suffix=suffix) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=True)
        voxel_bytes = image.GetSizeOfPixelComponent() * image.GetNumberOfComponentsPerPixel()
        if not tmp.name.endswith(".gz") and (
            tmp.stat().st_size < image.GetNumberOfPixels() * voxel_bytes
        ):
            raise VNASError("could not be written completely; is the disk full?", path)


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


def check_same_grid(
    image: sitk.Image, label: sitk.Image, image_path: str | Path, label_path: str | Path
) -> None:
    """Raise ``VNASError`` when ``label`` is not on ``image``'s grid: size, spacing,
    origin and direction must agree (within :data:`SPACING_RTOL`,
    :data:`ORIGIN_TOLERANCE_VOXELS` and :data:`DIRECTION_ATOL`).

    vnas pairs image and label voxel by voxel, so a label shifted by an origin offset
    or stored with a flipped axis would silently mark the wrong voxels.
    """

    def fail(what: str, got: object, want: object, unit: str = "") -> None:
        raise VNASError(
            f"label {what} {got}{unit} (x, y, z) differs from {want}{unit} of its image "
            f"{image_path}; image and label must share one voxel grid",
            label_path,
        )

    if image.GetSize() != label.GetSize():
        fail("size", list(label.GetSize()), list(image.GetSize()))
    spacing = np.asarray(image.GetSpacing())
    if not np.allclose(spacing, label.GetSpacing(), rtol=SPACING_RTOL, atol=0):
        fail("spacing", _rounded(label.GetSpacing()), _rounded(spacing), " mm")
    # direction first: a flipped axis also moves the origin, and is the better message
    if not np.allclose(image.GetDirection(), label.GetDirection(), rtol=0, atol=DIRECTION_ATOL):
        fail("direction", _rounded(label.GetDirection()), _rounded(image.GetDirection()))
    offset = np.abs(np.subtract(image.GetOrigin(), label.GetOrigin()))
    if offset.max() > ORIGIN_TOLERANCE_VOXELS * spacing.min():
        fail("origin", _rounded(label.GetOrigin()), _rounded(image.GetOrigin()), " mm")


def _rounded(values: Iterable[float]) -> list[float]:
    return np.round(np.asarray(list(values), dtype=float), 4).tolist()


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
        check_same_grid(image, label, image_path, label_path)
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
