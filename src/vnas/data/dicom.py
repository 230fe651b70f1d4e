"""DICOM CT series: reading one per case with SimpleITK/GDCM, writing phantom ones with pydicom.

Reading (NIH Pancreas-CT layout ``PANCREAS_00NN/<study>/<series>/*.dcm``, folder names
vary): every file below the case folder is considered; GDCM groups them into series,
orders the slices by their position along the slice normal (ImagePositionPatient, not
file name or InstanceNumber) and applies RescaleSlope/RescaleIntercept, so voxels come out
in HU. The InstanceNumber of every slice is returned too, because the NIH labels are
indexed by it (see ``vnas.data.readers.nih``). A series whose slices disagree on
PixelSpacing is refused (ITK would read them all at the first slice's spacing), and so
is a file name that is not UTF-8 (GDCM aborts the process on one). The series' voxel
count is checked against the voxel limit (`--max-voxels`) from the first slice's header
before any voxel is read.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from vnas.data.imageio import check_path_name, check_voxel_count
from vnas.errors import VNASError

INSTANCE_NUMBER = "0020|0013"
IMAGE_POSITION = "0020|0032"
PIXEL_SPACING = "0028|0030"


def _files_below(folder: Path) -> dict[Path, int]:
    """Folders below ``folder`` holding files (macOS ``._*`` and hidden files ignored)."""
    found: dict[Path, int] = {}
    for root, _dirs, files in os.walk(folder):
        for name in files:
            check_path_name(Path(root) / name)
        n = sum(1 for f in files if not f.startswith("."))
        if n:
            found[Path(root)] = n
    return found


def _check_even_spacing(reader: sitk.ImageSeriesReader, n: int, folder: Path) -> None:
    """Raise ``VNASError`` when slice positions have a gap (a missing or foreign slice)."""
    if n < 3:
        return
    try:
        positions = np.array(
            [
                [float(v) for v in reader.GetMetaData(i, IMAGE_POSITION).split("\\")]
                for i in range(n)
            ]
        )
    except (RuntimeError, ValueError):
        raise VNASError("slices lack a valid ImagePositionPatient", folder) from None
    steps = np.linalg.norm(np.diff(positions, axis=0), axis=1)
    median = float(np.median(steps))
    if median <= 0 or np.abs(steps - median).max() > 0.01 * median + 1e-3:
        raise VNASError(
            f"slice positions are not evenly spaced (steps {steps.min():.3g} to "
            f"{steps.max():.3g} mm): a slice is missing or does not belong",
            folder,
        )


def _spacing_key(value: str) -> str:
    """A PixelSpacing value (``0.5\\0.5``) written one way, so ``0.50`` equals ``0.5``."""
    try:
        return "\\".join(f"{float(v):.6g}" for v in value.split("\\")) if value.strip() else "none"
    except ValueError:
        return value.strip()


def _check_pixel_spacing(
    reader: sitk.ImageSeriesReader, files: Sequence[str], folder: Path
) -> None:
    """Raise ``VNASError`` naming the slices whose PixelSpacing differs from the most
    common one: ITK reads the whole series at one spacing."""
    spacings: dict[str, list[str]] = {}
    for i, name in enumerate(files):
        value = (
            reader.GetMetaData(i, PIXEL_SPACING) if reader.HasMetaDataKey(i, PIXEL_SPACING) else ""
        )
        spacings.setdefault(_spacing_key(value), []).append(Path(name).name)
    if len(spacings) > 1:
        common = max(spacings, key=lambda k: len(spacings[k]))
        odd = sorted(name for key, names in spacings.items() if key != common for name in names)
        others = ", ".join(sorted(k for k in spacings if k != common))
        raise VNASError(
            f"{len(odd)} of {len(files)} slices have PixelSpacing {others} instead of "
            f"{common} mm ({', '.join(odd[:5])}{', ...' if len(odd) > 5 else ''}); "
            "a series must have one pixel spacing",
            folder,
        )


def _check_series_voxels(files: Sequence[str], folder: Path) -> None:
    """Raise ``VNASError`` before any voxel is read when the series holds more voxels than
    the voxel limit: ITK allocates the first slice's rows x columns (x frames) for every
    file of the series, so that header alone sizes the volume."""
    info = sitk.ImageFileReader()
    info.SetFileName(files[0])
    try:
        info.ReadImageInformation()
    except RuntimeError:
        raise VNASError("not a readable DICOM slice", files[0]) from None
    size = list(info.GetSize())
    check_voxel_count([*size[:2], int(np.prod(size[2:], dtype=np.int64)) * len(files)], folder)


def read_dicom_series(case_dir: str | Path) -> tuple[sitk.Image, list[int]]:
    """Read the one CT series found anywhere below ``case_dir``.

    Returns:
        ``(image, instance_numbers)``: the HU volume (slices ordered by position) and the
        InstanceNumber of each slice in that order.

    Raises:
        VNASError: no files, no or several DICOM series, an unreadable file, or slices
            without InstanceNumber.
    """
    case_dir = Path(case_dir)
    check_path_name(case_dir)
    folders = _files_below(case_dir)
    if not folders:
        raise VNASError("no DICOM files found below this folder", case_dir)
    series = []
    for folder in sorted(folders):
        for series_id in sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)):
            series.append((folder, series_id))
    if not series:
        raise VNASError("no readable DICOM series below this folder", case_dir)
    if len(series) > 1:
        names = ", ".join(str(f.relative_to(case_dir)) for f, _ in series[:4])
        raise VNASError(f"found {len(series)} DICOM series ({names}); expected one", case_dir)
    folder, series_id = series[0]
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_id)
    # GDCM silently leaves out files it cannot parse: a damaged slice would vanish
    in_series = {Path(f).resolve() for f in files}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() == ".dcm" and path.resolve() not in in_series:
            raise VNASError("not a readable slice of the case's DICOM series", path)
    _check_series_voxels(files, folder)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()
    warnings = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # gaps are reported below instead
    try:
        image = reader.Execute()
    except RuntimeError:
        raise VNASError("cannot read the DICOM series (corrupt or mixed slices?)", folder) from None
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(warnings)
    _check_pixel_spacing(reader, files, folder)
    _check_even_spacing(reader, len(files), folder)
    numbers = []
    for i in range(len(files)):
        if not reader.HasMetaDataKey(i, INSTANCE_NUMBER):
            raise VNASError("slice has no InstanceNumber", files[i])
        numbers.append(int(reader.GetMetaData(i, INSTANCE_NUMBER).strip()))
    if image.GetDimension() != 3 or image.GetSize()[2] != len(files):
        raise VNASError(f"series of {len(files)} files did not read as a 3D volume", folder)
    return image, numbers


def write_dicom_series(
    hu: np.ndarray,
    spacing: Sequence[float],
    origin: Sequence[float],
    folder: str | Path,
    patient_id: str,
    file_names: Sequence[str],
    instance_numbers: Sequence[int],
    slope: float = 1.0,
    intercept: float = -1024.0,
) -> None:
    """Write a ``(D, H, W)`` HU volume (LPS, identity direction) as a CT DICOM series.

    Args:
        hu: HU values; slice ``k`` is at ``origin + k * sz`` along z.
        spacing: ``(sz, sy, sx)`` in mm.
        origin: ITK/DICOM (x, y, z) position of voxel ``(0, 0, 0)`` in mm.
        folder: output folder (created).
        patient_id: PatientID and the seed of the deterministic UIDs.
        file_names: one file name per slice (lets callers shuffle names vs slice order).
        instance_numbers: InstanceNumber per slice.
        slope, intercept: stored value = (HU - intercept) / slope, as unsigned 16 bit.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sz, sy, sx = (float(s) for s in spacing)
    study_uid = generate_uid(entropy_srcs=[patient_id, "study"])
    series_uid = generate_uid(entropy_srcs=[patient_id, "series"])
    stored = np.clip(np.round((hu - intercept) / slope), 0, 65535).astype(np.uint16)
    for k in range(hu.shape[0]):
        sop_uid = generate_uid(entropy_srcs=[patient_id, "slice", str(k)])
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.PatientID = patient_id
        ds.PatientName = "Phantom^Synthetic"
        ds.Modality = "CT"
        ds.SeriesNumber = 1
        ds.InstanceNumber = int(instance_numbers[k])
        position = (origin[0], origin[1], origin[2] + k * sz)
        ds.ImagePositionPatient = [round(float(p), 4) for p in position]  # DS: 16 chars
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [sy, sx]  # row spacing (between rows = y), column spacing (x)
        ds.SliceThickness = sz
        ds.Rows, ds.Columns = int(hu.shape[1]), int(hu.shape[2])
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 0
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept
        ds.PixelData = stored[k].tobytes()
        ds.save_as(folder / file_names[k], enforce_file_format=True)
