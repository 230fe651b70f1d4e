"""Readers on fixtures written by `vnas synth`: MSD, NIH DICOM + label NIfTI, nnU-Net v2."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from vnas.cli import main
from vnas.data.dicom import read_dicom_series, write_dicom_series
from vnas.data.geometry import reorient
from vnas.data.phantom import make_phantom
from vnas.data.readers import get_reader
from vnas.data.readers.msd import MSDReader
from vnas.data.readers.nih import NIHReader
from vnas.data.synth import write_synthetic
from vnas.errors import VNASError

SMALL = (12, 32, 32)


@pytest.fixture(scope="module")
def nih_raw(tmp_path_factory) -> Path:
    return write_synthetic(
        "nih", tmp_path_factory.mktemp("nih") / "raw", 2, seed=0, shape=SMALL, progress=False
    )


@pytest.fixture(scope="module")
def lung_raw(tmp_path_factory) -> Path:
    return write_synthetic(
        "lung", tmp_path_factory.mktemp("lung") / "raw", 3, seed=0, shape=SMALL, progress=False
    )


def _lps(case) -> tuple[np.ndarray, np.ndarray]:
    """Image and label of a Case reoriented to LPS (the phantom's own orientation)."""
    image = sitk.GetImageFromArray(case.image)
    image.SetDirection(case.direction)
    label = sitk.GetImageFromArray(case.label)
    label.SetDirection(case.direction)
    return (
        sitk.GetArrayFromImage(reorient(image)),
        sitk.GetArrayFromImage(reorient(label)),
    )


# --- MSD ----------------------------------------------------------------------------------


def test_msd_reader_on_synthetic_pancreas(synthetic_dataset) -> None:
    reader = get_reader("synthetic-pancreas", synthetic_dataset["raw"])
    assert isinstance(reader, MSDReader)
    info = json.loads((synthetic_dataset["raw"] / "dataset.json").read_text())
    listed = sorted(Path(e["image"]).name.removesuffix(".nii.gz") for e in info["training"])
    assert reader.case_ids() == listed  # non-contiguous ids from file names, no ._ files
    assert reader.classes == {"0": "background", "1": "pancreas", "2": "cancer"}
    assert reader.test == [Path(t).name.removesuffix(".nii.gz") for t in info["test"]]
    case = reader.load(reader.case_ids()[0])
    number = int(case.case_id.split("_")[1])
    phantom = make_phantom("pancreas", 0, number, (32, 64, 64))
    image, label = _lps(case)
    np.testing.assert_array_equal(label, phantom.label)
    np.testing.assert_allclose(image, np.round(phantom.image), atol=0.5)  # int16 on disk
    assert case.spacing == pytest.approx(phantom.spacing, abs=1e-5)
    assert case.direction == (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)  # stored RAS


def test_msd_reader_lung_classes(lung_raw: Path) -> None:
    reader = get_reader("lung", lung_raw)
    assert reader.classes == {"0": "background", "1": "cancer"}
    assert len(reader.case_ids()) == 3


def test_msd_labels_with_numeric_ordering(tmp_path: Path, lung_raw: Path) -> None:
    info = json.loads((lung_raw / "dataset.json").read_text())
    info["labels"] = {"1": "cancer", "0": "background"}  # order in the file does not matter
    raw = tmp_path / "raw"
    raw.mkdir()
    for sub in ("imagesTr", "labelsTr"):
        (raw / sub).symlink_to(lung_raw / sub)
    (raw / "dataset.json").write_text(json.dumps(info))
    assert MSDReader(raw).classes == {"0": "background", "1": "cancer"}


def test_msd_listed_but_missing_names_the_file(tmp_path: Path, lung_raw: Path) -> None:
    info = json.loads((lung_raw / "dataset.json").read_text())
    info["training"].append({"image": "./imagesTr/lung_999.nii.gz", "label": "./labelsTr/x"})
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "dataset.json").write_text(json.dumps(info))
    for sub in ("imagesTr", "labelsTr"):
        (raw / sub).symlink_to(lung_raw / sub)
    with pytest.raises(VNASError, match=r"lung_999\.nii\.gz: listed in dataset.json but missing"):
        MSDReader(raw)


# --- NIH ----------------------------------------------------------------------------------


def test_nih_series_ordered_by_position_not_file_name(nih_raw: Path) -> None:
    reader = get_reader("synthetic-nih", nih_raw)
    assert isinstance(reader, NIHReader)
    assert reader.case_ids() == ["PANCREAS_0001", "PANCREAS_0002"]
    files = sorted(p.name for p in (nih_raw / "Pancreas-CT" / "PANCREAS_0001").rglob("*.dcm"))
    assert len(files) == SMALL[0]
    case = reader.load("PANCREAS_0001")
    phantom = make_phantom("nih", 0, 1, SMALL)
    # stored = HU + 1024 (RescaleIntercept -1024): equal only if the rescale was applied
    expected = np.maximum(np.round(phantom.image), -1024)
    np.testing.assert_allclose(case.image, expected, atol=0.5)
    np.testing.assert_array_equal(case.label, phantom.label)
    assert case.spacing == pytest.approx(phantom.spacing, abs=1e-4)


def test_nih_reader_applies_rescale_slope(tmp_path: Path) -> None:
    hu = np.arange(4 * 6 * 8, dtype=np.float32).reshape(4, 6, 8) * 4 - 300
    folder = tmp_path / "PANCREAS_0001" / "a" / "b"
    names = ["z.dcm", "a.dcm", "m.dcm", "b.dcm"]
    write_dicom_series(hu, (2.0, 0.5, 0.5), (0, 0, 0), folder, "P", names, [4, 3, 2, 1], 2.0, -2048)
    image, numbers = read_dicom_series(tmp_path / "PANCREAS_0001")
    np.testing.assert_allclose(sitk.GetArrayFromImage(image), hu)
    assert numbers == [4, 3, 2, 1]


