"""vnas predict: geometry of the written label, input kinds, ensembles, test-time mirroring,
probabilities, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk
import torch
from tests.conftest import MODEL_PREPROCESSING, model_folder
from torch import nn

from vnas.cli import main
from vnas.eval.predict import predict_image

PREPROCESSING = MODEL_PREPROCESSING
SPACING_XYZ = (0.7, 0.9, 2.5)  # anisotropic, ITK order
ORIGIN_XYZ = (-120.5, 33.0, 410.25)


def _direction() -> tuple[float, ...]:
    """Oblique (10 degrees about z) with x and z flipped: far from the identity."""
    t = np.deg2rad(10.0)
    rot = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    return tuple((rot @ np.diag([-1.0, 1.0, -1.0])).ravel().tolist())


def _ct(shape_zyx=(12, 36, 40), seed: int = 0) -> sitk.Image:
    """A CT-like volume whose bright blob sits off-centre, so flips would show."""
    rng = np.random.default_rng(seed)
    hu = rng.normal(-50.0, 20.0, size=shape_zyx).astype(np.float32)
    hu[2:6, 4:14, 25:37] = 200.0
    image = sitk.GetImageFromArray(hu)
    image.SetSpacing(SPACING_XYZ)
    image.SetOrigin(ORIGIN_XYZ)
    image.SetDirection(_direction())
    return image


def _predict(model: Path | str | list, source: Path, output: Path, *extra: str) -> int:
    models = [str(m) for m in model] if isinstance(model, list) else [str(model)]
    argv = ["predict", "--model", *models, "--input", str(source), "--out", str(output)]
    return main([*argv, "--device", "cpu", *extra])


class Threshold(nn.Module):
    """Class 1 wherever the z-scored intensity is positive: a prediction known in advance."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.zeros_like(x), x], dim=1)


def test_label_lands_on_the_input_voxels() -> None:
    image = _ct()
    label = predict_image(Threshold(), {"preprocessing": PREPROCESSING}, image, (16, 32, 32))
    hu = np.clip(sitk.GetArrayFromImage(image), -100, 240)
    expected = (hu > hu.mean()).astype(np.uint8)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(label), expected)
    assert expected.any() and not expected.all()


