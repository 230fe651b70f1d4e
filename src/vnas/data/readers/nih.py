"""NIH Pancreas-CT reader (TCIA): DICOM series per case plus a separate label folder.

Layout (folder names below the case folder vary between downloads, so they are searched)::

    ROOT/.../PANCREAS_0001/<study>/<series>/*.dcm
    ROOT/.../label0001.nii.gz

Label axis convention: public code for this dataset (e.g. OrganSegC2F/OrganSegRSTN's
``nii2npy.py`` and ``dicom2npy.py``) reads the label with nibabel, ignoring its affine, as an
array ``(x, y, z)``: first index the DICOM column, second the DICOM row, third
``InstanceNumber - 1`` of the slice. So the label of the slice with InstanceNumber ``n`` is
``label_xyz[:, :, n - 1].T`` in (row, column) order. The image itself is read with GDCM,
slices ordered by position (which may run opposite to InstanceNumber), and the label
slices are picked by each slice's InstanceNumber to match.

What is checked: the label's voxels are placed on the DICOM series' grid by this
convention, not by the label file's header, so the header's origin and direction (which
may legitimately differ from the series', the array being stored in another axis order)
are neither used nor compared. The label's shape must equal the series' (x, y, z) size
exactly (an error otherwise), and a voxel size in its header that differs from the
series' spacing by more than 1 % is reported as a warning. Other layouts (MSD, nnU-Net)
compare size, spacing, origin and direction (:func:`vnas.data.imageio.check_same_grid`).

Cases 25 and 70 duplicate other cases in the current TCIA release and are skipped by the
``nih`` preset, with a log line.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import nibabel as nib
import numpy as np

from vnas.data.case import Case
from vnas.data.dicom import read_dicom_series
from vnas.data.imageio import case_from_images, check_label
from vnas.errors import VNASError

log = logging.getLogger(__name__)

CASE_DIR = re.compile(r"^PANCREAS_(\d{4})$")
LABEL_FILE = re.compile(r"^label(\d{4})\.nii(\.gz)?$")
CLASSES = {"0": "background", "1": "pancreas"}


def read_label_xyz(path: Path) -> tuple[np.ndarray, tuple[float, ...]]:
    """The raw voxel array of a label NIfTI as stored (affine ignored, as public code does)
    and its voxel sizes from the header."""
    try:
        nifti = nib.load(str(path))
        data = np.asanyarray(nifti.dataobj)
    except Exception as err:  # nibabel raises many types for a damaged file
        raise VNASError(
            f"cannot read the label (truncated or corrupt file?) {type(err).__name__}", path
        ) from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise VNASError(f"label is {data.ndim}D with shape {list(data.shape)}; expected 3D", path)
    return data, tuple(float(z) for z in nifti.header.get_zooms()[:3])


class NIHReader:
    """Reader for a NIH Pancreas-CT download.

    Args:
        root: folder holding (at any depth) the ``PANCREAS_00NN`` folders and the
            ``label00NN.nii.gz`` files.
        skip_cases: case numbers to leave out (the ``nih`` preset: 25 and 70, duplicates).
    """

    classes = CLASSES

    def __init__(self, root: str | Path, skip_cases: tuple[int, ...] = ()) -> None:
        self.root = Path(root)
        self._images: dict[str, Path] = {}
        self._labels: dict[int, Path] = {}
        for folder, dirs, files in os.walk(self.root):
            for name in [d for d in dirs if CASE_DIR.match(d)]:
                self._images[name] = Path(folder) / name
            # do not descend into case folders (thousands of slices) or hidden folders
            dirs[:] = [d for d in dirs if not CASE_DIR.match(d) and not d.startswith(".")]
            for name in files:
                if m := LABEL_FILE.match(name):
                    self._labels[int(m.group(1))] = Path(folder) / name
        if not self._images:
            raise VNASError(
                "no PANCREAS_00NN case folders found: not a NIH Pancreas-CT folder", root
            )
        for number in skip_cases:
            case_id = f"PANCREAS_{number:04d}"
            if self._images.pop(case_id, None) is not None:
                log.info("skipping %s: a duplicate of another case in the TCIA release", case_id)

    def case_ids(self) -> list[str]:
        """Ids ``PANCREAS_00NN`` of the cases, sorted."""
        return sorted(self._images)

    def label_path(self, case_id: str) -> Path:
        """The label file of a case; ``VNASError`` naming the case folder if there is none."""
        number = int(CASE_DIR.match(case_id).group(1))
        if number not in self._labels:
            raise VNASError(
                f"no label{number:04d}.nii.gz found for this case", self._images[case_id]
            )
        return self._labels[number]

    def load(self, case_id: str) -> Case:
        """Read the DICOM series and the label of one case, on the same grid."""
        case_dir = self._images[case_id]
        label_path = self.label_path(case_id)
        image, instance_numbers = read_dicom_series(case_dir)
        label_xyz, zooms = read_label_xyz(label_path)
        width, height, depth = image.GetSize()
        if label_xyz.shape != (width, height, depth):
            raise VNASError(
                f"label shape {list(label_xyz.shape)} (x, y, z) differs from its DICOM series' "
                f"{[width, height, depth]}",
                label_path,
            )
        if not np.allclose(zooms, image.GetSpacing(), rtol=0.01):
            # the label's header is not used (its grid is the series'), so only warn
            log.warning(
                "%s: label voxel size %s differs from the DICOM series' %s (x, y, z)",
                label_path,
                np.round(zooms, 3).tolist(),
                np.round(image.GetSpacing(), 3).tolist(),
            )
        index = np.asarray(instance_numbers) - 1
        if sorted(index.tolist()) != list(range(depth)):
            raise VNASError(
                f"InstanceNumbers are not 1..{depth}; cannot match label slices", case_dir
            )
        # (x, y, n-1) -> (slice in position order, row, column)
        label_zyx = np.ascontiguousarray(np.transpose(label_xyz[:, :, index], (2, 1, 0)))
        case = case_from_images(case_id, image, case_dir)
        case.label = check_label(label_zyx, label_path, [int(k) for k in CLASSES])
        return case