def test_nih_label_axis_convention_pinned(tmp_path: Path) -> None:
    """Public code: label array (x, y, InstanceNumber - 1) on the DICOM (column, row) grid.

    The image carries a bright L-shaped marker in one slice; the label file marks it in
    that convention. Any other reading (no transpose, z by position, a flip) misses it.
    """
    d, h, w = 5, 12, 16
    hu = np.full((d, h, w), -50.0, dtype=np.float32)
    marker = np.zeros((d, h, w), dtype=bool)
    marker[1, 2:9, 3] = True  # long vertical bar along rows (y)...
    marker[1, 8, 3:7] = True  # ...with a foot along columns (x): not symmetric
    hu[marker] = 300.0
    # InstanceNumber runs against position: slice k (z up) has number d - k
    numbers = [d - k for k in range(d)]
    folder = tmp_path / "raw" / "PANCREAS_0007" / "study" / "series"
    names = [f"{n:02d}.dcm" for n in (3, 1, 4, 0, 2)]
    write_dicom_series(hu, (2.0, 0.7, 0.7), (-5.0, -4.0, 10.0), folder, "P7", names, numbers)
    label_xyz = np.zeros((w, h, d), dtype=np.uint8)
    for k in range(d):
        label_xyz[:, :, numbers[k] - 1] = marker[k].T
    labels = tmp_path / "raw" / "labels"
    labels.mkdir()
    nib.save(nib.Nifti1Image(label_xyz, np.eye(4)), labels / "label0007.nii.gz")
    # the marker sits in slice 1 (second from the bottom) = InstanceNumber 4 = label z 3
    assert label_xyz[:, :, 3].sum() == marker.sum() and label_xyz[:, :, 1].sum() == 0

    case = get_reader("nih", tmp_path / "raw").load("PANCREAS_0007")
    np.testing.assert_array_equal(case.label.astype(bool), marker)
    assert np.all(case.image[case.label == 1] == 300.0)


def test_nih_skips_duplicates_with_a_log_line(tmp_path: Path, caplog) -> None:
    for n in (24, 25, 70):
        (tmp_path / "Pancreas-CT" / f"PANCREAS_{n:04d}").mkdir(parents=True)
    with caplog.at_level(logging.INFO):
        reader = get_reader("nih", tmp_path)
    assert reader.case_ids() == ["PANCREAS_0024"]
    assert "PANCREAS_0025" in caplog.text and "duplicate" in caplog.text
    assert get_reader("synthetic-nih", tmp_path).case_ids() == [
        "PANCREAS_0024",
        "PANCREAS_0025",
        "PANCREAS_0070",
    ]


# --- nnU-Net v2 ---------------------------------------------------------------------------


def test_nnunet_export_then_import_round_trip(
    tmp_path: Path, nih_raw: Path, synthetic_dataset
) -> None:
    out = tmp_path / "Dataset501_SynthNIH"
    folds = synthetic_dataset["folds"]
    assert main(["export-nnunet", "--raw", str(nih_raw), "--preset", "synthetic-nih",
                 "--out", str(out), "--jobs", "1", "--no-progress"]) == 0  # fmt: skip
    info = json.loads((out / "dataset.json").read_text())
    assert info["channel_names"] == {"0": "CT"}
    assert info["labels"] == {"background": 0, "pancreas": 1}
    assert info["numTraining"] == 2 and info["file_ending"] == ".nii.gz"
    assert (out / "imagesTr" / "PANCREAS_0001_0000.nii.gz").is_file()
    (out / "imagesTr" / "._PANCREAS_0001_0000.nii.gz").write_bytes(b"\x00\x05\x16\x07")

    original = get_reader("synthetic-nih", nih_raw).load("PANCREAS_0002")
    reader = get_reader("nnunet", out)
    assert reader.case_ids() == ["PANCREAS_0001", "PANCREAS_0002"]
    assert reader.classes == {"0": "background", "1": "pancreas"}
    again = reader.load("PANCREAS_0002")
    np.testing.assert_array_equal(again.image, original.image)
    np.testing.assert_array_equal(again.label, original.label)
    assert again.spacing == pytest.approx(original.spacing)
    assert again.origin == pytest.approx(original.origin)

    # folds become nnU-Net splits whose val is vnas's test fold
    out2 = tmp_path / "Dataset502_SynthPancreas"
    assert main(["export-nnunet", "--raw", str(synthetic_dataset["raw"]),
                 "--preset", "synthetic-pancreas", "--out", str(out2), "--folds", str(folds),
                 "--jobs", "1", "--no-progress"]) == 0  # fmt: skip
    splits = json.loads((out2 / "splits_final.json").read_text())
    vnas_folds = json.loads(folds.read_text())["folds"]
    assert len(splits) == len(vnas_folds)
    for split, fold in zip(splits, vnas_folds, strict=True):
        assert split["val"] == sorted(fold["test"])
        assert split["train"] == sorted(fold["train"] + fold["val"])


def test_nnunet_rejects_region_labels_and_multichannel(tmp_path: Path) -> None:
    (tmp_path / "imagesTr").mkdir()
    index = tmp_path / "dataset.json"
    index.write_text(json.dumps({"channel_names": {"0": "CT", "1": "PET"}, "labels": {}}))
    with pytest.raises(VNASError, match="one channel"):
        get_reader("nnunet", tmp_path)
    index.write_text(
        json.dumps({"channel_names": {"0": "CT"}, "labels": {"background": 0, "whole": [1, 2]}})
    )
    with pytest.raises(VNASError, match="region-based"):
        get_reader("nnunet", tmp_path)
