"""vnas evaluate: outputs, metrics equal MONAI's on the written NIfTIs against the raw
labels (also for a preset that resamples), and bad input."""

from __future__ import annotations

import json
import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import torch
from monai.metrics import compute_dice, compute_hausdorff_distance, compute_surface_dice
from monai.networks.utils import one_hot

from vnas.cli import main
from vnas.data.folds import fold_split, read_folds
from vnas.data.geometry import to_original
from vnas.data.preprocess import preprocess_dataset
from vnas.data.store import load_preprocessed, read_dataset_json
from vnas.space.models import NETWORK_VERSION, build_model

FOLD = 1
TOLERANCES = (1.0, 2.5)  # mm, pancreas and cancer


def _model_dir(root: Path, dataset: dict, num_classes: int = 3, name: str = "") -> Path:
    """A model folder as `vnas train` writes it, with untrained (seeded) weights.

    Its BatchNorm statistics are those of a few training patches (forward passes in train
    mode, no weight step): with BatchNorm's initial statistics the untrained network
    predicts one class everywhere, and the metrics below would compare empty masks."""
    info = read_dataset_json(dataset["preprocessed"])
    folder = root / (name or f"model{num_classes}")
    folder.mkdir()
    torch.manual_seed(0)  # with this seed every class gets some voxels on the phantom
    model = build_model("unet3d", in_channels=1, num_classes=num_classes, width=0.125)
    split = fold_split(read_folds(dataset["folds"]), FOLD)
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm3d)):
        bn.momentum = None  # a plain average over the passes
    with torch.no_grad():
        for case_id in split["train"]:
            image = load_preprocessed(dataset["preprocessed"], case_id)[0][:32, :32, :32]
            model.train()(torch.from_numpy(np.ascontiguousarray(image))[None, None])
    torch.save(model.state_dict(), folder / "model.pt")
    classes = {str(i): info["classes"].get(str(i), f"class{i}") for i in range(num_classes)}
    config = {
        "arch": "unet3d",
        "arch_kind": "unet3d",
        "arch_code": None,
        "width": 0.125,
        "in_channels": 1,
        "num_classes": num_classes,
        "classes": classes,
        "patch": [32, 32, 32],
        "test_patch": [32, 32, 32],
        "preprocessing": info["preprocessing"],
        "fold": FOLD,
        "cases": split,
        "network_version": NETWORK_VERSION,
    }
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _evaluate(
    dataset: dict, model: Path, out: Path, *extra: str, folds: Path | None = None, fold=FOLD
) -> int:
    argv = ["evaluate", "--model", str(model), "--preprocessed", str(dataset["preprocessed"])]
    argv += ["--folds", str(folds or dataset["folds"]), "--fold", str(fold), "--out", str(out)]
    return main([*argv, "--device", "cpu", *extra])


