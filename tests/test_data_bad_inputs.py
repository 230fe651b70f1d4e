"""Every bad input: one-line error naming the file, exit status 2, no output left behind."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from vnas.cli import main


def _first_case(raw: Path) -> tuple[Path, Path]:
    entry = json.loads((raw / "dataset.json").read_text())["training"][0]
    return raw / entry["image"], raw / entry["label"]


def _rewrite(path: Path, change: Callable[[np.ndarray], np.ndarray], **geometry) -> None:
    """Rewrite a NIfTI through SimpleITK with its array changed (and optional geometry)."""
    image = sitk.ReadImage(str(path))
    new = sitk.GetImageFromArray(change(sitk.GetArrayFromImage(image)))
    new.SetSpacing(geometry.get("spacing", image.GetSpacing()))
    new.SetOrigin(image.GetOrigin())
    new.SetDirection(image.GetDirection())
    sitk.WriteImage(new, str(path))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not a NIfTI file at all" * 10)


def _four_d(path: Path) -> None:
    data = np.asanyarray(nib.load(path).dataobj)
    nib.save(nib.Nifti1Image(np.stack([data, data], axis=-1), np.eye(4)), path)


def _nans(path: Path) -> None:
    def put_nan(a: np.ndarray) -> np.ndarray:
        a = a.astype(np.float32)
        a[2, 3, 4] = np.nan
        return a

    _rewrite(path, put_nan)


def _label_value(path: Path) -> None:
    def put_seven(a: np.ndarray) -> np.ndarray:
        a = a.copy()
        a[0, 0, 0] = 7
        return a

    _rewrite(path, put_seven)


def _crop(path: Path) -> None:
    _rewrite(path, lambda a: np.ascontiguousarray(a[:, :, :-2]))


def _respace(path: Path) -> None:
    image = sitk.ReadImage(str(path))
    sx, sy, sz = image.GetSpacing()
    _rewrite(path, lambda a: a, spacing=(sx, sy, sz * 2))


MSD_CASES = {
    "truncated image": ("image", _truncate, "truncated or corrupt"),
    "corrupt label": ("label", _garbage, "corrupt"),
    "4D image": ("image", _four_d, "4D"),
    "NaN in image": ("image", _nans, "NaN"),
    "label outside classes": ("label", _label_value, "outside the declared classes"),
    "label size mismatch": ("label", _crop, "size"),
    "label spacing mismatch": ("label", _respace, "spacing"),
    "listed file missing": ("image", lambda p: p.unlink(), "listed in dataset.json but missing"),
}


def _run_expect_error(capsys, raw: Path, out: Path, preset: str) -> str:
    status = main(["preprocess", "--raw", str(raw), "--out", str(out), "--preset", preset,
                   "--jobs", "1", "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("vnas: error:")]
    assert status == 2
    assert len(errors) == 1 and not any("Traceback" in line for line in err)
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]
    return errors[0]


@pytest.mark.parametrize("name", list(MSD_CASES))
def test_msd_bad_input(name: str, tmp_path: Path, pristine, capsys) -> None:
    which, damage, message = MSD_CASES[name]
    raw = tmp_path / "raw"
    shutil.copytree(pristine["msd"], raw)
    image, label = _first_case(raw)
    target = image if which == "image" else label
    damage(target)
    error = _run_expect_error(capsys, raw, tmp_path / "out", "synthetic-lung")
    assert str(target) in error and message in error


def test_parallel_run_fails_cleanly_too(tmp_path: Path, pristine, capsys) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(pristine["msd"], raw)
    _truncate(_first_case(raw)[0])
    out = tmp_path / "out"
    assert main(["preprocess", "--raw", str(raw), "--out", str(out),
                 "--preset", "synthetic-lung", "--jobs", "2", "--no-progress"]) == 2  # fmt: skip
    assert "truncated" in capsys.readouterr().err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_failed_rerun_keeps_the_previous_output(tmp_path: Path, pristine, capsys) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(pristine["msd"], raw)
    out = tmp_path / "out"
    args = ["preprocess", "--raw", str(raw), "--out", str(out), "--preset", "synthetic-lung",
            "--jobs", "1", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    before = (out / "dataset.json").read_text()
    _nans(_first_case(raw)[0])
    assert main(args) == 2
    assert (out / "dataset.json").read_text() == before


@pytest.mark.parametrize("preset", ["synthetic-lung", "synthetic-nih", "nnunet"])
def test_empty_folder(preset: str, tmp_path: Path, capsys) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    error = _run_expect_error(capsys, raw, tmp_path / "out", preset)
    assert str(raw) in error and "empty" in error


def test_missing_folder(tmp_path: Path, capsys) -> None:
    error = _run_expect_error(capsys, tmp_path / "nope", tmp_path / "out", "lung")
    assert "nope" in error and "not found" in error


def test_msd_folder_without_dataset_json(tmp_path: Path, pristine, capsys) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(pristine["msd"], raw)
    (raw / "dataset.json").unlink()
    error = _run_expect_error(capsys, raw, tmp_path / "out", "synthetic-lung")
    assert "dataset.json" in error


def test_nih_case_without_label(tmp_path: Path, pristine, capsys) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(pristine["nih"], raw)
    next(raw.rglob("label0002.nii.gz")).unlink()
    error = _run_expect_error(capsys, raw, tmp_path / "out", "synthetic-nih")
    assert "PANCREAS_0002" in error and "no label0002.nii.gz" in error


def test_nih_label_size_differs_from_series(tmp_path: Path, pristine, capsys) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(pristine["nih"], raw)
    path = next(raw.rglob("label0001.nii.gz"))
    data = np.asanyarray(nib.load(path).dataobj)
    nib.save(nib.Nifti1Image(data[:, :, :-1], np.eye(4)), path)
    error = _run_expect_error(capsys, raw, tmp_path / "out", "synthetic-nih")
    assert str(path) in error and "differs" in error


def test_nih_truncated_label(tmp_path: Path, pristine, capsys) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(pristine["nih"], raw)
    path = next(raw.rglob("label0001.nii.gz"))
    _truncate(path)
    error = _run_expect_error(capsys, raw, tmp_path / "out", "synthetic-nih")
    assert str(path) in error and "corrupt" in error


def test_nih_corrupt_dicom_slice(tmp_path: Path, pristine, capsys) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(pristine["nih"], raw)
    victim = sorted((raw / "Pancreas-CT" / "PANCREAS_0001").rglob("*.dcm"))[3]
    _truncate(victim)
    error = _run_expect_error(capsys, raw, tmp_path / "out", "synthetic-nih")
    assert str(victim) in error and "not a readable slice" in error


def test_nih_missing_dicom_slice(tmp_path: Path, pristine, capsys) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(pristine["nih"], raw)
    slices = sorted((raw / "Pancreas-CT" / "PANCREAS_0002").rglob("*.dcm"))
    # delete the slice in the middle of the volume (file names are shuffled)
    numbers = {p: int(pydicom.dcmread(p, stop_before_pixels=True).InstanceNumber) for p in slices}
    middle = next(p for p, n in numbers.items() if n == 4)
    middle.unlink()
    error = _run_expect_error(capsys, raw, tmp_path / "out", "synthetic-nih")
    assert "PANCREAS_0002" in error and "not evenly spaced" in error
