"""Preprocessing: geometry (orientation, resampling, the way back), normalisation, storage."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from vnas.cli import main
from vnas.data import list_cases, load_preprocessed
from vnas.data.geometry import to_original
from vnas.data.imageio import read_image
from vnas.data.preprocess import preprocess_image, preprocess_label
from vnas.data.store import read_dataset_json

RAS = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)


def _volume(spacing_xyz=(0.7, 0.8, 2.5), direction=RAS) -> tuple[sitk.Image, sitk.Image]:
    """A 10x30x40 (z, y, x) image with a gradient and a label holding classes 0, 1 and 2."""
    z, y, x = np.meshgrid(np.arange(10), np.arange(30), np.arange(40), indexing="ij")
    array = (x * 5 + y * 2 + z * 20 - 150).astype(np.float32)
    label = np.zeros((10, 30, 40), dtype=np.uint8)
    label[3:8, 5:20, 4:30] = 1
    label[4:7, 8:12, 6:12] = 2  # asymmetric: near the low-x, low-y corner
    images = []
    for a in (array, label):
        image = sitk.GetImageFromArray(a)
        image.SetSpacing(spacing_xyz)
        image.SetOrigin((12.0, -30.0, 100.0))
        image.SetDirection(direction)
        images.append(image)
    return images[0], images[1]


def _corners(image_size, spacing, origin, direction) -> np.ndarray:
    """Physical positions of the two extreme voxel *edges* of a grid."""
    d = np.array(direction).reshape(3, 3)
    first = np.array(origin) - d @ (np.array(spacing) / 2)
    last = first + d @ (np.array(image_size) * np.array(spacing))
    return np.sort(np.stack([first, last]), axis=0)


SETTINGS = {"hu_window": [-100.0, 240.0], "spacing": None, "orientation": "LPS"}


def test_resampling_keeps_physical_extent_and_label_values() -> None:
    image, label = _volume()
    settings = {**SETTINGS, "spacing": [1.5, 1.0, 1.0]}
    array, meta = preprocess_image(image, settings)
    assert meta["spacing"] == [1.5, 1.0, 1.0]
    assert list(array.shape) == meta["shape"] == [17, 24, 28]  # round(extent / spacing)
    old = _corners(image.GetSize(), image.GetSpacing(), image.GetOrigin(), RAS)
    new = _corners(meta["shape"][::-1], meta["spacing"][::-1], meta["origin"], meta["direction"])
    # same box up to half a new voxel per side, same centre
    assert np.all(np.abs(new - old) <= np.array([0.5, 0.5, 0.75]) + 1e-6)
    np.testing.assert_allclose(new.mean(axis=0), old.mean(axis=0), atol=1e-6)
    lab = preprocess_label(label, meta)
    assert lab.shape == array.shape and lab.dtype == np.uint8
    assert set(np.unique(lab).tolist()) == {0, 1, 2}
    # volumes (mm^3) per class are kept by nearest-neighbour resampling, roughly
    for cls in (1, 2):
        before = (sitk.GetArrayFromImage(label) == cls).sum() * np.prod(image.GetSpacing())
        after = (lab == cls).sum() * 1.5
        assert after == pytest.approx(before, rel=0.25)


def test_orientation_is_lps_and_to_original_is_exact_without_resampling() -> None:
    image, label = _volume()
    _, meta = preprocess_image(image, SETTINGS)
    assert meta["direction"] == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    lab = preprocess_label(label, meta)
    raw_label = sitk.GetArrayFromImage(label)
    # RAS storage -> LPS: x and y are flipped, z kept
    np.testing.assert_array_equal(lab, raw_label[:, ::-1, ::-1])
    back = to_original(lab, meta)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), raw_label)
    assert back.GetDirection() == pytest.approx(RAS)
    assert back.GetOrigin() == pytest.approx(image.GetOrigin())
    assert back.GetSpacing() == pytest.approx(image.GetSpacing())


def test_to_original_after_resampling_overlaps_the_raw_label() -> None:
    image, label = _volume()
    _, meta = preprocess_image(image, {**SETTINGS, "spacing": [1.5, 1.0, 1.0]})
    back = sitk.GetArrayFromImage(to_original(preprocess_label(label, meta), meta))
    raw = sitk.GetArrayFromImage(label)
    assert back.shape == raw.shape
    # class 2 is a 3x4x6-voxel box: nearest twice moves its faces by up to one voxel
    for cls, least in ((1, 0.98), (2, 0.75)):
        inter = np.logical_and(back == cls, raw == cls).sum()
        dice = 2 * inter / ((back == cls).sum() + (raw == cls).sum())
        assert dice > least


def test_hu_clip_and_zscore() -> None:
    image, _ = _volume()
    array, meta = preprocess_image(image, SETTINGS)
    assert array.dtype == np.float32
    assert abs(float(array.mean())) < 1e-5 and float(array.std()) == pytest.approx(1.0, abs=1e-5)
    hu = array * meta["zscore_std"] + meta["zscore_mean"]
    assert hu.min() == pytest.approx(-100.0, abs=1e-3) and hu.max() == pytest.approx(
        240.0, abs=1e-3
    )
    assert float(array.min()) == pytest.approx(meta["pad_value"], abs=1e-5)


def test_preprocessed_folder_contract(synthetic_dataset) -> None:
    pre = synthetic_dataset["preprocessed"]
    info = read_dataset_json(pre)
    assert info["preset"] == "synthetic-pancreas"
    assert info["classes"] == {"0": "background", "1": "pancreas", "2": "cancer"}
    assert info["preprocessing"] == {
        "hu_window": [-100.0, 240.0],
        "spacing": [2.5, 1.0, 1.0],
        "orientation": "LPS",
        "normalization": "zscore",
    }
    assert list_cases(pre) == synthetic_dataset["case_ids"] and len(info["cases"]) == 8
    image, label, meta = load_preprocessed(pre, info["cases"][0])
    assert isinstance(image, np.memmap) and image.dtype == np.float32
    assert label.dtype == np.uint8 and image.shape == label.shape
    for key in ("case_id", "spacing", "original_shape", "original_spacing",
                "original_origin", "original_direction"):  # fmt: skip
        assert key in meta
    assert meta["spacing"] == [2.5, 1.0, 1.0]
    image2, _, _ = load_preprocessed(pre, info["cases"][0], mmap=False)
    assert not isinstance(image2, np.memmap)
    np.testing.assert_array_equal(image, image2)


def test_preprocess_image_reproduces_stored_cases(synthetic_dataset) -> None:
    """What `vnas predict` does to a raw file equals what training saw."""
    pre = synthetic_dataset["preprocessed"]
    settings = read_dataset_json(pre)["preprocessing"]
    case_id = list_cases(pre)[1]
    raw_image = read_image(synthetic_dataset["raw"] / "imagesTr" / f"{case_id}.nii.gz")
    array, meta = preprocess_image(raw_image, settings)
    stored, label, stored_meta = load_preprocessed(pre, case_id)
    np.testing.assert_allclose(array, stored, atol=1e-5)
    assert meta["origin"] == pytest.approx(stored_meta["origin"])
    raw_label = read_image(synthetic_dataset["raw"] / "labelsTr" / f"{case_id}.nii.gz")
    back = to_original(np.asarray(label), stored_meta)
    # nearest there and back on nested grids: the original label almost everywhere
    agree = (sitk.GetArrayFromImage(back) == sitk.GetArrayFromImage(raw_label)).mean()
    assert agree > 0.995


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_parallel_equals_serial_and_raw_untouched(tmp_path: Path, synthetic_dataset) -> None:
    raw = synthetic_dataset["raw"]
    before = _digest(raw)
    args = ["preprocess", "--raw", str(raw), "--out", str(tmp_path / "p2"),
            "--preset", "synthetic-pancreas", "--jobs", "2", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    assert _digest(raw) == before
    serial = synthetic_dataset["preprocessed"]
    for case_id in list_cases(serial):
        a, la, _ = load_preprocessed(serial, case_id)
        b, lb, _ = load_preprocessed(tmp_path / "p2", case_id)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_cli_overrides_are_recorded(tmp_path: Path, synthetic_dataset) -> None:
    out = tmp_path / "pre"
    assert main(["preprocess", "--raw", str(synthetic_dataset["raw"]), "--out", str(out),
                 "--preset", "synthetic-pancreas", "--hu-window", "-200", "300",
                 "--spacing", "5", "2", "2", "--jobs", "1", "--no-progress"]) == 0  # fmt: skip
    info = json.loads((out / "dataset.json").read_text())
    assert info["preprocessing"]["hu_window"] == [-200.0, 300.0]
    assert info["preprocessing"]["spacing"] == [5.0, 2.0, 2.0]
    image, _, meta = load_preprocessed(out, info["cases"][0])
    assert image.shape[0] == 16 and meta["spacing"] == [5.0, 2.0, 2.0]  # 32 slices * 2.5 / 5