@pytest.fixture(scope="module")
def evaluated(synthetic_dataset: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("evaluate")
    model = _model_dir(root, synthetic_dataset)
    out = root / "eval" / "fold1"
    tol = [str(t) for t in TOLERANCES]
    assert _evaluate(synthetic_dataset, model, out, "--nsd-tolerance", *tol) == 0
    out_raw = root / "eval_raw" / "fold1"
    raw = ["--raw", str(synthetic_dataset["raw"])]
    assert _evaluate(synthetic_dataset, model, out_raw, "--nsd-tolerance", *tol, *raw) == 0
    return {"root": root, "model": model, "out": out, "out_raw": out_raw}


def _monai_on_masks(pred: np.ndarray, gt: np.ndarray, spacing_zyx: list[float]) -> dict:
    """MONAI's metrics on whole multi-class masks, one-hot, no vnas code involved."""
    p = one_hot(torch.from_numpy(pred.astype(np.int64))[None, None], 3)
    y = one_hot(torch.from_numpy(gt.astype(np.int64))[None, None], 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dsc = compute_dice(p, y, include_background=False, ignore_empty=False)[0]
        nsd = compute_surface_dice(
            p, y, list(TOLERANCES), include_background=False, spacing=spacing_zyx
        )[0]
        hd95 = compute_hausdorff_distance(
            p, y, include_background=False, percentile=95, spacing=spacing_zyx
        )[0]
    return {"dsc": dsc.tolist(), "nsd": nsd.tolist(), "hd95": hd95.tolist()}


def _assert_metrics_equal_monai(table: pd.DataFrame, out: Path, reference) -> int:
    checked = 0
    for case_id, rows in table.groupby("case_id"):
        pred_image = sitk.ReadImage(str(out / "predictions" / f"{case_id}.nii.gz"))
        pred = sitk.GetArrayFromImage(pred_image)
        gt = reference(case_id)
        assert pred.shape == gt.shape
        spacing = list(reversed(pred_image.GetSpacing()))  # (sz, sy, sx)
        expected = _monai_on_masks(pred, gt, spacing)
        for _, row in rows.sort_values("class").iterrows():
            c = int(row["class"])
            p_empty, g_empty = not (pred == c).any(), not (gt == c).any()
            assert row["pred_voxels"] == (pred == c).sum() and row["gt_voxels"] == (gt == c).sum()
            for metric in ("dsc", "nsd", "hd95"):
                want = expected[metric][c - 1]
                if p_empty and g_empty:  # vnas's documented both-empty values
                    want = {"dsc": 1.0, "nsd": 1.0, "hd95": 0.0}[metric]
                if math.isnan(want):
                    assert math.isnan(row[metric]), (case_id, c, metric)
                else:
                    assert row[metric] == pytest.approx(want, abs=1e-5), (case_id, c, metric)
            checked += int(not (p_empty or g_empty))
    return checked


def test_outputs(evaluated: dict, synthetic_dataset: dict) -> None:
    out = evaluated["out"]
    test_ids = fold_split(read_folds(synthetic_dataset["folds"]), FOLD)["test"]
    assert sorted(p.name for p in out.iterdir()) == [
        ".vnas", "config.json", "metrics.csv", "predictions", "summary.json"
    ]  # fmt: skip
    assert sorted(p.name for p in (out / "predictions").iterdir()) == sorted(
        f"{c}.nii.gz" for c in test_ids
    )
    assert [p.name for p in out.parent.iterdir()] == ["fold1"]  # no temporary folder left
    table = pd.read_csv(out / "metrics.csv")
    assert list(table.columns) == [
        "case_id", "class", "class_name", "dsc", "nsd", "hd95",
        "nsd_tolerance_mm", "pred_voxels", "gt_voxels",
    ]  # fmt: skip
    assert len(table) == 2 * len(test_ids)
    assert sorted(set(table["class_name"])) == ["cancer", "pancreas"]
    assert table.set_index("class")["nsd_tolerance_mm"].to_dict() == {1: 1.0, 2: 2.5}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["fold"] == FOLD and summary["n_cases"] == len(test_ids)
    pancreas = next(c for c in summary["classes"] if c["class"] == "pancreas")
    dsc = table[table["class_name"] == "pancreas"]["dsc"]
    assert pancreas["dsc_mean"] == pytest.approx(100 * dsc.mean())
    assert pancreas["dsc_max"] == pytest.approx(100 * dsc.max())
    config = json.loads((out / "config.json").read_text())
    assert config["overlap"] == 0.5 and config["patch"] == [32, 32, 32]
    assert "vnas_version" in config
    # synthetic-pancreas resamples: the reference is the raw folder preprocess recorded
    raw = read_dataset_json(synthetic_dataset["preprocessed"])["raw"]
    assert config["reference"] == raw and Path(raw) == synthetic_dataset["raw"].resolve()


def test_predictions_have_the_raw_geometry(evaluated: dict, synthetic_dataset: dict) -> None:
    for path in (evaluated["out"] / "predictions").iterdir():
        case_id = path.name.removesuffix(".nii.gz")
        pred = sitk.ReadImage(str(path))
        raw = sitk.ReadImage(str(synthetic_dataset["raw"] / "imagesTr" / path.name))
        assert pred.GetSize() == raw.GetSize(), case_id
        np.testing.assert_allclose(pred.GetSpacing(), raw.GetSpacing(), atol=1e-5)
        np.testing.assert_allclose(pred.GetOrigin(), raw.GetOrigin(), atol=1e-4)
        np.testing.assert_allclose(pred.GetDirection(), raw.GetDirection(), atol=1e-6)


def _raw_label(dataset: dict):
    labels = dataset["raw"] / "labelsTr"

    def raw_label(case_id: str) -> np.ndarray:
        return sitk.GetArrayFromImage(sitk.ReadImage(str(labels / f"{case_id}.nii.gz")))

    return raw_label


def test_resampled_dataset_is_scored_on_the_raw_labels(evaluated, synthetic_dataset) -> None:
    """synthetic-pancreas resamples to (2.5, 1, 1) mm, like MSD Pancreas to 1 mm: with no
    --raw the reference is still the raw label (shape, voxel counts), not its round trip
    through the resampled grid, and the metrics equal MONAI's on the written NIfTIs."""
    table = pd.read_csv(evaluated["out"] / "metrics.csv")
    assert _assert_metrics_equal_monai(table, evaluated["out"], _raw_label(synthetic_dataset)) > 0
    assert (table["dsc"] > 0).any()  # not a degenerate all-zero comparison
    # The round trip would give other voxel counts: the check can tell them apart.
    pre = synthetic_dataset["preprocessed"]
    round_trip = {
        case_id: sitk.GetArrayFromImage(to_original(*load_preprocessed(pre, case_id)[1:]))
        for case_id in table["case_id"].unique()
    }
    trip = [int((round_trip[r.case_id] == r["class"]).sum()) for _, r in table.iterrows()]
    assert trip != table["gt_voxels"].tolist()
    # --raw with the same folder gives the same table.
    explicit = pd.read_csv(evaluated["out_raw"] / "metrics.csv")
    pd.testing.assert_frame_equal(explicit, table)


def test_native_grid_dataset_is_scored_on_the_preprocessed_labels_mapped_back(
    evaluated, synthetic_dataset, tmp_path
) -> None:
    """A preset that does not resample (synthetic-lung's settings, on the same raw cases):
    the preprocessed label mapped back is the raw label, read without the raw data."""
    native = tmp_path / "native"
    preprocess_dataset(synthetic_dataset["raw"], native, "synthetic-lung", jobs=1, progress=False)
    data = {**synthetic_dataset, "preprocessed": native}
    model = _model_dir(tmp_path, data)
    out = tmp_path / "eval"
    assert _evaluate(data, model, out, "--nsd-tolerance", *map(str, TOLERANCES)) == 0
    assert json.loads((out / "config.json").read_text())["reference"] == (
        "preprocessed labels mapped back"
    )
    table = pd.read_csv(out / "metrics.csv")
    assert _assert_metrics_equal_monai(table, out, _raw_label(synthetic_dataset)) > 0


def test_resampled_dataset_without_its_raw_folder_stops(synthetic_dataset, tmp_path, capsys):
    moved = tmp_path / "preprocessed"
    shutil.copytree(synthetic_dataset["preprocessed"], moved)
    info = read_dataset_json(moved)
    info["raw"] = str(tmp_path / "gone")
    (moved / "dataset.json").write_text(json.dumps(info))
    data = {**synthetic_dataset, "preprocessed": moved}
    model = _model_dir(tmp_path, data)
    err = _error(capsys, _evaluate(data, model, tmp_path / "out"))
    assert "resampled" in err and str(tmp_path / "gone") in err and "--raw" in err
    assert not (tmp_path / "out").exists()
    # --raw names the folder instead
    assert _evaluate(data, model, tmp_path / "out", "--raw", str(synthetic_dataset["raw"])) == 0


def _error(capsys, code: int) -> str:
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vnas: error:") and "\n" not in err
    return err


def test_bad_input(evaluated: dict, synthetic_dataset: dict, tmp_path: Path, capsys) -> None:
    model = evaluated["model"]
    out = tmp_path / "out"
    out.mkdir()
    (out / "previous.txt").write_text("an earlier result")  # must survive failures

    err = _error(capsys, _evaluate(synthetic_dataset, model, out, fold=4))
    assert "fold 4" in err and "0..3" in err

    folds = json.loads(Path(synthetic_dataset["folds"]).read_text())
    folds["folds"][FOLD]["test"] = []
    empty = tmp_path / "empty_folds.json"
    empty.write_text(json.dumps(folds))
    err = _error(capsys, _evaluate(synthetic_dataset, model, out, folds=empty))
    assert "empty test" in err

    folds["folds"][FOLD]["test"] = ["pancreas_999"]
    unknown = tmp_path / "unknown_folds.json"
    unknown.write_text(json.dumps(folds))
    err = _error(capsys, _evaluate(synthetic_dataset, model, out, folds=unknown))
    assert "pancreas_999" in err

    two_class = _model_dir(tmp_path, synthetic_dataset, num_classes=2)
    err = _error(capsys, _evaluate(synthetic_dataset, two_class, out))
    assert "2 classes" in err and "has 3" in err

    leaky = _model_dir(tmp_path, synthetic_dataset, num_classes=3, name="leaky")
    config = json.loads((leaky / "config.json").read_text())
    other = fold_split(read_folds(synthetic_dataset["folds"]), 0)
    config.update(fold=0, cases=other)  # fold 0's training cases include fold 1's test
    (leaky / "config.json").write_text(json.dumps(config))
    err = _error(capsys, _evaluate(synthetic_dataset, leaky, out))
    assert "trained on" in err and f"fold {FOLD}" in err

    err = _error(capsys, _evaluate(synthetic_dataset, model, out, "--nsd-tolerance", "1", "2", "3"))
    assert "nsd-tolerance" in err

    (two_class / "model.pt").unlink()
    err = _error(capsys, _evaluate(synthetic_dataset, two_class, out))
    assert "model.pt" in err

    err = _error(capsys, _evaluate(synthetic_dataset, tmp_path / "no_model", out))
    assert "config.json" in err

    # a model trained on other classes (same count): refused unless --force
    renamed = _model_dir(tmp_path, synthetic_dataset, num_classes=3, name="liver")
    config = json.loads((renamed / "config.json").read_text())
    config["classes"] = {"0": "background", "1": "liver", "2": "tumour"}
    (renamed / "config.json").write_text(json.dumps(config))
    err = _error(capsys, _evaluate(synthetic_dataset, renamed, out))
    assert "liver" in err and "pancreas" in err and "--force" in err
    forced = tmp_path / "forced"
    assert _evaluate(synthetic_dataset, renamed, forced, "--force", "--no-progress") == 0
    assert (forced / "metrics.csv").is_file()
    capsys.readouterr()

    # --model naming the parent of the fold folders: say to name one, or an ensemble
    method = tmp_path / "method"
    method.mkdir()
    shutil.copytree(model, method / "fold1")
    err = _error(capsys, _evaluate(synthetic_dataset, method, out))
    assert "fold1" in err and "ensemble" in err and "not a vnas model folder" not in err

    assert [p.name for p in out.iterdir()] == ["previous.txt"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
