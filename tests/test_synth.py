"""The synthetic phantom: deterministic, varied, anisotropic, and not solvable slice by slice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from vnas.cli import main
from vnas.data.phantom import PANCREAS_HU, make_phantom
from vnas.data.synth import write_synthetic

SMALL = (24, 48, 48)


def test_same_seed_same_case_and_other_seeds_differ() -> None:
    a = make_phantom("pancreas", seed=3, number=5, shape=SMALL)
    b = make_phantom("pancreas", seed=3, number=5, shape=SMALL)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.label, b.label)
    other_case = make_phantom("pancreas", seed=3, number=6, shape=SMALL)
    other_seed = make_phantom("pancreas", seed=4, number=5, shape=SMALL)
    assert not np.array_equal(a.label, other_case.label)
    assert not np.array_equal(a.label, other_seed.label)


@pytest.mark.parametrize("kind", ["pancreas", "lung", "nih"])
def test_shape_spacing_and_classes(kind: str) -> None:
    p = make_phantom(kind, seed=0, number=1, shape=SMALL)
    assert p.image.shape == p.label.shape == SMALL
    assert p.image.dtype == np.float32 and p.label.dtype == np.uint8
    sz, sy, sx = p.spacing
    assert sz == 2.5 and sy == sx and 0.7 <= sx <= 0.9  # through-plane coarser
    expected = {"pancreas": {0, 1, 2}, "lung": {0, 1}, "nih": {0, 1}}[kind]
    assert set(np.unique(p.label).tolist()) == expected
    assert p.image.min() < -900  # air outside the body


def test_position_and_size_vary_between_cases() -> None:
    centres, sizes = [], []
    for number in range(1, 6):
        label = make_phantom("nih", seed=0, number=number, shape=SMALL).label
        centres.append(ndimage.center_of_mass(label))
        sizes.append(int(label.sum()))
    assert len(set(sizes)) == 5
    assert np.ptp(np.array(centres), axis=0).max() > 1.0  # voxels


def test_pancreas_needs_context_along_z() -> None:
    """Voxels with the pancreas' HU exist outside it, in slices that contain pancreas."""
    p = make_phantom("pancreas", seed=0, number=2, noise=False)
    same_hu = p.image == PANCREAS_HU
    decoy = same_hu & (p.label == 0)
    slices = np.flatnonzero((p.label == 1).any(axis=(1, 2)))
    assert decoy[slices].sum() > 0.2 * (p.label == 1).sum()
    # a decoy bowel loop is only 1-2 slices thick; the pancreas spans many slices
    assert len(slices) >= 6
    tumour = p.label == 2
    assert tumour.any() and np.all(p.image[tumour] < PANCREAS_HU - 20)  # hypodense


def test_lung_nodules_look_like_vessels_in_one_slice() -> None:
    p = make_phantom("lung", seed=0, number=1, noise=False)
    nodule = p.label == 1
    assert nodule.any() and np.all(np.abs(p.image[nodule]) <= 20)  # about 0 HU
    vessel = (p.image == 35.0) & ~nodule
    assert vessel.any()
    # vessels run through many slices, nodules through few
    nodule_slices = nodule.any(axis=(1, 2)).sum()
    vessel_slices = vessel.any(axis=(1, 2)).sum()
    assert vessel_slices > 2 * nodule_slices
    # lungs are air-filled
    assert (p.image == -850.0).sum() > 0.1 * p.image.size


def test_msd_layout_with_real_quirks(tmp_path: Path) -> None:
    out = write_synthetic("pancreas", tmp_path / "raw", 9, seed=1, shape=SMALL, progress=False)
    info = json.loads((out / "dataset.json").read_text())
    assert "relase" in info and "release" not in info
    assert info["labels"] == {"0": "background", "1": "pancreas", "2": "cancer"}
    assert all(isinstance(t, str) for t in info["test"]) and info["test"]
    numbers = [int(e["image"].split("_")[-1][:3]) for e in info["training"]]
    assert len(numbers) == 9 and numbers != list(range(numbers[0], numbers[0] + 9))
    assert any(p.name.startswith("._") for p in (out / "imagesTr").iterdir())
    for entry in info["training"]:
        assert (out / entry["image"]).is_file() and (out / entry["label"]).is_file()


def test_cli_writes_nih_layout_and_is_deterministic(tmp_path: Path) -> None:
    args = ["synth", "--kind", "nih", "--cases", "2", "--shape", "8", "16", "16", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.dcm"))
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.dcm"))
    assert len(files_a) == 16 and files_a == files_b
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    labels = sorted(p.name for p in (tmp_path / "a").rglob("label*.nii.gz"))
    assert labels == ["label0001.nii.gz", "label0002.nii.gz"]


def test_help_says_phantom(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["synth", "--help"])
    assert "phantom" in capsys.readouterr().out


def test_bad_arguments_are_one_line_errors(tmp_path: Path, capsys) -> None:
    out = tmp_path / "x"
    assert main(["synth", "--kind", "lung", "--cases", "0", "--out", str(out)]) == 2
    assert main(["synth", "--kind", "lung", "--shape", "2", "8", "8", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(e.startswith("vnas: error:") for e in err)
    assert not out.exists()