def test_nifti_output_has_the_input_shape_and_affine(tmp_path: Path) -> None:
    src = tmp_path / "ct.nii.gz"
    sitk.WriteImage(_ct(), str(src))
    out = tmp_path / "out" / "seg.nii.gz"
    assert _predict(model_folder(tmp_path), src, out) == 0
    seg, ref = sitk.ReadImage(str(out)), sitk.ReadImage(str(src))
    assert seg.GetSize() == ref.GetSize()
    np.testing.assert_allclose(seg.GetSpacing(), ref.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(seg.GetOrigin(), ref.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(seg.GetDirection(), ref.GetDirection(), atol=1e-6)
    assert seg.GetPixelID() == sitk.sitkUInt8
    seg_nib, ref_nib = nib.load(out), nib.load(src)
    assert seg_nib.shape == ref_nib.shape
    np.testing.assert_allclose(seg_nib.affine, ref_nib.affine, atol=1e-4)
    assert not np.allclose(ref_nib.affine[:3, :3], np.diag(np.diag(ref_nib.affine[:3, :3])))
    assert set(np.unique(np.asarray(seg_nib.dataobj))) <= {0, 1}
    assert not list(out.parent.glob(".*"))  # no temporary file left


def test_folder_of_niftis(tmp_path: Path) -> None:
    src = tmp_path / "images"
    src.mkdir()
    sitk.WriteImage(_ct(seed=1), str(src / "case_a_0000.nii.gz"))
    sitk.WriteImage(_ct((10, 33, 35), seed=2), str(src / "case_b.nii"))
    (src / "._case_a_0000.nii.gz").write_bytes(b"macOS resource fork")  # ignored
    out = tmp_path / "segs"
    assert _predict(model_folder(tmp_path), src, out) == 0
    assert sorted(p.name for p in out.iterdir()) == [".vnas", "case_a.nii.gz", "case_b.nii.gz"]
    assert nib.load(out / "case_b.nii.gz").shape == (35, 33, 10)


def test_dicom_series_folder(tmp_path: Path) -> None:
    from vnas.data.dicom import write_dicom_series

    hu = sitk.GetArrayFromImage(_ct((8, 32, 34)))
    series = tmp_path / "PANCREAS_0001" / "study" / "series"
    names = [f"{k:03d}.dcm" for k in range(8)]
    write_dicom_series(hu, (2.5, 0.9, 0.7), (-10.0, -20.0, 30.0), series, "P1", names, range(1, 9))
    out = tmp_path / "seg.nii.gz"
    assert _predict(model_folder(tmp_path), tmp_path / "PANCREAS_0001", out) == 0
    seg = sitk.ReadImage(str(out))
    assert seg.GetSize() == (34, 32, 8)
    np.testing.assert_allclose(seg.GetSpacing(), (0.7, 0.9, 2.5), atol=1e-4)
    np.testing.assert_allclose(seg.GetOrigin(), (-10.0, -20.0, 30.0), atol=1e-3)


def _error(capsys, code: int) -> str:
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vnas: error:") and "\n" not in err and "Traceback" not in err
    return err


def test_bad_input(tmp_path: Path, capsys) -> None:
    model = model_folder(tmp_path)
    out = tmp_path / "seg.nii.gz"
    missing = tmp_path / "nope.nii.gz"
    assert str(missing) in _error(capsys, _predict(model, missing, out))
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"\x1f\x8b not really a gzip file")
    assert str(broken) in _error(capsys, _predict(model, broken, out))
    good = tmp_path / "ct.nii.gz"
    sitk.WriteImage(_ct(), str(good))
    assert ".nii.gz" in _error(capsys, _predict(model, good, tmp_path / "seg.png"))
    (Path(model) / "model.pt").unlink()
    assert "model.pt" in _error(capsys, _predict(model, good, out))
    assert not out.exists()


def test_model_without_preprocessing_settings(tmp_path: Path, capsys) -> None:
    model = model_folder(tmp_path)
    config = json.loads((model / "config.json").read_text())
    del config["preprocessing"]
    (model / "config.json").write_text(json.dumps(config))
    good = tmp_path / "ct.nii.gz"
    sitk.WriteImage(_ct(), str(good))
    err = _error(capsys, _predict(model, good, tmp_path / "seg.nii.gz"))
    assert "preprocessing" in err


def test_patch_the_network_cannot_take(tmp_path: Path, capsys) -> None:
    good = tmp_path / "ct.nii.gz"
    sitk.WriteImage(_ct(), str(good))
    model = model_folder(tmp_path)
    err = _error(capsys, _predict(model, good, tmp_path / "s.nii.gz", "--patch", "16", "30", "32"))
    assert "16x30x32" in err


# --- ensembles and test-time mirroring ----------------------------------------------------


def _conv_net(seed: int, kernel: int = 3) -> nn.Module:
    """A small spatial conv net (not flip-equivariant: its kernels are random)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv3d(1, 4, kernel, padding=kernel // 2), nn.ReLU(), nn.Conv3d(4, 3, 1)
    )


def test_ensemble_of_two_models_is_the_mean_of_their_softmax() -> None:
    from vnas.eval.inference import sliding_window_predict

    volume = np.random.default_rng(0).normal(size=(20, 30, 26)).astype(np.float32)
    kw = {"overlap": 0.5, "sw_batch_size": 2, "amp": False, "return_probs": True}
    a, b = _conv_net(1), _conv_net(2)
    prob_a = sliding_window_predict(a, volume, (16, 16, 16), **kw).probs
    prob_b = sliding_window_predict(b, volume, (16, 16, 16), **kw).probs
    both = sliding_window_predict([a, b], volume, (16, 16, 16), **kw)
    np.testing.assert_allclose(both.probs, (prob_a + prob_b) / 2, atol=1e-5)
    np.testing.assert_array_equal(both.labels, both.probs.argmax(0))
    assert np.abs(prob_a - prob_b).max() > 0.05  # two different models: the mean is news


def test_mirroring_a_flip_equivariant_model_changes_nothing() -> None:
    from vnas.eval.inference import sliding_window_predict

    volume = np.random.default_rng(1).normal(size=(20, 30, 26)).astype(np.float32)
    kw = {"overlap": 0.5, "sw_batch_size": 2, "amp": False, "return_probs": True}
    pointwise = _conv_net(3, kernel=1)  # 1x1x1 convolutions commute with every flip
    plain = sliding_window_predict(pointwise, volume, (16, 16, 16), **kw).probs
    mirrored = sliding_window_predict(
        pointwise, volume, (16, 16, 16), mirror_axes=(0, 1, 2), **kw
    ).probs
    np.testing.assert_allclose(mirrored, plain, atol=1e-5)
    # The flips do happen: a 3x3x3 net with random kernels is not flip-equivariant.
    spatial = _conv_net(3)
    plain = sliding_window_predict(spatial, volume, (16, 16, 16), **kw).probs
    mirrored = sliding_window_predict(
        spatial, volume, (16, 16, 16), mirror_axes=(0, 1, 2), **kw
    ).probs
    assert np.abs(mirrored - plain).max() > 1e-3


def test_mirror_sets_are_nnunets_eight_flips() -> None:
    from vnas.data.augment import FLIP_AXES
    from vnas.eval.inference import mirror_sets

    assert FLIP_AXES == (0, 1, 2)  # training flips z, y and x (vnas.data.augment)
    sets = mirror_sets(FLIP_AXES)
    assert len(sets) == 8 and sets[0] == () and len(set(sets)) == 8


def test_ensemble_prediction_geometry_and_probabilities(tmp_path: Path, capsys) -> None:
    src = tmp_path / "ct.nii.gz"
    sitk.WriteImage(_ct(), str(src))
    fold0 = model_folder(tmp_path, name="fold0", seed=0)
    fold1 = model_folder(tmp_path, name="fold1", seed=1)
    out = tmp_path / "out" / "seg.nii.gz"
    assert _predict([fold0, fold1], src, out, "--save-probabilities") == 0
    assert "with 2 model(s), mirrored along z, y and x" in capsys.readouterr().out  # default
    seg, ref = sitk.ReadImage(str(out)), sitk.ReadImage(str(src))
    assert seg.GetSize() == ref.GetSize()
    np.testing.assert_allclose(seg.GetSpacing(), ref.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(seg.GetOrigin(), ref.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(seg.GetDirection(), ref.GetDirection(), atol=1e-6)
    with np.load(tmp_path / "out" / "seg.npz") as saved:
        probs = saved["probabilities"]
        assert list(saved["class_names"]) == ["background", "pancreas"]
    assert probs.dtype == np.float32 and probs.shape == (2, *sitk.GetArrayFromImage(ref).shape)
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-4)
    # no resampling in these settings: the label is the argmax of the saved probabilities
    np.testing.assert_array_equal(sitk.GetArrayFromImage(seg), probs.argmax(0))

    # An ensemble folder (`vnas ensemble`) predicts exactly what the two folders do, and
    # a rerun replaces its own label and probabilities without --force.
    ensemble = tmp_path / "ensemble"
    assert main(["ensemble", "--model", str(fold0), str(fold1), "--out", str(ensemble)]) == 0
    assert json.loads((ensemble / "ensemble.json").read_text())["models"] == [
        "../fold0",
        "../fold1",
    ]
    again = tmp_path / "again.nii.gz"
    assert _predict(ensemble, src, again) == 0
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(sitk.ReadImage(str(again))), sitk.GetArrayFromImage(seg)
    )
    assert _predict(ensemble, src, out, "--save-probabilities") == 0


def test_models_that_disagree_are_refused(tmp_path: Path, capsys) -> None:
    good = tmp_path / "ct.nii.gz"
    sitk.WriteImage(_ct(), str(good))
    fold0 = model_folder(tmp_path, name="fold0")
    fold1 = model_folder(tmp_path, name="fold1")
    config = json.loads((fold1 / "config.json").read_text())
    config["preprocessing"]["hu_window"] = [-1000.0, 1000.0]
    (fold1 / "config.json").write_text(json.dumps(config))
    out = tmp_path / "seg.nii.gz"
    err = _error(capsys, _predict([fold0, fold1], good, out))
    assert "disagree on preprocessing" in err and str(fold1) in err
    err = _error(capsys, main(["ensemble", "--model", str(fold0), str(fold1), "--out", "e"]))
    assert "disagree on preprocessing" in err
    assert not out.exists() and not Path("e").exists()


def test_output_is_a_deprecated_spelling_of_out(tmp_path: Path, capsys) -> None:
    src = tmp_path / "ct.nii.gz"
    sitk.WriteImage(_ct(), str(src))
    model = model_folder(tmp_path)
    out = tmp_path / "seg.nii.gz"
    argv = ["predict", "--model", str(model), "--input", str(src), "--output", str(out)]
    assert main([*argv, "--device", "cpu", "--no-progress"]) == 0
    assert "vnas: warning: --output is deprecated, use --out" in capsys.readouterr().err
    assert out.is_file()
