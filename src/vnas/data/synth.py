"""Write a synthetic phantom dataset in the layout the real data comes in (``vnas synth``).

- ``pancreas``, ``lung`` and ``tubes``: Medical Segmentation Decathlon layout (``dataset.json``,
  ``imagesTr/``, ``labelsTr/``, ``imagesTs/``), with the real files' quirks: the misspelled
  ``relase`` key, labels as string index -> name, ``test`` as a list of plain strings,
  non-contiguous case numbers, macOS ``._*`` files beside real ones, and NIfTI files stored
  in RAS order (direction diag(-1, -1, 1)) as many real ones are.
- ``nih``: NIH Pancreas-CT layout, a DICOM series per case under
  ``Pancreas-CT/PANCREAS_00NN/<study>/<series>/`` with file names shuffled against slice
  order, InstanceNumber 1 at the top slice, RescaleIntercept -1024, and
  ``TCIA_pancreas_labels-02-05-2017/label00NN.nii.gz`` in the public-code convention
  (label array ``(x, y, InstanceNumber - 1)``, see ``vnas.data.readers.nih``).

The images themselves come from :mod:`vnas.data.phantom`; see there for what they contain.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from tqdm import tqdm

from vnas.data.dicom import write_dicom_series
from vnas.data.folds import make_folds
from vnas.data.imageio import write_image
from vnas.data.phantom import CUES, DEFAULT_SHAPE, KINDS, Phantom, classes, make_phantom
from vnas.data.preprocess import preprocess_dataset
from vnas.errors import VNASError
from vnas.files.atomic import atomic_write_json
from vnas.files.outputs import output_dir, signed

log = logging.getLogger(__name__)

NIH_IMAGES = "Pancreas-CT"
NIH_LABELS = "TCIA_pancreas_labels-02-05-2017"
MSD_NAMES = {
    "pancreas": ("pancreas", "Pancreas"),
    "lung": ("lung", "Lung"),
    "tubes": ("tubes", "Tubes"),
}
# the first bytes of a macOS AppleDouble file, as found next to real files in MSD archives
APPLEDOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        "


def _lps_origin(phantom: Phantom, number: int) -> tuple[float, float, float]:
    """Origin (x, y, z) of a phantom centred in-plane, with a case-dependent table height."""
    _, h, w = phantom.image.shape
    _, sy, sx = phantom.spacing
    return (-(w - 1) / 2 * sx, -(h - 1) / 2 * sy, -400.0 + 7.5 * number)


def _write_nifti_ras(array: np.ndarray, phantom: Phantom, origin, path: Path, dtype) -> None:
    """Write an LPS ``(D, H, W)`` array as a NIfTI stored in RAS voxel order."""
    _, h, w = array.shape
    sz, sy, sx = phantom.spacing
    image = sitk.GetImageFromArray(np.round(array[:, ::-1, ::-1]).astype(dtype))
    image.SetSpacing((sx, sy, sz))
    # voxel (0, 0, 0) of the flipped array is the LPS voxel (0, h-1, w-1)
    image.SetOrigin((origin[0] + (w - 1) * sx, origin[1] + (h - 1) * sy, origin[2]))
    image.SetDirection((-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0))
    write_image(image, path)


def _case_numbers(n_train: int, n_test: int, seed: int) -> tuple[list[int], list[int]]:
    """Non-contiguous MSD case numbers, as in the real release."""
    rng = np.random.default_rng([int(seed), 7])
    total = n_train + n_test
    numbers = np.sort(rng.choice(np.arange(1, 2 * total + 2), size=total, replace=False))
    test = set(rng.choice(numbers, size=n_test, replace=False).tolist()) if n_test else set()
    train = [int(n) for n in numbers if n not in test]
    return train, sorted(int(n) for n in test)


def _write_msd(
    kind: str, out: Path, cases: int, seed: int, shape, progress: bool, cue: str
) -> None:
    prefix, title = MSD_NAMES[kind]
    n_test = max(1, cases // 8)
    train, test = _case_numbers(cases, n_test, seed)
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (out / sub).mkdir(parents=True)
    entries = []
    for number in tqdm(train + test, desc=f"synth {kind}", disable=not progress):
        phantom = make_phantom(kind, seed, number, shape, cue=cue)
        origin = _lps_origin(phantom, number)
        name = f"{prefix}_{number:03d}.nii.gz"
        if number in test:
            _write_nifti_ras(phantom.image, phantom, origin, out / "imagesTs" / name, np.int16)
            continue
        _write_nifti_ras(phantom.image, phantom, origin, out / "imagesTr" / name, np.int16)
        _write_nifti_ras(phantom.label, phantom, origin, out / "labelsTr" / name, np.uint8)
        entries.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
    first = f"{prefix}_{train[0]:03d}.nii.gz"
    for sub in ("imagesTr", "labelsTr"):
        (out / sub / f"._{first}").write_bytes(APPLEDOUBLE)
    dataset = {
        "name": f"Synthetic{title}",
        "description": f"Synthetic {kind} CT phantom written by `vnas synth` (not patient data)"
        + (f", cue {cue}" if kind == "tubes" else ""),
        "reference": "vnas.data.phantom",
        "licence": "CC0",
        "relase": "1.0 (phantom)",
        "tensorImageSize": "3D",
        "modality": {"0": "CT"},
        "labels": classes(kind),
        "numTraining": len(entries),
        "numTest": len(test),
        "training": entries,
        "test": [f"./imagesTs/{prefix}_{n:03d}.nii.gz" for n in test],
    }
    (out / "dataset.json").write_text(json.dumps(dataset, indent=4) + "\n")


def _write_nih(out: Path, cases: int, seed: int, shape, progress: bool) -> None:
    (out / NIH_LABELS).mkdir(parents=True)
    for number in tqdm(range(1, cases + 1), desc="synth nih", disable=not progress):
        phantom = make_phantom("nih", seed, number, shape)
        d = phantom.image.shape[0]
        rng = np.random.default_rng([int(seed), int(number), 11])
        # InstanceNumber 1 is the top (highest z) slice; file names are shuffled
        instance = [d - k for k in range(d)]
        names = [f"1-{i:03d}.dcm" for i in rng.permutation(d) + 1]
        series_dir = (
            out
            / NIH_IMAGES
            / f"PANCREAS_{number:04d}"
            / f"11-{number % 28 + 1:02d}-2015-PANCREAS{number:04d}-Pancreas-{9000 + number}"
            / f"Pancreas-{rng.integers(10000, 99999)}"
        )
        write_dicom_series(
            phantom.image,
            phantom.spacing,
            _lps_origin(phantom, number),
            series_dir,
            patient_id=f"PANCREAS_{number:04d}",
            file_names=names,
            instance_numbers=instance,
        )
        # public-code label convention: array (x, y, z) with z = InstanceNumber - 1
        label_xyz = np.zeros(phantom.image.shape[::-1], dtype=np.uint8)
        for k in range(d):
            label_xyz[:, :, instance[k] - 1] = phantom.label[k].T
        sz, sy, sx = phantom.spacing
        nifti = nib.Nifti1Image(label_xyz, np.diag([sx, sy, sz, 1.0]))
        nib.save(nifti, out / NIH_LABELS / f"label{number:04d}.nii.gz")


def write_synthetic(
    kind: str,
    out: str | Path,
    cases: int,
    seed: int = 0,
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    progress: bool = True,
    force: bool = False,
    cue: str = "through-plane",
) -> Path:
    """Write ``cases`` phantom cases of ``kind`` to ``out`` in the real data's layout.

    The folder appears whole or not at all (written to a temporary sibling, then renamed).

    Args:
        kind: ``"pancreas"``, ``"lung"`` or ``"nih"``.
        out: output folder; replaced if it exists and ``vnas synth`` made it (or
            ``force``, see :mod:`vnas.files.outputs`).
        cases: number of labelled (training) cases.
        seed: dataset seed; the same seed gives identical files.
        shape: ``(D, H, W)`` voxels per case.
        progress: show a progress bar.
        force: replace ``out`` even if vnas did not make it.
        cue: ``tubes`` only: what tells targets from decoys (:mod:`vnas.data.phantom`).
    """
    if kind not in KINDS:
        raise VNASError(f"unknown phantom kind {kind!r}; choose one of {', '.join(KINDS)}")
    if cue not in CUES:
        raise VNASError(f"unknown cue {cue!r}; choose one of {', '.join(CUES)}")
    if cases < 1:
        raise VNASError(f"--cases must be at least 1, got {cases}")
    if min(shape) < 8:
        raise VNASError(f"--shape {list(shape)} is too small: at least 8 voxels per axis")
    with output_dir(out, command="synth", inputs={}, force=force) as tmp:
        if kind == "nih":
            _write_nih(tmp, cases, seed, shape, progress)
        else:
            _write_msd(kind, tmp, cases, seed, shape, progress, cue)
    log.info("wrote %d synthetic %s cases (phantom) to %s", cases, kind, out)
    return Path(out)


def synthetic_pancreas_study(
    root: str | Path, cases: int, shape: tuple[int, int, int], seed: int = 0, n_folds: int = 4
) -> dict:
    """A ready-to-search phantom study under ``root``: what ``vnas synth --kind pancreas``,
    ``vnas preprocess --preset synthetic-pancreas`` and ``vnas split`` write (in one
    process, no progress bars). Used by the test fixture and the GDAS benchmark.

    Returns:
        ``{"raw", "preprocessed", "folds"}`` paths and ``"info"``, the preprocessing's
        dataset record (cases, classes).
    """
    root = Path(root)
    raw = write_synthetic("pancreas", root / "raw", cases, seed=seed, shape=shape, progress=False)
    info = preprocess_dataset(
        raw, root / "preprocessed", "synthetic-pancreas", jobs=1, progress=False
    )
    folds = root / "folds.json"
    atomic_write_json(folds, signed("split", make_folds(info["cases"], n_folds=n_folds, seed=seed)))
    return {"raw": raw, "preprocessed": root / "preprocessed", "folds": folds, "info": info}
