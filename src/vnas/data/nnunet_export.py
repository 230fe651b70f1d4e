"""Export a raw dataset to nnU-Net v2's raw format, so nnU-Net can be run on the same data.

Any layout vnas reads (MSD, NIH DICOM, phantom) becomes::

    OUT/dataset.json          channel_names {"0": "CT"}, labels name -> index,
                              numTraining, file_ending ".nii.gz"
    OUT/imagesTr/<case>_0000.nii.gz   the image in HU on its original grid
    OUT/labelsTr/<case>.nii.gz        the label on the same grid
    OUT/imagesTs/<name>_0000.nii.gz   the raw folder's unlabelled test images (MSD's and
                                      nnU-Net's imagesTs), copied byte for byte
    OUT/splits_final.json     (with a folds file) nnU-Net's 5-fold-style split list

Images keep their original grid and HU (nnU-Net does its own preprocessing), but the NIH
labels come out already matched to their DICOM series, so nnU-Net never sees the label
axis quirk. With ``folds``, ``splits_final.json`` holds one entry per vnas fold with
``train`` = vnas train + val and ``val`` = the vnas test fold: copy it into
``nnUNet_preprocessed/DatasetXXX_Name/`` and nnU-Net's fold k is tested on exactly the cases
vnas tests on in fold k.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np

from vnas.data.folds import read_folds
from vnas.data.imageio import case_to_image, write_image
from vnas.data.parallel import map_cases
from vnas.data.readers import Reader, get_reader
from vnas.errors import VNASError
from vnas.files.outputs import output_dir

log = logging.getLogger(__name__)

DATASET_NAME = re.compile(r"^Dataset\d{3}_[A-Za-z0-9_-]+$")


def _export_case(reader: Reader, case_id: str, out: str) -> None:
    case = reader.load(case_id)
    image = case.image
    if np.array_equal(image, np.round(image)) and image.min() >= -32768 and image.max() < 32768:
        image = image.astype(np.int16)  # CT is integral HU: halve the size
    write_image(case_to_image(case, image), Path(out) / "imagesTr" / f"{case_id}_0000.nii.gz")
    write_image(case_to_image(case, case.label), Path(out) / "labelsTr" / f"{case_id}.nii.gz")


def _copy_test_images(raw: Path, out: Path) -> int:
    """Copy RAW/imagesTs/*.nii.gz to OUT/imagesTs with nnU-Net's channel suffix (``_0000``),
    unchanged otherwise; the number copied (0 without an imagesTs folder)."""
    import shutil

    images = sorted(
        p for p in (raw / "imagesTs").glob("*.nii.gz") if not p.name.startswith(".")
    ) if (raw / "imagesTs").is_dir() else []  # fmt: skip
    if images:
        (out / "imagesTs").mkdir()
    for image in images:
        stem = image.name.removesuffix(".nii.gz")
        name = image.name if stem.endswith("_0000") else f"{stem}_0000.nii.gz"
        shutil.copyfile(image, out / "imagesTs" / name)
    return len(images)


def nnunet_splits(folds: dict, case_ids: list[str]) -> list[dict]:
    """nnU-Net ``splits_final.json`` entries: train = vnas train + val, val = vnas test."""
    known = set(case_ids)
    splits = []
    for entry in folds["folds"]:
        train = sorted(entry["train"] + entry["val"])
        missing = sorted(set(train + entry["test"]) - known)
        if missing:
            raise VNASError(f"folds name cases not in this dataset: {missing[:5]}")
        splits.append({"train": train, "val": sorted(entry["test"])})
    return splits


def export_nnunet(
    raw: str | Path,
    preset: str,
    out: str | Path,
    folds: str | Path | None = None,
    jobs: int = 1,
    progress: bool = True,
    force: bool = False,
) -> Path:
    """Write the labelled cases of ``raw`` as an nnU-Net v2 raw dataset in ``out``.

    Args:
        raw: raw dataset folder.
        preset: its dataset preset (picks the reader).
        out: output folder, conventionally ``DatasetXXX_Name``; appears only when complete.
        folds: optional ``folds.json`` to turn into ``splits_final.json``.
        jobs: cases written in parallel.
        progress: show a progress bar.
        force: replace ``out`` even if ``vnas export-nnunet`` did not make it.
    """
    out = Path(out)
    reader = get_reader(preset, raw)
    case_ids = reader.case_ids()
    splits = nnunet_splits(read_folds(folds), case_ids) if folds is not None else None
    inputs = {"--raw": raw, "--folds": folds}
    with output_dir(out, command="export-nnunet", inputs=inputs, force=force) as tmp:
        if not DATASET_NAME.match(out.name):
            log.warning("%s: nnU-Net expects the folder name DatasetXXX_Name (XXX: 3 digits)", out)
        (tmp / "imagesTr").mkdir()
        (tmp / "labelsTr").mkdir()
        calls = [(reader, cid, str(tmp)) for cid in case_ids]
        map_cases(_export_case, calls, jobs, "export nnU-Net", progress)
        tests = _copy_test_images(Path(raw), tmp)
        dataset = {
            "name": out.name,
            "description": f"exported by vnas from {Path(raw).resolve()} (preset {preset})",
            "channel_names": {"0": "CT"},
            "labels": {name: int(index) for index, name in reader.classes.items()},
            "numTraining": len(case_ids),
            "file_ending": ".nii.gz",
        }
        if splits is not None:
            (tmp / "splits_final.json").write_text(_json(splits))
        (tmp / "dataset.json").write_text(_json(dataset))
    log.info("exported %d cases and %d test images to %s", len(case_ids), tests, out)
    return out


def _json(obj: object) -> str:
    return json.dumps(obj, indent=2) + "\n"
